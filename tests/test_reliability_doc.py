"""docs/reliability.md ends with a table of guarantees, each with the tests that hold it: every row names a
test, and every test it names (``tests/file.py``, ``tests/file.py::test``, or ``::test`` of the file named
before it in the same cell) exists."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_TITLE = "## Guarantees and the tests that hold them"


def _rows():
    text = (ROOT / "docs" / "reliability.md").read_text()
    assert TABLE_TITLE in text
    table = text.split(TABLE_TITLE, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]     # after the header rows
    return [line.strip("|").rsplit("|", 1) for line in lines]


def _references(cell):
    """(test file, test name or None) for every test the cell names."""
    current = None
    for match in re.finditer(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`", cell):
        if match.group(1):
            current = match.group(1)
            yield current, match.group(2)
        else:
            assert current is not None, f"{match.group(0)} follows no test file in {cell!r}"
            yield current, match.group(3)


def test_every_guarantee_names_tests_that_exist():
    rows = _rows()
    assert len(rows) >= 20
    missing = []
    for guarantee, held_by in rows:
        references = list(_references(held_by))
        if not references:
            missing.append(f"{guarantee.strip()}: names no test")
        for path, name in references:
            source = ROOT / path
            if not source.is_file():
                missing.append(f"{path}: no such file")
                continue
            if name is None:
                continue
            tests = {node.name for node in ast.walk(ast.parse(source.read_text()))
                     if isinstance(node, ast.FunctionDef) and node.name.startswith("test")}
            if name not in tests:
                missing.append(f"{path}::{name}: no such test")
    assert missing == []
