"""The environment variables minigrad reads, parsed in one place.

    check_environment()        # raise SettingError now for any bad MINIGRAD_* value (the CLI calls it first)

Each setting is read where it is used, lazily (``threads.get_num_threads``, ``backend.get_backend``, ...),
through the parsing function here, so a bad value raises the same ``SettingError`` (a ValueError) with the
same message, whether the CLI checks it at start-up or a Python program meets it on first use:

    MINIGRAD_NUM_THREADS     threads of the CPU kernels: an int from 1 to MAX_THREADS (4096; default: the
                             usable CPUs)
    MINIGRAD_BACKEND         default backend: numpy (aliases cpu, np) or cupy (aliases cuda, gpu, cp)
    MINIGRAD_CONV            kernel choice: auto, reference, winograd, numpy or compiled (default auto;
                             kernels/dispatch.py, kernels/compiled.py)
    MINIGRAD_MALLOC_TUNING   keep freed memory in the process (kernels/cpu_memory): 1/on/yes/true or
                             0/off/no/false (default on)
    MINIGRAD_DIST_TIMEOUT    seconds an MPI collective may take (mg.distributed): a finite number > 0
                             (default 120)
    MINIGRAD_MAX_BYTES       the memory guard's limit (runtime/memory.py parses it)
    MINIGRAD_TRACE           print every layer's forward and backward (mg.trace): on or off (default off)

An unset or blank variable means the default.
"""
from __future__ import annotations

import math
import os

__all__ = ["SettingError", "check_environment", "num_threads", "backend_name", "conv_algorithm", "malloc_tuning",
           "dist_timeout", "trace_on", "register", "BACKEND_ALIASES", "CONV_ALGORITHMS", "SETTINGS", "MAX_THREADS"]

# The names set_backend, to(), the CLI's --backend and MINIGRAD_BACKEND take, and the backend each one means.
BACKEND_ALIASES = {"numpy": "numpy", "cpu": "numpy", "np": "numpy",
                   "cupy": "cupy", "cuda": "cupy", "gpu": "cupy", "cp": "cupy"}
CONV_ALGORITHMS = ("auto", "reference", "winograd", "numpy", "compiled")
# The most threads the CPU kernels take (MINIGRAD_NUM_THREADS, mg.set_num_threads): far above any machine's cores,
# low enough that a mistyped count is refused instead of starting that many threads.
MAX_THREADS = 4096
_ON, _OFF = ("1", "on", "yes", "true"), ("0", "off", "no", "false")


class SettingError(ValueError):
    """A MINIGRAD_* environment variable holds a value minigrad cannot use; the message names it, says what
    it takes and what it holds."""


def _text(name: str) -> str | None:
    """The variable's value stripped, or None when it is unset or blank."""
    raw = os.environ.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def _refuse(name: str, wanted: str, raw) -> SettingError:
    return SettingError(f"{name} must be {wanted}, got {raw!r}; set it to such a value or unset it")


def num_threads() -> int | None:
    """$MINIGRAD_NUM_THREADS as an int from 1 to MAX_THREADS, None when unset."""
    text = _text("MINIGRAD_NUM_THREADS")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_THREADS:
        raise _refuse("MINIGRAD_NUM_THREADS", f"a positive int up to {MAX_THREADS} (the CPU kernels' thread count, "
                      "e.g. 4)",
                      os.environ["MINIGRAD_NUM_THREADS"])
    return value


def backend_name() -> str | None:
    """$MINIGRAD_BACKEND as "numpy" or "cupy", None when unset."""
    text = _text("MINIGRAD_BACKEND")
    if text is None:
        return None
    name = BACKEND_ALIASES.get(text.lower())
    if name is None:
        raw = os.environ["MINIGRAD_BACKEND"]        # worded as set_backend's refusal, with the variable's name
        raise SettingError(f"MINIGRAD_BACKEND={raw!r}: unknown backend {text!r}: expected one of 'numpy' (alias "
                           "'cpu') or 'cupy' (alias 'cuda'); set it to one of these or unset it")
    return name


def conv_algorithm() -> str | None:
    """$MINIGRAD_CONV as one of CONV_ALGORITHMS, None when unset."""
    text = _text("MINIGRAD_CONV")
    if text is None:
        return None
    if text.lower() not in CONV_ALGORITHMS:
        raise _refuse("MINIGRAD_CONV", f"one of {', '.join(CONV_ALGORITHMS)}", os.environ["MINIGRAD_CONV"])
    return text.lower()


def _switch(name: str, default: bool) -> bool:
    """$name as on (1/on/yes/true) or off (0/off/no/false); ``default`` when unset; SettingError otherwise."""
    text = _text(name)
    if text is None:
        return default
    if text.lower() in _ON or text.lower() in _OFF:
        return text.lower() in _ON
    raise _refuse(name, f"on ({'/'.join(_ON)}) or off ({'/'.join(_OFF)})", os.environ[name])


def malloc_tuning() -> bool:
    """$MINIGRAD_MALLOC_TUNING as a bool (True when unset)."""
    return _switch("MINIGRAD_MALLOC_TUNING", True)


def trace_on() -> bool:
    """$MINIGRAD_TRACE as a bool (False when unset)."""
    return _switch("MINIGRAD_TRACE", False)


def dist_timeout() -> float | None:
    """$MINIGRAD_DIST_TIMEOUT in seconds (a finite number > 0), None when unset."""
    text = _text("MINIGRAD_DIST_TIMEOUT")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise _refuse("MINIGRAD_DIST_TIMEOUT", "a number of seconds, finite and > 0 (e.g. 60)",
                      os.environ["MINIGRAD_DIST_TIMEOUT"])
    return value


# Every setting minigrad reads: name -> its check (the parsing function its reader uses). MINIGRAD_MAX_BYTES is
# parsed by memory.py, which imports backend.py, which reads its setting here: runtime/__init__.py registers that
# check (``register``), so this module imports no other.
SETTINGS = {"MINIGRAD_NUM_THREADS": num_threads, "MINIGRAD_BACKEND": backend_name, "MINIGRAD_CONV": conv_algorithm,
            "MINIGRAD_MALLOC_TUNING": malloc_tuning, "MINIGRAD_DIST_TIMEOUT": dist_timeout, "MINIGRAD_TRACE": trace_on}


def register(name: str, check, error=ValueError) -> None:
    """Add the check of setting ``name`` to check_environment; its ``error`` is raised as a SettingError."""
    def checked():
        try:
            check()
        except error as exc:
            raise SettingError(str(exc)) from None
    SETTINGS[name] = checked


def check_environment() -> None:
    """Raise SettingError for the first MINIGRAD_* variable holding a bad value; None when all are usable.

    For a program that wants bad settings refused at start-up rather than where each is first used (the
    ``minigrad`` command calls it before any work)."""
    for check in SETTINGS.values():
        check()
