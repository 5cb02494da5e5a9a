"""Depthwise 3x3 convolution, forward + backward (dx, dW), minigrad against PyTorch, interleaved in one process.

    python benchmarks/depthwise_ab.py [--threads 2] [--reps 7] [--baseline HEAD] [--shapes all|bench|mnist]

Every repetition times, in turn, each variant (minigrad's current kernel; with --baseline REV also the kernel
of that git revision, its ``minigrad/kernels/cpu_depthwise*.py`` loaded with ``git show``) and PyTorch, with a
0.25 s pause before each turn so one side's heat or a neighbour's burst does not land on one side only; the
table gives medians over the repetitions and each minigrad variant's ratio to PyTorch's time, and the
ratio of the best (shortest) turns, which a loaded machine distorts least. ``--threads 1 --clock thread`` times
the CPU time of the one thread both run on instead of the wall clock. Layer-level
calls (``nn.Conv2d(C, C, 3, stride, padding=1, groups=C, bias=False)``), float32, as ``minigrad bench``'s
depthwise cases.
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import os
import platform
import subprocess
import sys
import time

import numpy as np

SHAPES = {
    "bench": [((64, 64, 32, 32), 1), ((64, 64, 32, 32), 2)],
    "mnist": [((128, 96, 14, 14), 1), ((128, 96, 28, 28), 2), ((128, 144, 7, 7), 1), ((128, 192, 7, 7), 1),
              ((128, 384, 4, 4), 1), ((128, 32, 28, 28), 1)],
}


def cpu_model():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_revision(rev):
    """The depthwise kernel as of git revision rev: its cpu_depthwise*.py modules (the face and, once split, its
    paths) as the package minigrad.kernels._depthwise_<rev>, the other kernel modules (cpu_runtime, ...) shared
    with the working tree. Returns the face, cpu_depthwise."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout

    files = [f for f in git("ls-tree", "--name-only", rev, "minigrad/kernels/").split()
             if os.path.basename(f).startswith("cpu_depthwise") and f.endswith(".py")]
    sources = {os.path.basename(f)[:-3]: git("show", f"{rev}:{f}") for f in files}
    package = "minigrad.kernels._depthwise_" + "".join(ch if ch.isalnum() else "_" for ch in rev)
    sys.modules[package] = pkg = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(package, None))
    pkg.__path__ = []
    import minigrad.kernels.cpu_runtime  # noqa: F401  (the shared modules, imported)
    for name, module in list(sys.modules.items()):           # relative imports of the rest: the current modules
        parts = name.split(".")
        if len(parts) == 3 and parts[:2] == ["minigrad", "kernels"] and parts[2] not in sources:
            sys.modules[f"{package}.{parts[2]}"] = module

    class Loader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            stem = module.__name__.rsplit(".", 1)[1]
            exec(compile(sources[stem], f"<{rev}:{stem}.py>", "exec"), module.__dict__)

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname.startswith(package + ".") and fullname.rsplit(".", 1)[1] in sources:
                return importlib.util.spec_from_loader(fullname, Loader())
            return None

    sys.meta_path.insert(0, Finder())
    return importlib.import_module(f"{package}.cpu_depthwise")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--baseline", default=None, help="git revision whose cpu_depthwise.py to time as well")
    ap.add_argument("--shapes", default="all", choices=["all", "bench", "mnist"])
    ap.add_argument("--turn", type=float, default=0.15, help="seconds of calls per turn (at least 2 calls)")
    ap.add_argument("--json", metavar="PATH", help="also write the measurements to PATH")
    ap.add_argument("--clock", default="wall", choices=["wall", "thread"],
                    help="thread: the calling thread's CPU time (time.thread_time), with --threads 1 only: on a "
                         "loaded machine it leaves out the time the process waits for a core")
    args = ap.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread measures one thread: use it with --threads 1")

    import torch

    import minigrad as mg
    from minigrad.kernels import cpu_depthwise, dispatch

    torch.set_num_threads(args.threads)
    mg.set_num_threads(args.threads)
    table = dispatch.CONV_KERNELS
    variants = {"new": table}
    if args.baseline:
        base = load_revision(args.baseline)
        variants["base"] = tuple((base, base.applies) if k is cpu_depthwise else (k, a) for k, a in table)

    shapes = SHAPES["bench"] + SHAPES["mnist"] if args.shapes == "all" else SHAPES[args.shapes]
    print(f"# CPU {cpu_model()}, {args.threads} threads each, numpy {np.__version__}, torch {torch.__version__}, "
          f"medians of {args.reps} interleaved repetitions, {args.clock} clock")
    names = list(variants)
    print("| shape (N, C, H, W) | stride | " + " | ".join(f"minigrad {v} ms | {v} / torch" for v in names)
          + " | torch ms | best-of: " + " | ".join(f"{v} / torch" for v in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names) + "---:|" + "---:|" * len(names))
    rows = []
    for shape, stride in shapes:
        med, best = measure(shape, stride, variants, args, mg, torch, dispatch)
        cells = " | ".join(f"{med[v]:.2f} | {med[v] / med['torch']:.2f}" for v in names)
        bests = " | ".join(f"{best[v] / best['torch']:.2f}" for v in names)
        print(f"| {shape} | {stride} | {cells} | {med['torch']:.2f} | {bests} |", flush=True)
        rows.append({"shape": list(shape), "stride": stride, "median_ms": med, "best_ms": best})
    if args.json:
        import json
        record = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "threads": args.threads, "reps": args.reps,
                  "clock": args.clock, "numpy": np.__version__, "torch": torch.__version__, "rows": rows}
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)


def measure(shape, stride, variants, args, mg, torch, dispatch):
    """({variant or 'torch': median ms}, {...: best ms}) of forward + backward, turns interleaved."""
    n, c, h, w = shape
    oh, ow = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal((n, c, oh, ow), dtype=np.float32)
    layer = mg.nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False)
    conv = torch.nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False)
    tx = torch.from_numpy(x).requires_grad_()
    tdy = torch.from_numpy(dy)
    table = dispatch.CONV_KERNELS
    clock = time.thread_time if args.clock == "thread" else time.perf_counter

    def minigrad_step(kernels):
        def step():
            dispatch.CONV_KERNELS = kernels
            layer(x)
            layer.backward(dy)
        return step

    def torch_step():
        y = conv(tx)
        torch.autograd.grad(y, (tx, conv.weight), tdy)

    steps = {v: minigrad_step(kernels) for v, kernels in variants.items()}
    steps["torch"] = torch_step
    calls = {}
    try:
        for key, step in steps.items():          # warm up; calls per turn from the warm-up's time
            step()
            t0 = time.perf_counter()
            step()
            calls[key] = max(2, int(args.turn / max(time.perf_counter() - t0, 1e-6)))
        times = {key: [] for key in steps}
        for _ in range(args.reps):
            for key, step in steps.items():
                time.sleep(0.25)
                t0 = clock()
                for _ in range(calls[key]):
                    step()
                times[key].append((clock() - t0) / calls[key] * 1e3)
    finally:
        dispatch.CONV_KERNELS = table
    return ({key: float(np.median(v)) for key, v in times.items()},
            {key: float(np.min(v)) for key, v in times.items()})


if __name__ == "__main__":
    main()
