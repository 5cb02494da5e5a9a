"""Forward+backward time of the layers added for small modern networks, against PyTorch, in one process.

    python benchmarks/layer_zoo_ratios.py [--repeat 7] [--threads 2] [--json out.json]

Each case runs minigrad's layer and the same torch.nn module on the same float32 input, taking turns
(a 0.25 s pause before each turn, so one library's BLAS/OpenMP threads do not slow the other), and reports
medians of ``--repeat`` turns of forward + backward (input gradient and parameter gradients). Shapes are
those of a small CNN's activations (64 x 32 x 28 x 28 for elementwise layers) and of a MobileNet block.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

import minigrad as mg

N, C, H = 64, 32, 28
IMAGE = (N, C, H, H)

# name -> (minigrad factory, torch factory (torch.nn), input shape)
CASES = {}
for name in ("SiLU", "Mish", "Hardswish", "Hardsigmoid", "ELU", "SELU", "CELU", "Softplus", "ReLU6", "Hardtanh",
             "Softsign", "Tanhshrink"):
    CASES[name] = (name, (), {}, IMAGE)
CASES.update({
    "PReLU(32)": ("PReLU", (C,), {}, IMAGE),
    "Threshold(0.1, 20)": ("Threshold", (0.1, 20.0), {}, IMAGE),
    "GroupNorm(8, 32)": ("GroupNorm", (8, C), {}, IMAGE),
    "InstanceNorm2d(32, affine)": ("InstanceNorm2d", (C,), {"affine": True}, IMAGE),
    "LocalResponseNorm(5)": ("LocalResponseNorm", (5,), {}, IMAGE),
    "Dropout2d(0.2)": ("Dropout2d", (0.2,), {}, IMAGE),
    "AlphaDropout(0.2)": ("AlphaDropout", (0.2,), {}, IMAGE),
    "Upsample x2 nearest": ("Upsample", (), {"scale_factor": 2, "mode": "nearest"}, (N, C, 14, 14)),
    "Upsample x2 bilinear": ("Upsample", (), {"scale_factor": 2, "mode": "bilinear"}, (N, C, 14, 14)),
    "PixelShuffle(2)": ("PixelShuffle", (2,), {}, (N, 4 * C, 14, 14)),
    "PixelUnshuffle(2)": ("PixelUnshuffle", (2,), {}, IMAGE),
    "ZeroPad2d(2)": ("ZeroPad2d", (2,), {}, IMAGE),
    "ReflectionPad2d(2)": ("ReflectionPad2d", (2,), {}, IMAGE),
    "ReplicationPad2d(2)": ("ReplicationPad2d", (2,), {}, IMAGE),
    "AdaptiveMaxPool2d(7)": ("AdaptiveMaxPool2d", (7,), {}, IMAGE),
    "AdaptiveMaxPool2d(5)": ("AdaptiveMaxPool2d", (5,), {}, IMAGE),
    "AdaptiveAvgPool2d(5)": ("AdaptiveAvgPool2d", (5,), {}, IMAGE),
    "LPPool2d(2, 2)": ("LPPool2d", (2, 2), {}, IMAGE),
    "Conv1d(64, 64, 5, pad 2)": ("Conv1d", (64, 64, 5), {"padding": 2}, (N, 64, 256)),
    "MaxPool1d(2)": ("MaxPool1d", (2,), {}, (N, 64, 256)),
    "AvgPool1d(2)": ("AvgPool1d", (2,), {}, (N, 64, 256)),
    "depthwise 3x3 (32 ch, 28x28)": ("Conv2d", (C, C, 3), {"padding": 1, "groups": C, "bias": False}, IMAGE),
    "depthwise 3x3 s2 (96 ch, 28x28)": ("Conv2d", (96, 96, 3), {"padding": 1, "stride": 2, "groups": 96,
                                                                 "bias": False}, (N, 96, 28, 28)),
})


def _pair(torch, spec):
    name, args, kwargs, shape = spec
    ours = getattr(mg.nn, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    if state:
        ours.load_state_dict(state)
    return ours, theirs, shape


def _time(fn, repeat):
    times = []
    for _ in range(repeat):
        time.sleep(0.25)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--only", help="run the cases whose name contains this text")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    mg.set_num_threads(args.threads) if hasattr(mg, "set_num_threads") else None
    rng = np.random.default_rng(0)
    rows = []
    for label, spec in CASES.items():
        if args.only and args.only not in label:
            continue
        ours, theirs, shape = _pair(torch, spec)
        x = rng.standard_normal(shape).astype(np.float32)
        y = ours(x)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        ours.backward(dy)
        xt = torch.from_numpy(x).requires_grad_(True)
        dyt = torch.from_numpy(dy)

        def step_ours():
            ours.zero_grad()
            ours(x)
            ours.backward(dy)

        def step_torch():
            theirs.zero_grad()
            xt.grad = None
            theirs(xt).backward(dyt)

        step_torch()
        mine, ref = [], []
        for _ in range(args.repeat):                 # turns: one of each, alternating
            mine += _time(step_ours, 1)
            ref += _time(step_torch, 1)
        row = {"case": label, "shape": list(shape), "minigrad_ms": 1e3 * statistics.median(mine),
               "torch_ms": 1e3 * statistics.median(ref)}
        row["ratio"] = row["minigrad_ms"] / row["torch_ms"]
        rows.append(row)
        print(f"{label:<34} {row['minigrad_ms']:8.2f} ms  torch {row['torch_ms']:8.2f} ms  ratio {row['ratio']:5.2f}",
              flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "other"
    report = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "isa": isa, "threads": args.threads,
              "numpy": np.__version__, "torch": torch.__version__, "repeat": args.repeat, "rows": rows}
    print(f"{cpu}, {isa}, {args.threads} threads; worst ratio {max(r['ratio'] for r in rows):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
