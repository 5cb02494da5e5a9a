"""Every ``pip install`` line that installs minigrad works from a checkout and never reaches PyPI's ``minigrad``.

The name ``minigrad`` on PyPI belongs to an unrelated project, so ``pip install "minigrad[data]"`` would install
that package, not this one. Each install line in README.md, docs/, examples/, benchmarks/, .ci/ and every string
(and comment) in minigrad/ must name the checkout (``pip install -e ".[cuda12]"``, ``pip install -e .``,
``pip install -e /path/to/minigrad``) or a built wheel (``pip install "dist/minigrad-0.1.0-py3-none-any.whl[data]"``).
Lines installing other packages (torch, cupy-cuda12x, ...) are not concerned.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# options of `pip install` followed by a value that is not a requirement (-e's value is one: checked below)
_OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
                       "-f", "--find-links", "-t", "--target", "--prefix", "--root", "-w", "--wheel-dir",
                       "--python-version", "--platform", "--implementation", "--abi", "--config-settings",
                       "-C", "--trusted-host", "--cache-dir", "--src", "--progress-bar"}
_EDITABLE = {"-e", "--editable"}
_SEPARATORS = {"&&", "||", ";", "|", "#", "\\"}
# prose words that join two commands ("pip install X or Y") or end one ("... from the checkout")
_JOINERS = {"or", "and"}
# a requirement, a path, a URL or a wheel file (quotes already stripped)
_SPEC = re.compile(r"^[A-Za-z0-9_.\-/<>=!~\[\],*:@+%${}]+$")   # {}: an f-string's placeholder
_PYPI_MINIGRAD = re.compile(r"^minigrad\s*(\[[^\]]*\])?\s*((==|>=|<=|~=|!=|===|<|>|@).*)?$", re.IGNORECASE)


def install_targets(command: str) -> list[tuple[str, bool]]:
    """(target, editable) for each requirement/path named by the `pip install` that starts ``command``.

    The command ends at a shell separator, a comment, a closing backtick or parenthesis, or prose: after the
    first target, a plain word (no quotes, no ``[./=<>@``) counts only right after "or"/"and"."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|\S+', command.split("pip install", 1)[1])
    targets, expect_value, editable, joined = [], False, False, False
    for token in tokens:
        if token in _SEPARATORS or token.startswith(("#", "`", "(", "<")):
            break
        last = False
        if token[0] not in "\"'":
            stripped = token.rstrip(")`,;:")
            last = stripped != token                 # `pip install x)`, `pip install x`` end there
            if stripped not in (".", "..") and not stripped.endswith("/."):
                stripped = stripped.rstrip(".")      # the full stop of a sentence
            if not stripped:
                break
            token = stripped
        value = token.strip("\"'")
        plain = token[0] not in "\"'" and not any(c in value for c in "[./=<>@")
        if expect_value:
            expect_value = False
        elif editable:
            targets.append((value, True))
            editable = False
        elif token in _EDITABLE:
            editable = True
        elif token.startswith("-"):
            expect_value = token in _OPTIONS_WITH_VALUE
        elif token.lower() in _JOINERS:
            joined = True
            continue
        elif _SPEC.match(value) and (not plain or not targets or joined):
            targets.append((value, False))
        else:
            break
        joined = False
        if last:
            break
    return targets


def is_pypi_minigrad(target: str) -> bool:
    """True for what pip resolves on PyPI as the (unrelated) package `minigrad`: a bare name, with extras or a
    version, or bare extras (``"[cuda13]"``: no project at all)."""
    return bool(_PYPI_MINIGRAD.match(target)) or target.startswith("[")


def names_checkout_or_wheel(target: str, editable: bool) -> bool:
    path = re.sub(r"\[[^\]]*\]$", "", target)
    if re.fullmatch(r"(.*/)?minigrad-[^/]*\.whl", path) or (path.endswith(".whl") and "/" in path):
        return True                                   # dist/minigrad-0.1.0-py3-none-any.whl[cuda12], dist/*.whl
    return path in (".", "./") or "/" in path or editable and path.startswith(".")


def _python_texts(path: Path):
    """(line, text) of every string constant (implicit concatenations joined) and comment of a Python file."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            yield node.lineno, node.value
    for number, line in enumerate(source.splitlines(), 1):
        if "#" in line:
            yield number, line[line.index("#"):]


def _text_lines(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        # an inline code span wrapped onto the next line (Markdown prose): read both lines as one
        if path.suffix == ".md" and not line.lstrip().startswith(("```", "~~~")) and line.count("`") % 2 \
                and number < len(lines):
            line = line + " " + lines[number]
        yield number, line


def _files():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").rglob("*.md"))
    for folder in ("examples", "benchmarks", ".ci", "minigrad"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix not in (".json", ".npz", ".png", ".pyc", ".onnx", ".zarr") \
                    and "__pycache__" not in path.parts:
                yield path


def install_lines() -> list[tuple[str, str]]:
    """(where, command) of every `pip install` in the scanned files, the command running to the end of its
    line (string)."""
    found = []
    for path in _files():
        try:
            texts = _python_texts(path) if path.suffix == ".py" else _text_lines(path)
            texts = list(texts)
        except (UnicodeDecodeError, SyntaxError):
            continue
        for line, text in texts:
            for match in re.finditer(r"pip\s+install", text):
                command = re.sub(r"\s+", " ", text[match.start():])    # a docstring's command may wrap
                found.append((f"{path.relative_to(ROOT)}:{line + text.count(chr(10), 0, match.start())}", command))
    return found


LINES = install_lines()


def test_the_scan_finds_the_install_lines():
    """Guard against the scan silently finding nothing (a moved folder, a changed extractor)."""
    where = {w.split(":")[0] for w, _ in LINES}
    assert len(LINES) >= 15, LINES
    for page in ("README.md", "docs/getting_started.md", "docs/distributed.md", "minigrad/runtime/backend.py",
                 "minigrad/runtime/optional.py", ".ci/run"):
        assert page in where, (page, sorted(where))


@pytest.mark.parametrize("command, ok", [
    ('pip install -e ".[data]" && minigrad train', True),
    ("pip install -e . && python examples/conv_from_scratch.py", True),
    ('pip install -q -e ".[test]"', True),
    ("pip install -e /path/to/minigrad", True),
    ('pip install -e "/path/to/minigrad[data]"', True),
    ("pip install dist/minigrad-*.whl", True),
    ('pip install "dist/minigrad-0.1.0-py3-none-any.whl[cuda12]"', True),
    ('pip install -e ".[cuda12]" (from the minigrad checkout)', True),
    ('pip install -e ".[cuda12]" or -e ".[cuda13]" (from the minigrad checkout)', True),
    ("pip install torch --index-url https://download.pytorch.org/whl/cpu", True),
    ("pip install threadpoolctl to see the thread pools of minigrad", True),
    ("pip install -e . and then minigrad train", True),
    ("pip install -e . or minigrad", False),
    ('pip install "minigrad[data,distributed]"            # mpi4py', False),
    ('pip install "minigrad[cuda12]" (CUDA 12)', False),
    ("pip install 'minigrad[distributed]'", False),
    ("pip install minigrad", False),
    ("pip install minigrad==0.1.0", False),
    ('pip install -q "minigrad[cuda-dev]")', False),
    ('pip install -e ".[cuda12]" or "[cuda13]"', False),
])
def test_the_checker(command, ok):
    targets = install_targets(command)
    assert targets, command
    assert all(not is_pypi_minigrad(t) for t, _ in targets) is ok, targets


@pytest.mark.parametrize("where, command", LINES, ids=[w for w, _ in LINES])
def test_install_line_names_the_checkout_or_a_wheel(where, command):
    targets = install_targets(command)      # none: prose about `pip install`, not a command
    bad = [target for target, _ in targets if is_pypi_minigrad(target)]
    assert not bad, (f"{where}: {command!r} installs {bad} from PyPI, where `minigrad` is an unrelated project; "
                     'install from the checkout (pip install -e ".[extra]") or a built wheel '
                     '(pip install "dist/minigrad-<version>-py3-none-any.whl[extra]")')
    for target, editable in targets:
        if "minigrad" in target.lower() or target.startswith("."):
            assert names_checkout_or_wheel(target, editable), f"{where}: {target!r} in {command!r}"
