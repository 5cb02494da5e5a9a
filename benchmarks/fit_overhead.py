"""What `mg.train.fit` costs per batch beyond the training step: fit over a DataLoader against a hand-written loop
over the same DataLoader and against the step alone on one fixed batch.

    python benchmarks/fit_overhead.py [--batches 100] [--rounds 5] [--threads 2] [--json benchmarks/results/NAME.json]

LeNet-5, and a linear classifier whose step is so short that the loop's cost stands out of the host's noise; batch
128, SGD (momentum 0.9), random MNIST-shaped data (generated, float32). The three arms take turns
in one process after a 0.25 s pause; each runs --batches batches (one epoch of the loader; fit without progress bar,
checkpoints or validation, as `minigrad train` runs it by default apart from the bar) and reports the time per
batch; figures are medians over the rounds. fit - loop is the loop's own cost (batches, metrics, callbacks); loop -
step is the loader's (gathering and shuffling batches).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import minigrad as mg
from minigrad.bench.runner import record_header


MODELS = {"lenet5": lambda: mg.models.lenet5(),
          "linear": lambda: mg.nn.Sequential(mg.nn.Flatten(), mg.nn.Linear(784, 10))}   # a step of ~0.5 ms


def _measure(factory, args):
    """{"fit", "loop", "step"}: ms per batch, medians over the rounds."""
    batch = 128
    rng = np.random.default_rng(0)
    images = rng.standard_normal((args.batches * batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, len(images))
    mg.manual_seed(0)
    model = factory()
    loss_fn = mg.nn.CrossEntropyLoss()
    opt = mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = mg.data.DataLoader(mg.data.ArrayDataset(images, labels), batch_size=batch, shuffle=True)

    def step(x, y):
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward_parameters(loss_fn.backward())
        opt.step()

    def with_fit():
        mg.train.fit(model, loss_fn, opt, loader, epochs=1, progress=False)

    def with_loop():
        for x, y in loader:
            step(x, y)

    def step_only():
        x, y = images[:batch], labels[:batch]
        for _ in range(args.batches):
            step(x, y)

    arms = {"fit": with_fit, "loop": with_loop, "step": step_only}
    times = {name: [] for name in arms}
    step_only()                                           # warm up: pools, buffers, compiled loops
    for _ in range(args.rounds):
        for name, fn in arms.items():
            time.sleep(0.25)
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / args.batches)
    return {name: 1e3 * statistics.median(v) for name, v in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    mg.set_num_threads(args.threads)
    ms = {name: _measure(factory, args) for name, factory in MODELS.items()}
    record = {**record_header("fit_overhead"),
              "threads": args.threads, "batches": args.batches, "rounds": args.rounds, "per_batch_ms": ms}
    print(markdown(record))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)
    return 0


def markdown(record) -> str:
    lines = ["| model | fit ms | loop ms | step ms | fit - loop | loop - step |", "|---|---:|---:|---:|---:|---:|"]
    for name, ms in record["per_batch_ms"].items():
        lines.append(f"| {name} | {ms['fit']:.3f} | {ms['loop']:.3f} | {ms['step']:.3f} | {ms['fit'] - ms['loop']:.3f} | "
                     f"{ms['loop'] - ms['step']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
