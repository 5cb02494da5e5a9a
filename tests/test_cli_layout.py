"""The ``minigrad`` command is a package of small modules, one concern each (minigrad/cli/), behind the same
entry points: the console script ``minigrad.cli:main`` and ``python -m minigrad.cli``."""
import importlib
import re
import subprocess
import sys
from pathlib import Path

import minigrad as mg

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400     # the style guide's bound on a module


def test_every_module_of_the_command_is_small():
    sizes = {path.name: len(path.read_text().splitlines()) for path in (ROOT / "minigrad" / "cli").glob("*.py")}
    assert {"main.py", "parser.py", "train_command.py", "evaluate.py", "info.py"} <= set(sizes)
    assert {name: n for name, n in sizes.items() if n >= MAX_LINES} == {}


def test_the_console_script_and_python_m_reach_the_same_main():
    script = re.search(r'^minigrad = "([\w.]+):(\w+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert script is not None
    module, name = script.groups()
    from minigrad.cli import main
    assert getattr(importlib.import_module(module), name) is main
    proc = subprocess.run([sys.executable, "-m", "minigrad.cli", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"minigrad {mg.__version__}", proc.stderr
