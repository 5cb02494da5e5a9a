"""The layering rules of minigrad/, checked on the source (docs/architecture.md):

- no module imports a private (``_name``) name from another module;
- no import cycle between modules (lazy imports inside functions count; package ``__init__`` files,
  which only gather their submodules, do not);
- no package ``__init__`` imports (through any chain) a module that imports that package back: importing
  ``minigrad.<pkg>.<module>`` runs ``minigrad/<pkg>/__init__.py`` first, so such a chain works only by the
  luck of the import order;
- the packages depend in one direction, runtime at the bottom, cli on top (``RANK``);
- every module is under ~400 lines, and the top level of ``minigrad/`` holds only the package face and a few
  modules that belong to no package;
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


def _imports(module, path, tree, known, submodule_imports_skip_package=False):
    """(imported module, imported names) pairs of every import in the file, functions included.
    With submodule_imports_skip_package, ``from package import submodule`` yields only the submodule."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, is_package)
            names = [alias.name for alias in node.names]
            submodules = [name for name in names if f"{source}.{name}" in known]
            if not (submodule_imports_skip_package and len(submodules) == len(names)):
                yield source, names
            for name in submodules:                  # from package import submodule
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


def _ancestors(module):
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph_with_packages():
    """module -> imported modules, where importing a module of another package also imports that package's
    ``__init__`` (and its parents' that the importer is not inside)."""
    modules = list(_modules())
    known = {name for name, _, _ in modules}
    packages = {name for name, path, _ in modules if path.name == "__init__.py"}
    graph = {}
    for module, path, tree in modules:
        own = _ancestors(module) | ({module} if module in packages else set())
        targets = set()
        for source, _ in _imports(module, path, tree, known, submodule_imports_skip_package=True):
            if source not in known or source == module or source in _ancestors(module):
                continue                               # a parent package is initialised before its modules
            targets.add(source)
            targets |= {pkg for pkg in _ancestors(source) if pkg in packages and pkg not in own}
        targets -= own if module in packages else set()   # a package face importing its own modules is fine
        graph[module] = targets - {module}
    return graph, packages


def test_no_package_init_imports_back_into_itself():
    graph, packages = _graph_with_packages()
    offenders = []
    for package in sorted(packages - {"minigrad"}):
        stack, seen = [(package, [package])], {package}
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == package or (nxt.startswith(package + ".") and node not in packages | {package} and
                                      not node.startswith(package + ".")):
                    offenders.append(" -> ".join(path + [nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert offenders == []


# The direction of dependencies (docs/architecture.md): a package may import only packages of a lower rank
# (and itself). nn is the base of its tier: optim, onnx, distributed and the model zoo build on it. viz (pictures
# of a network) sits beside train and bench: it may use nn, functional, runtime, data and io; only cli above it.
RANK = {"runtime": 0, "debug": 1, "kernels": 1, "functional": 2, "data": 2, "io": 2, "nn": 3,
        "optim": 4, "onnx": 4, "distributed": 4, "models": 4, "train": 5, "bench": 5, "viz": 5,
        "cli": 6}


def test_packages_depend_downwards_only():
    modules = list(_modules())
    known = {name for name, _, _ in modules}
    offenders = []
    for module, path, tree in modules:
        parts = module.split(".")
        if len(parts) < 2 or parts[1] == "__main__":
            continue                                   # the package face and `python -m minigrad`: above all
        here = parts[1]
        assert here in RANK, f"{module}: a package without a rank in RANK"
        for source, _ in _imports(module, path, tree, known, submodule_imports_skip_package=True):
            target = source.split(".")
            if target[0] != "minigrad" or len(target) < 2 or target[1] == here:
                continue
            if target[1] in RANK and RANK[target[1]] >= RANK[here]:
                offenders.append(f"{module} imports {source}")
    assert offenders == []


def test_modules_are_small_and_the_top_level_is_short():
    too_long = [f"{path.relative_to(PACKAGE)}: {len(path.read_text().splitlines())} lines"
                for _, path, _ in _modules() if len(path.read_text().splitlines()) > 420]
    assert too_long == []
    loose = sorted(p.name for p in PACKAGE.iterdir() if p.is_file() and not p.name.endswith(".pyc"))
    assert loose == ["__init__.py", "__main__.py", "models.py", "py.typed"]
