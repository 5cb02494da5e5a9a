"""Compare the Conv2d forward+backward step of two source trees of minigrad, taking turns.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_conv_step.py /tmp/before . --json benchmarks/results/NAME.json

Each round runs every tree once, in a fresh process (so each imports its own minigrad), with a short pause
before each; a process times 15 steps per shape after one warm-up step and reports the median. The figure
per tree and shape is the median over rounds. Shapes: the small-batch CIFAR layers (cifar16: ResNet-20's first
stage), where a per-call cost
(argument checks, the memory guard) would show first, and one ImageNet layer.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from minigrad.bench.runner import record_header

SHAPES = {"cifar16": (64, 16, 32, 32, 16, 1), "cifar32": (64, 32, 16, 16, 32, 1), "cifar64": (64, 64, 8, 8, 64, 1), "cifar16s2": (64, 16, 32, 32, 32, 2),
          "imagenet128": (8, 128, 28, 28, 128, 1)}   # N, C, H, W, out channels, stride; 3x3, padding 1

WORKER = r"""
import json, statistics, sys, time
import numpy as np
import minigrad as mg
out = {}
for name, (n, c, h, w, o, s) in json.loads(sys.argv[1]).items():
    mg.manual_seed(0)
    conv = mg.nn.Conv2d(c, o, 3, stride=s, padding=1)
    x = np.random.default_rng(0).standard_normal((n, c, h, w)).astype("float32")
    grad = np.ones_like(conv(x))
    conv.backward(grad)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        conv(x)
        conv.backward(grad)
        times.append(time.perf_counter() - start)
    out[name] = statistics.median(times)
print(json.dumps(out))
"""


def _commit(tree):
    """The tree's git commit (with '+changes' when it has uncommitted ones), or None outside git."""
    try:
        head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no"], check=True,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def markdown(record) -> str:
    """The Markdown table of a recorded comparison (the --json record)."""
    lines = ["| shape | before ms | after ms | after / before |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {case['before_ms']:.2f} | {case['after_ms']:.2f} | {case['ratio']:.3f} |"
              for name, case in record["cases"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="the two source trees (before, after)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    seconds = {tree: {name: [] for name in SHAPES} for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            time.sleep(0.5)
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            run = subprocess.run([sys.executable, "-c", WORKER, json.dumps(SHAPES)], env=env, cwd=tree,
                                 check=True, capture_output=True, text=True)
            for name, value in json.loads(run.stdout).items():
                seconds[tree][name].append(value)
    before, after = args.trees
    cases = {name: {"before_ms": 1e3 * statistics.median(seconds[before][name]),
                    "after_ms": 1e3 * statistics.median(seconds[after][name])} for name in SHAPES}
    for case in cases.values():
        case["ratio"] = case["after_ms"] / case["before_ms"]
    print(markdown({"cases": cases}))
    if args.json:
        record = {**record_header("ab_conv_step"),
                  "trees": args.trees, "commits": [_commit(tree) for tree in args.trees], "rounds": args.rounds,
                  "load_average": os.getloadavg(), "cases": cases}
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
