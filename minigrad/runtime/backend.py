"""Backend switch: one array-module abstraction over NumPy (CPU) and CuPy (CUDA).

Every layer starts with ``xp = get_array_module(x)`` and names neither numpy nor
cupy below that line, so the same code runs on both. CuPy is imported lazily,
only when a user asks for it or hands us a CuPy array.

Public API::

    mg.set_backend("numpy" | "cupy")   # aliases "cpu" / "cuda"
    mg.get_backend() -> "numpy" | "cupy"
    mg.backend.get_array_module(*arrays) -> numpy or cupy module
    mg.backend.to_backend(array, "numpy" | "cupy")
"""
from __future__ import annotations

import sys

import numpy

from . import settings

__all__ = [
    "BACKEND_ALIASES", "BackendMismatchError", "BackendUnavailableError", "set_backend", "get_backend",
    "get_array_module", "active_module", "to_backend", "backend_of", "is_array",
    "register_array_module", "cupy_available", "describe", "is_gpu_array", "GPU_FLOAT_DTYPES",
    "check_backend_dtype",
]

# The names set_backend, to(), the CLI's --backend and $MINIGRAD_BACKEND take, and the backend each one means
# (settings.BACKEND_ALIASES, beside the other settings' values).
BACKEND_ALIASES = settings.BACKEND_ALIASES

# The floating dtypes the 'cupy' backend takes: every CUDA kernel of minigrad.kernels is compiled for
# these (tests/kernels/test_cuda_kernel_nvrtc.py). float16 is refused up front: the fused loss and
# optimizer kernels do not compile for it.
GPU_FLOAT_DTYPES = ("float32", "float64")

# Extra (array type -> (backend name, module)) pairs, e.g. the strict test backend.
_REGISTERED: dict[type, tuple[str, object]] = {}

_current = None  # resolved lazily from MINIGRAD_BACKEND on first use


class BackendMismatchError(TypeError):
    """Arrays from different backends (e.g. NumPy and CuPy) were mixed in one call."""


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot be used on this machine (CuPy missing, no GPU)."""


def _normalize(name) -> str:
    if not isinstance(name, str) or name.lower() not in BACKEND_ALIASES:
        raise ValueError(
            f"unknown backend {name!r}: expected one of 'numpy' (alias 'cpu') or 'cupy' (alias 'cuda')")
    return BACKEND_ALIASES[name.lower()]


_GPU_HINT = ("Check the NVIDIA driver (nvidia-smi) and that the CuPy package matches the CUDA version it "
             "supports: pip install -e \".[cuda12]\" (CUDA 12) or pip install -e \".[cuda13]\" (CUDA 13), from the "
             "minigrad checkout; "
             "or use the 'numpy' backend on this machine")


def _import_cupy():
    """Import CuPy and check a GPU is visible; raise BackendUnavailableError saying what to do."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise BackendUnavailableError(
            "the 'cupy' backend needs CuPy, which is not installed or failed to import "
            f"({type(exc).__name__}: {exc}). Install it with: pip install -e \".[cuda12]\" "
            "(CUDA 12) or pip install -e \".[cuda13]\" (CUDA 13), from the minigrad checkout") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendUnavailableError(
            f"CuPy is installed but no CUDA GPU is usable ({type(exc).__name__}: {exc}). " + _GPU_HINT) from exc
    if count < 1:
        raise BackendUnavailableError("CuPy is installed but no CUDA GPU is visible. " + _GPU_HINT)
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and at least one GPU is visible (imports CuPy)."""
    try:
        _import_cupy()
        return True
    except BackendUnavailableError:
        return False


def set_backend(name: str) -> None:
    """Select the active backend: 'numpy' (alias 'cpu') or 'cupy' (alias 'cuda').

    New parameters, data batches and ``Layer.to()`` with no argument use it.
    Raises BackendUnavailableError (saying what to install) when CuPy or a GPU is missing.
    """
    global _current
    name = _normalize(name)
    if name == "cupy":
        _import_cupy()
    _current = name


def get_backend() -> str:
    """Name of the active backend, 'numpy' or 'cupy' (default: $MINIGRAD_BACKEND, else numpy)."""
    global _current
    if _current is None:
        name = settings.backend_name() or "numpy"      # $MINIGRAD_BACKEND; a bad value raises SettingError
        if name == "cupy":
            _import_cupy()
        _current = name
    return _current


def module_for(name: str):
    """The array module (numpy or cupy) for a backend name."""
    name = _normalize(name)
    return _import_cupy() if name == "cupy" else numpy


def active_module():
    """The array module of the active backend."""
    return module_for(get_backend())


def register_array_module(array_type: type, name: str, module) -> None:
    """Teach get_array_module about another array type (used by the strict test backend)."""
    _REGISTERED[array_type] = (name, module)


def _classify(obj):
    """(backend name, module) for an array, or None for anything that is not an array."""
    for array_type, entry in _REGISTERED.items():
        if isinstance(obj, array_type):
            return entry
    if isinstance(obj, numpy.ndarray):
        return "numpy", numpy
    cls_module = type(obj).__module__
    if cls_module.startswith("cupy") and "cupy" in sys.modules and hasattr(obj, "device"):
        return "cupy", sys.modules["cupy"]
    return None


def is_array(obj) -> bool:
    """True for a NumPy or CuPy array (or a registered array type)."""
    return _classify(obj) is not None


def is_gpu_array(obj) -> bool:
    """True for a CuPy array (it takes the CUDA kernels of minigrad.kernels); False for anything else."""
    entry = _classify(obj)
    return entry is not None and entry[0] == "cupy"


def backend_of(array) -> str:
    """'numpy' or 'cupy' for an array; raises TypeError for anything else."""
    entry = _classify(array)
    if entry is None:
        raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")
    return entry[0]


def get_array_module(*arrays, names=None, where=None):
    """Return the array module (numpy or cupy) the given arrays live on.

    Non-array arguments (None, Python scalars) are ignored; with no array at all the
    active backend's module is returned. Mixing backends raises BackendMismatchError
    naming which argument lives where. ``names`` optionally labels the arguments and
    ``where`` (e.g. a layer's label) starts the message.
    """
    found = []
    for index, obj in enumerate(arrays):
        entry = _classify(obj)
        if entry is not None:
            label = names[index] if names is not None else f"argument {index}"
            found.append((label, entry))
    if not found:
        return active_module()
    first_label, (first_name, first_module) = found[0]
    for label, (name, module) in found[1:]:
        if module is not first_module:
            prefix = f"{where}: " if where else ""
            raise BackendMismatchError(
                f"{prefix}arrays from different backends in one call: {first_label} is a {first_name} array "
                f"but {label} is a {name} array; move them to one backend first "
                "(mg.backend.to_backend(array, name) or layer.to(name))")
    return first_module


def check_backend_dtype(name: str, dtype, where: str) -> None:
    """Raise TypeError when floating ``dtype`` cannot live on backend ``name`` (float16 on 'cupy').

    Names other than the built-in backends (e.g. the strict test backend) take every dtype.
    """
    if not isinstance(name, str) or BACKEND_ALIASES.get(name.lower()) != "cupy":
        return
    dtype = numpy.dtype(dtype)
    if dtype.kind == "f" and dtype.name not in GPU_FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype {dtype.name} is not supported on the 'cupy' backend (its CUDA kernels are "
                        f"built for {' and '.join(GPU_FLOAT_DTYPES)} only); use float32")


def to_backend(array, name: str | None = None):
    """Copy (or pass through) an array onto backend ``name`` (default: the active one)."""
    entry = _classify(array)
    registered = {n: m for n, m in _REGISTERED.values()}
    if name in registered:  # e.g. the strict test backend
        return array if entry is not None and entry[0] == name else registered[name].asarray(array)
    target = _normalize(name) if name is not None else get_backend()
    if entry is not None and entry[0] == target:
        return array
    if target == "numpy":
        if entry is not None and entry[0] == "cupy":
            return array.get()
        return numpy.asarray(array)
    cupy = _import_cupy()
    return cupy.asarray(array)


def describe() -> dict:
    """Versions and availability of the backends, for ``minigrad info``."""
    info = {"active": get_backend(), "numpy": numpy.__version__}
    try:
        cupy = _import_cupy()
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["cupy"] = cupy.__version__
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    except BackendUnavailableError as exc:
        info["cupy"] = None
        info["cupy_unavailable"] = str(exc)
    return info
