"""Per-layer time of a LeNet-5 training step in minigrad, and PyTorch's whole step, on the same batch.

    python benchmarks/lenet_profile.py [--batch 128] [--steps 30] [--threads N]

Each layer's forward and backward are timed inside real training steps (forward, cross-entropy,
backward_parameters, Adam), medians over the steps after a warm-up; the first layer's backward computes
no input gradient, like PyTorch's. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import minigrad as mg


def profile_minigrad(batch, steps):
    mg.manual_seed(0)
    model = mg.models.lenet5()
    layers = list(model.children())
    loss = mg.nn.CrossEntropyLoss()
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    names = [f"{i} {type(layer).__name__}" for i, layer in enumerate(layers)]
    fwd = {n: [] for n in names}
    bwd = {n: [] for n in names}
    other = {"loss f+b": [], "optimizer": [], "step": []}
    for step in range(steps + 5):
        t_step = time.perf_counter()
        opt.zero_grad()
        h = x
        for name, layer in zip(names, layers):
            t = time.perf_counter()
            h = layer(h)
            fwd[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        loss(h, y)
        g = loss.backward()
        other["loss f+b"].append(time.perf_counter() - t)
        for i in range(len(layers) - 1, -1, -1):
            t = time.perf_counter()
            if i == 0:
                layers[i].backward_parameters(g)
            else:
                g = layers[i].backward(g)
            bwd[names[i]].append(time.perf_counter() - t)
        t = time.perf_counter()
        opt.step()
        other["optimizer"].append(time.perf_counter() - t)
        other["step"].append(time.perf_counter() - t_step)
        if step == 4:                      # drop the warm-up steps
            for table in (fwd, bwd, other):
                for v in table.values():
                    v.clear()
    med = lambda v: 1e3 * statistics.median(v)   # noqa: E731
    return [(n, med(fwd[n]), med(bwd[n])) for n in names], {k: med(v) for k, v in other.items()}


def profile_torch(batch, steps):
    import torch
    from torch import nn
    torch.manual_seed(0)
    from minigrad.bench.cases import torch_lenet5
    model = torch_lenet5(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, batch))
    times = []
    for step in range(steps + 5):
        t = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if step >= 5:
            times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def markdown(record) -> str:
    """The Markdown table of a recorded profile (the --json record)."""
    lines = [f"LeNet-5 training step, batch {record['batch']}, {record['threads']} threads, medians of "
             f"{record['steps']} steps (ms)", "", "| layer | forward | backward |", "|---|---:|---:|"]
    lines += [f"| {name} | {f:.2f} | {b:.2f} |" for name, f, b in record["layers"]]
    lines += [f"| loss (forward + backward) | {record['other']['loss f+b']:.2f} | |",
              f"| Adam step | {record['other']['optimizer']:.2f} | |", "",
              f"minigrad step {record['other']['step']:.2f} ms, PyTorch step {record['torch_ms']:.2f} ms: ratio "
              f"{record['other']['step'] / record['torch_ms']:.2f}"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="also write the table and the steps to PATH")
    args = parser.parse_args(argv)
    if args.threads:
        mg.set_num_threads(args.threads)
        import torch
        torch.set_num_threads(args.threads)
    rows, other = profile_minigrad(args.batch, args.steps)
    time.sleep(0.25)
    torch_ms = profile_torch(args.batch, args.steps)
    record = {"date": time.strftime("%Y-%m-%d"), "batch": args.batch, "steps": args.steps,
              "threads": mg.get_num_threads(), "layers": rows, "other": other, "torch_ms": torch_ms}
    print(markdown(record))
    if args.json:
        import json
        from minigrad.bench.runner import machine_info, versions_info
        record.update(machine=machine_info(), versions=versions_info("numpy"))
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
