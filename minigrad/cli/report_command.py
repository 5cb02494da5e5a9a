"""``minigrad report RUN_DIR``: the run in one offline HTML page, RUN_DIR/report.html (``mg.viz.report``)."""
from __future__ import annotations

import os

from .common import CLIError, Printer

__all__ = ["cmd_report", "write_report", "require_plot_extra", "run_record"]

ENVIRONMENT = ("minigrad", "python", "platform", "numpy", "cupy", "gpu", "active_backend", "cpu_count", "cpus_usable",
               "minigrad_threads", "blas", "thread_env")


def run_record() -> dict:
    """What `minigrad train` records in its checkpoints for the run report: the command line (when it ran as the
    ``minigrad`` command) and the environment (the fields of ``minigrad info --json`` that describe the machine)."""
    import shlex
    import sys
    from .info import collect_info
    info = collect_info()
    record = {"environment": {key: info.get(key) for key in ENVIRONMENT if info.get(key) not in (None, {}, [])}}
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program == "minigrad" or sys.argv[0].replace(os.sep, "/").endswith(("minigrad/cli/__main__.py",
                                                                            "minigrad/__main__.py")):
        record["command"] = "minigrad " + shlex.join(sys.argv[1:])
    return record


def require_plot_extra(what: str):
    """CLIError naming the [plot] extra when matplotlib is missing (the filters and feature maps need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError(f'{what} needs matplotlib, which is not installed: pip install -e ".[plot]" '
                       "(from the minigrad checkout)") from None


def write_report(run_dir, data_root=None, progress=None) -> str:
    """``mg.viz.report`` with its refusals as CLIError (one line, exit 2)."""
    from ..viz.report import report
    from ..viz.report_run import NotARunError
    try:
        return report(run_dir, data_root=data_root, progress=progress)
    except NotARunError as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:             # an unknown model name, weights that do not fit the rebuilt model
        raise CLIError(f"{run_dir}: {exc}") from None


def cmd_report(args) -> int:
    say = Printer(False)
    if not args.run_dir.strip():
        raise CLIError("the run directory is empty: give the --out directory of a `minigrad train` run")
    require_plot_extra("the run report")
    if not os.path.isdir(args.run_dir):
        raise CLIError(f"{args.run_dir} is not a directory: give the --out directory of a `minigrad train` run")
    path = write_report(args.run_dir, data_root=args.data_root)
    say(f"Report: {path} ({os.path.getsize(path) / 1e6:.1f} MB); open it in a browser, no server needed")
    return 0
