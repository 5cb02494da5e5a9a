"""Compare whole training steps of small models between two source trees of minigrad, taking turns.

    git worktree add /tmp/before <commit>
    python benchmarks/ab_model_step.py /tmp/before . [--rounds 5] [--threads 2] [--json benchmarks/results/NAME.json]

A step is forward, cross-entropy, backward and an SGD update on one fixed batch. Each round runs every tree once,
in a fresh process (each imports its own minigrad), after a 0.5 s pause; a process times 9 steps per model after
two warm-up steps and reports the median. The figure per tree and model is the median over rounds. Models: LeNet-5
(MNIST, B=128), ResNet-20 (CIFAR-sized, B=64: BatchNorm after every convolution) and a MobileNetV2 for 32x32
(B=64: depthwise convolutions, BatchNorm, ReLU6) and the small VGG (B=64: BatchNorm, ReLU and max pooling after
every second convolution).
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

MODELS = {"lenet5-b128": ("lenet5", (128, 1, 28, 28), {}),
          "resnet20-b64": ("resnet20", (64, 3, 32, 32), {}),
          "mobilenet_v2-b64": ("mobilenet_v2", (64, 3, 32, 32), {"in_channels": 3}),
          "vgg_small-b64": ("vgg_small", (64, 3, 32, 32), {})}

WORKER = r"""
import json, statistics, sys, time
import numpy as np
import minigrad as mg
mg.set_num_threads(int(sys.argv[2]))
out = {}
for name, (factory, shape, kwargs) in json.loads(sys.argv[1]).items():
    mg.manual_seed(0)
    model = getattr(mg.models, factory)(**kwargs)
    loss_fn, opt = mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype("float32")
    target = rng.integers(0, 10, shape[0])
    times = []
    for step in range(11):
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), target)
        model.backward(loss_fn.backward())
        opt.step()
        if step >= 2:
            times.append(time.perf_counter() - start)
    out[name] = statistics.median(times)
print(json.dumps(out))
"""


def markdown(record) -> str:
    """The Markdown table of a recorded comparison (the --json record)."""
    lines = ["| model step | before ms | after ms | after / before |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {case['before_ms']:.2f} | {case['after_ms']:.2f} | {case['ratio']:.3f} |"
              for name, case in record["cases"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="the two source trees (before, after)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", help="the models whose name contains this text")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    models = {k: v for k, v in MODELS.items() if not args.only or args.only in k}
    seconds = {tree: {name: [] for name in models} for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            time.sleep(0.5)
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            run = subprocess.run([sys.executable, "-c", WORKER, json.dumps(models), str(args.threads)], env=env,
                                 cwd=tree, check=True, capture_output=True, text=True)
            for name, value in json.loads(run.stdout).items():
                seconds[tree][name].append(value)
    before, after = args.trees
    cases = {name: {"before_ms": 1e3 * statistics.median(seconds[before][name]),
                    "after_ms": 1e3 * statistics.median(seconds[after][name])} for name in models}
    for case in cases.values():
        case["ratio"] = case["after_ms"] / case["before_ms"]
    print(markdown({"cases": cases}))
    if args.json:
        from ab_conv_step import _commit   # (this folder: the scripts run as python benchmarks/NAME.py)
        record = {**record_header("ab_model_step"),
                  "trees": args.trees, "commits": [_commit(tree) for tree in args.trees], "rounds": args.rounds,
                  "threads": args.threads, "load_average": os.getloadavg(), "cases": cases}
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
