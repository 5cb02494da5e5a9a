"""MkDocs hook (mkdocs.yml `hooks:`): the traces shown in the docs are made by the docs build, not pasted.

A page writes a marker on a line of its own and the build replaces it with a code block holding the output of
a real run with MINIGRAD_TRACE=1 (stderr and stdout together, in the order they were written):

    <!-- trace: lenet5-step -->          one LeNet-5 training step, batch 2 (forward, loss, backward)
    <!-- trace: conv_from_scratch -->    python examples/conv_from_scratch.py

A run that fails fails the build.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARKER = re.compile(r"^<!-- trace: ([\w-]+) -->$", re.MULTILINE)

_LENET_STEP = """
import numpy as np
import minigrad as mg
mg.manual_seed(0)
model = mg.models.lenet5()
criterion = mg.nn.CrossEntropyLoss()
x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
loss = criterion(model(x), np.array([3, 7]))
model.backward(criterion.backward())
"""

RUNS = {"lenet5-step": [sys.executable, "-c", _LENET_STEP],
        "conv_from_scratch": [sys.executable, str(ROOT / "examples" / "conv_from_scratch.py")]}


def _trace(name: str) -> str:
    if name not in RUNS:
        raise ValueError(f"docs/trace_hook.py: unknown trace {name!r}; known: {sorted(RUNS)}")
    env = {**os.environ, "MINIGRAD_TRACE": "1", "MINIGRAD_BACKEND": "numpy", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(RUNS[name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          cwd=ROOT, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"docs/trace_hook.py: the {name} run failed (exit {done.returncode}):\n{done.stdout}")
    return done.stdout.rstrip()


def on_page_markdown(markdown, page, config, files):
    def replace(match):
        return "```text\n" + _trace(match.group(1)) + "\n```"
    return _MARKER.sub(replace, markdown)
