"""``minigrad.cli.main``: parse, run the command, and turn a user mistake into one line on stderr (exit 2)."""
from __future__ import annotations

import errno
import os
import sys

from ..runtime.settings import MAX_THREADS, SettingError, check_environment
from .common import CLIError
from .parser import CommandParser, build_parser

__all__ = ["main", "cmd_bench"]


def cmd_bench(bench_args) -> int:
    import importlib
    try:
        bench = importlib.import_module("minigrad.bench")   # lazily: `minigrad train` never imports it
    except ImportError as exc:
        if getattr(exc, "name", None) not in ("minigrad.bench", None):
            raise
        raise CLIError("`minigrad bench` is not available: this installation has no minigrad.bench module") from None
    parser = CommandParser(prog="minigrad bench", description="minigrad benchmarks")
    bench.add_arguments(parser)
    args = parser.parse_args(bench_args)
    for flag, path in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        problem = _output_path_problem(flag, path)   # refused before the benchmark runs, not after it
        if problem:
            raise CLIError(problem)
    for flag, accepts, wanted in _BENCH_NUMBERS:      # refused here, not by a traceback mid-benchmark
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None and not accepts(value):
            parser.error(f"argument {flag}: expected {wanted}, got {value!r}")
    return bench.run(args) or 0


# The numeric flags of `minigrad bench` (minigrad.bench's parser reads them as plain int/float).
_BENCH_NUMBERS = (("--threads", lambda v: 1 <= v <= MAX_THREADS, f"a positive integer up to {MAX_THREADS}"),
                  ("--repeat", lambda v: v >= 1, "a positive integer"),
                  ("--pause", lambda v: 0 <= v < float("inf"), "a finite number of seconds >= 0"))


def _output_path_problem(flag, path) -> str | None:
    """Why the file ``path`` (given with ``flag``) cannot be written, or None: checked before the benchmark runs."""
    if path is None:
        return None
    if not path.strip():
        return f"{flag} is empty: give the file to write, or leave out {flag}"
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{flag} {path} is a directory: give a file name, e.g. {os.path.join(path, 'bench.json')}"
    if not os.path.exists(directory):
        return f"{flag} {path}: the directory {directory} does not exist; create it or choose another file"
    if not os.path.isdir(directory):
        return f"{flag} {path}: {directory} is not a directory; choose another file"
    if not os.access(directory, os.W_OK | os.X_OK) and not os.access(path, os.W_OK):
        return f"{flag} {path}: no permission to write in {directory}; choose another file"
    return None


# What to do about an operating-system error while reading or writing a run's files.
_OS_ADVICE = {errno.ENOSPC: "free some space or choose another --out", errno.EDQUOT: "free some space or choose "
              "another --out", errno.EROFS: "the file system is read-only: choose another --out",
              errno.EACCES: "no permission: choose another --out or fix its permissions",
              errno.EPERM: "no permission: choose another --out or fix its permissions",
              errno.ENOTDIR: "a path component is a file, not a directory: choose another --out",
              errno.EEXIST: "a file is in the way: choose another --out",
              errno.ELOOP: "it is a symbolic link, which minigrad does not write through: remove it"}


def _error_line(exc) -> str | None:
    """The one-line message for a user-facing error, or None for an error that is a bug (traceback)."""
    from ..io.checkpoint import CheckpointError
    from ..runtime.memory import MemorySettingError
    from ..train.resume import ResumeError
    from ..train.rundir import RunDirectoryError
    from ..runtime.backend import BackendUnavailableError
    if isinstance(exc, (CLIError, ResumeError, RunDirectoryError, MemorySettingError, SettingError)):
        return str(exc)
    if isinstance(exc, BackendUnavailableError) or (isinstance(exc, ValueError) and
                                                    str(exc).startswith("MINIGRAD_BACKEND=")):
        source = " (MINIGRAD_BACKEND is set)" if os.environ.get("MINIGRAD_BACKEND") and not str(exc).startswith(
            "MINIGRAD_BACKEND=") else ""
        return f"{exc}{source}"
    if isinstance(exc, CheckpointError):
        return f"{exc}; check the file, or start a new run with another --out (or --overwrite)"
    if isinstance(exc, MemoryError) and str(exc):   # the memory guard names the layer, shape and bytes
        if "use smaller layer sizes" in str(exc):   # the model's own weights: no batch size helps
            return f"{exc} (--model chooses the network)"
        return f"{exc} (the batch is set by --batch-size)"
    if isinstance(exc, OSError) and exc.errno in _OS_ADVICE:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}; {_OS_ADVICE[exc.errno]}"
    return None


def _report(line, exc, distributed):
    """Print the error line, except under mpirun for a mistake every process makes alike (a setting, the command
    line): rank 0 alone prints it, and with --distributed the processes then leave together (mpirun would end
    the job, rank 0 with it, about a second after the first one exits), each with status 2."""
    rank = None
    if isinstance(exc, SettingError) or getattr(exc, "every_rank", False):
        from ..distributed.comm import launcher_rank
        rank = launcher_rank()
    if rank in (None, 0):
        print(line, file=sys.stderr, flush=True)
    if rank is not None and distributed:
        from ..distributed.comm import leave_together
        leave_together()


def main(argv=None) -> int:
    """Run ``minigrad ARGV``; returns the exit status. A closed stdout (``minigrad info | head -1``) ends the
    command quietly with status 1 (Python's recipe: what is left to print goes to os.devnull)."""
    try:
        try:
            return _run(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()     # here, not at interpreter exit where a BrokenPipeError is only reported
    except BrokenPipeError:
        if not _stdout_is_closed():    # another pipe (a socket, a child process): not ours to hide
            raise
        _stdout_to_devnull()
        return 1


def _stdout_is_closed() -> bool:
    """True when nobody reads stdout any more (poll reports an error on a pipe without readers)."""
    import select
    if not hasattr(select, "poll"):
        return True                    # no poll (Windows): take the broken pipe to be stdout, as the recipe does
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, AttributeError, ValueError):   # no file descriptor behind sys.stdout
        return False


def _stdout_to_devnull():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):   # no file descriptor behind sys.stdout (captured, closed)
        pass


def _run(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    debug = "--debug" in argv
    try:
        if command == "bench":
            check_environment()
            return cmd_bench(argv[1:])
        args = build_parser().parse_args(argv)
        check_environment()             # a bad MINIGRAD_* setting is one line now, not an error mid-training
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - user-facing errors become one line; anything else is re-raised
        line = _error_line(exc)
        if line is None or debug:
            raise
        _report(f"minigrad {command}: error: {line}", exc, "--distributed" in argv)
        return 2
    except SystemExit as exc:           # a usage mistake (CommandParser.error: printed by rank 0 only)
        if exc.code == 2 and "--distributed" in argv:
            from ..distributed.comm import launcher_rank, leave_together
            if launcher_rank() is not None:
                leave_together()
        raise
    except KeyboardInterrupt:
        print(f"minigrad {command}: interrupted", file=sys.stderr)
        return 130
