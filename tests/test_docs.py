"""The documentation cannot rot: every ```python block in README.md and docs/ runs here.

Blocks of one page run in order in one namespace (a page is a tutorial: later blocks use earlier
names), in a temporary working directory, with minigrad seeded and on the NumPy backend.
A block whose first line is ``# no-run: <reason>`` is skipped; that is only for GPU-only
snippets, and there must be few of them. ```bash blocks are not executed.
A second test builds the site with ``mkdocs build --strict`` when mkdocs is installed (the
``docs`` extra); it is skipped otherwise.
"""
from __future__ import annotations

import os
import importlib.util
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import minigrad as mg

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md"] + list((ROOT / "docs").rglob("*.md")))
NO_RUN = "# no-run:"
MAX_NO_RUN = 6  # GPU-only snippets; anything else must run

# ```python (optionally with attributes) ... ``` ; the fence may be indented (inside a list / admonition)
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                   re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[tuple[int, int, str]]:
    """(block number from 1, line number, source) of every python block in the page."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        info = match.group("info").strip().lstrip("{").strip()
        language = info.split()[0].lstrip(".").lower() if info else ""
        if language not in ("python", "py", "python3"):
            continue
        indent = match.group("indent")
        lines = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                 for line in match.group("body").splitlines()]
        line_number = text.count("\n", 0, match.start()) + 2
        blocks.append((len(blocks) + 1, line_number, "\n".join(lines) + "\n"))
    return blocks


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=page_id)
def test_page_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if any(re.search(r"^\s*(import torch|from torch)", source, re.M) for _, _, source in blocks) and \
            importlib.util.find_spec("torch") is None:
        pytest.skip(f"{page_id(page)} compares with PyTorch, which the test extra installs (not installed here)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINIGRAD_BACKEND", "numpy")
    mg.set_backend("numpy")
    mg.manual_seed(0)
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, line, source in blocks:
        if source.lstrip().startswith(NO_RUN):
            continue
        where = f"{page_id(page)}, python block {number} (line {line})"
        try:
            code = compile(source, where, "exec")
            exec(code, namespace)  # noqa: S102 - running our own documentation is the point
        except Exception:
            pytest.fail(f"{where} failed:\n{source}\n{traceback.format_exc()}", pytrace=False)


def test_no_run_blocks_are_few_and_explained():
    skipped = []
    for page in PAGES:
        for number, line, source in python_blocks(page):
            first = source.lstrip().splitlines()[0] if source.strip() else ""
            if first.startswith(NO_RUN):
                assert first[len(NO_RUN):].strip(), f"{page_id(page)} block {number}: no-run without a reason"
                skipped.append(f"{page_id(page)}:{line}")
    assert len(skipped) <= MAX_NO_RUN, f"too many blocks that do not run: {skipped}"


def test_docs_have_python_blocks():
    """Guard against the extractor silently finding nothing (e.g. a changed fence style)."""
    counts = {page_id(p): len(python_blocks(p)) for p in PAGES}
    assert counts.get("README.md", 0) >= 1, counts
    assert counts.get(os.path.join("docs", "conv_backward.md"), 0) >= 5, counts


def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).with_name("mkdocs"))
    if not Path(mkdocs).exists():
        pytest.skip("mkdocs is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e \".[docs]\")")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="mkdocstrings[python] is not installed (pip install -e \".[docs]\")")
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
