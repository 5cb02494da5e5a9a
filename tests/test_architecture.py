"""The layering rules of minigrad/, checked on the source (docs/architecture.md):

- no module imports a private (``_name``) name from another module;
- no import cycle between modules (lazy imports inside functions count; package ``__init__`` files,
  which only gather their submodules, do not);
- CuPy is recognised in one place, ``backend.py`` (``is_gpu_array``, ``get_array_module``), and the
  kernel tables (which kernel serves a convolution or a pooling) live in one place, ``kernels/dispatch.py``;
- no measured timings in the code (they go stale there; docs/benchmarks.md holds them).
"""
import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minigrad"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def _resolve(module, node, is_package):
    """Absolute module name of an ImportFrom node inside `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module, path, tree, known):
    """(imported module, imported names) pairs of every import in the file, functions included."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, is_package)
            names = [alias.name for alias in node.names]
            yield source, names
            for name in names:                       # from package import submodule
                if f"{source}.{name}" in known:
                    yield f"{source}.{name}", []


def test_no_private_names_imported_across_modules():
    modules = list(_modules())
    known = {name for name, _, _ in modules}
    offenders = []
    for module, path, tree in modules:
        for source, names in _imports(module, path, tree, known):
            for name in names:
                if name.startswith("_") and not name.startswith("__") and source != module:
                    offenders.append(f"{module}: from {source} import {name}")
    assert offenders == []


def test_no_import_cycles():
    modules = list(_modules())
    known = {name for name, _, _ in modules}
    packages = {name for name, path, _ in modules if path.name == "__init__.py"}
    graph = {}
    for module, path, tree in modules:
        if module in packages:
            continue
        graph[module] = {source for source, _ in _imports(module, path, tree, known)
                         if source in known and source not in packages and source != module}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_cupy_is_recognised_only_in_backend_and_the_kernel_tables_live_only_in_dispatch():
    detection = re.compile(r"""__name__\s*[!=]=\s*["']cupy|startswith\(["']cupy|_is_cupy|isinstance\([^)]*cupy\.""")
    offenders = [str(path.relative_to(PACKAGE)) for _, path, _ in _modules()
                 if path.name != "backend.py" and detection.search(path.read_text())]
    assert offenders == []
    choosers = [str(path.relative_to(PACKAGE)) for _, path, _ in _modules()
                if re.search(r"^(CONV|POOL)_KERNELS\s*=", path.read_text(), re.M)]
    assert choosers == ["kernels/dispatch.py"]


def test_no_measured_timings_in_the_code():
    timing = re.compile(r"(?<![\w.])\d+(\.\d+)?\s?(ms|us|µs|GB/s|GFLOP/s)(?![\w])"           # 1.3 ms, 46 GFLOP/s
                        r"|(?<![\w.])\d*\.\d+\s?s\b"                                         # 0.1 s
                        r"|\d+(\.\d+)?(-\d+(\.\d+)?)?\s?[x×]\s+(slower|faster|longer|shorter)")   # 4-15x slower
    offenders = []
    for _, path, _ in _modules():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if timing.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert offenders == []
