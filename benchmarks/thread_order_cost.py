"""What the fixed summation order costs: training steps with the chunks' partial sums added in chunk order
(minigrad's way, the same bits with any thread count) against the same steps adding each chunk's partial
sums as soon as its thread delivers them (the order then depends on thread timing).

    python benchmarks/thread_order_cost.py [--threads 2] [--pairs 100] [--json benchmarks/results/NAME.json]

LeNet-5 (batch 128) and ResNet-20 (batch 32, MNIST-sized 1x28x28 input) training steps (forward,
cross-entropy, backward_parameters, Adam), float32. The two variants alternate step by step (pairs of
adjacent steps, so a load that comes and goes on a shared machine hits both alike); per variant the median
step time, and the median over pairs of fixed / as delivered with its 10th-90th percentile range.
Prints a Markdown table; ``--json`` also records the figures (and the machine) in a JSON file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import numpy as np

import minigrad as mg
from minigrad.bench.runner import machine_info, versions_info
from minigrad.kernels import cpu_runtime

FIXED_ORDER = cpu_runtime._OrderedSum


class AsDelivered(FIXED_ORDER):
    """Adds each chunk's partial sums when its thread delivers them (arrival order, not chunk order)."""

    def add(self, index, parts):
        with self._lock:
            if self.total is None:
                self.total = None if parts is None else [None if p is None else p.copy() for p in parts]
            elif parts is not None:
                for total, part in zip(self.total, parts):
                    if total is not None:
                        total += part


def make_step(name, batch):
    mg.manual_seed(0)
    model = mg.models.lenet5() if name == "lenet5" else mg.models.resnet20(num_classes=10, in_channels=1)
    loss = mg.nn.CrossEntropyLoss()
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)   # (N, C, H, W)
    y = rng.integers(0, 10, batch)

    def step():
        opt.zero_grad()
        value = loss(model(x), y)
        model.backward_parameters(loss.backward())
        opt.step()
        return value

    return step


def time_step(step):
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args()
    mg.set_num_threads(args.threads)
    machine = machine_info()
    print(f"{machine['cpu']} ({machine['isa']}), {args.threads} threads, {args.pairs} pairs of steps\n")
    print("| model | fixed order (ms/step) | as delivered (ms/step) | fixed / as delivered (p10-p90 of pairs) |")
    print("|---|---|---|---|")
    record = {"benchmark": "thread_order_cost", "date": datetime.date.today().isoformat(),
              "machine": machine_info(), "versions": versions_info("numpy"), "cpus": os.cpu_count(),
              "threads": args.threads, "pairs": args.pairs, "numpy": np.__version__, "minigrad": mg.__version__,
              "loadavg_before": os.getloadavg()[0], "cases": {}}
    for name, batch in (("lenet5", 128), ("resnet20", 32)):
        step = make_step(name, batch)
        for _ in range(3):
            step()                                   # warm-up: work buffers, BLAS
        times = {FIXED_ORDER: [], AsDelivered: []}
        for pair in range(args.pairs):
            order = (FIXED_ORDER, AsDelivered) if pair % 2 == 0 else (AsDelivered, FIXED_ORDER)
            for cls in order:
                cpu_runtime._OrderedSum = cls
                times[cls].append(time_step(step))
        cpu_runtime._OrderedSum = FIXED_ORDER
        ratios = sorted(f / d for f, d in zip(times[FIXED_ORDER], times[AsDelivered]))
        deciles = statistics.quantiles(ratios, n=10)
        print(f"| {name} (batch {batch}) | {1e3 * statistics.median(times[FIXED_ORDER]):.1f} | "
              f"{1e3 * statistics.median(times[AsDelivered]):.1f} | {statistics.median(ratios):.3f} "
              f"({deciles[0]:.3f}-{deciles[-1]:.3f}) |")
        record["cases"][f"{name} (batch {batch})"] = {
            "fixed_order_s": statistics.median(times[FIXED_ORDER]),
            "as_delivered_s": statistics.median(times[AsDelivered]), "ratio_median": statistics.median(ratios), "ratio_p10": deciles[0], "ratio_p90": deciles[-1]}
    record["loadavg_after"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)


if __name__ == "__main__":
    main()
