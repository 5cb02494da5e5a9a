"""How much a second thread speeds up a LeNet-5 training step: minigrad with NumPy's passes, with the compiled
kernels, and PyTorch, on 1 and 2 threads.

    python benchmarks/thread_scaling.py [--rounds 5] [--batch 128] [--json benchmarks/results/NAME.json]

Every (arm, threads) pair runs in a fresh process, in turn, after a 0.5 s pause: it builds the model (seed 0), runs
two warm-up steps and reports the median of 15 steps (forward, cross-entropy, backward, SGD with momentum 0.9, one
fixed batch). The figure per pair is the median over rounds; the speed-up is the 1-thread figure over the 2-thread
one. The host's speed drifts between processes (this VM's steps move by 30% from run to run), which the rounds and
medians are for.
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

WORKER = r"""
import statistics, sys, time
import numpy as np
threads, batch, arm = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
target = rng.integers(0, 10, batch)
if arm == "torch":
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from minigrad.bench.cases import torch_lenet5
    model = torch_lenet5(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(target)
    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(tx), ty).backward()
        opt.step()
else:
    import minigrad as mg
    mg.set_num_threads(threads)
    mg.set_conv_algorithm(arm)
    mg.manual_seed(0)
    model = mg.models.lenet5()
    loss_fn, opt = mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    def step():
        opt.zero_grad()
        loss_fn(model(x), target)
        model.backward(loss_fn.backward())
        opt.step()
times = []
for i in range(17):
    start = time.perf_counter()
    step()
    if i >= 2:
        times.append(time.perf_counter() - start)
print(statistics.median(times))
"""
ARMS = ("numpy", "compiled", "torch")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    seconds = {(arm, t): [] for arm in ARMS for t in (1, 2)}
    for _ in range(args.rounds):
        for t in (1, 2):
            for arm in ARMS:
                time.sleep(0.5)
                run = subprocess.run([sys.executable, "-c", WORKER, str(t), str(args.batch), arm], check=True,
                                     capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(t)))
                seconds[(arm, t)].append(float(run.stdout))
    rows = {}
    print("| arm | 1 thread ms | 2 threads ms | speed-up |\n|---|---:|---:|---:|")
    for arm in ARMS:
        one, two = (1e3 * statistics.median(seconds[(arm, t)]) for t in (1, 2))
        rows[arm] = {"one_thread_ms": one, "two_threads_ms": two, "speedup": one / two,
                     "all_ms": {str(t): [1e3 * s for s in seconds[(arm, t)]] for t in (1, 2)}}
        print(f"| {arm} | {one:.2f} | {two:.2f} | {one / two:.2f} |")
    if args.json:
        record = {**record_header("thread_scaling"),
                  "batch": args.batch, "rounds": args.rounds, "rows": rows}
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)
    return 0


def markdown(record) -> str:
    """The Markdown table of a recorded run (the --json record)."""
    lines = ["| arm | 1 thread ms | 2 threads ms | speed-up |", "|---|---:|---:|---:|"]
    for arm, row in record["rows"].items():
        lines.append(f"| {arm} | {row['one_thread_ms']:.2f} | {row['two_threads_ms']:.2f} | {row['speedup']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
