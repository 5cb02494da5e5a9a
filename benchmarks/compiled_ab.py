"""The compiled kernels (Numba) against NumPy's passes and PyTorch: ReLU, max pooling and convolutions (cpu_conv's
columns and col2im, depthwise) forward + backward, whole training steps, and what compiling costs on first use.

    python benchmarks/compiled_ab.py [--repeat 9] [--threads 2] [--json benchmarks/results/NAME.json]

Three arms take turns in one process, each turn after a 0.25 s pause: minigrad with NumPy's passes
(mg.set_conv_algorithm("numpy")), minigrad with the compiled kernels ("compiled") and PyTorch. A turn times 5 calls
(layers) or 5 steps (models) after one untimed call; figures are medians over the rounds. A step is forward,
cross-entropy, backward and an SGD (momentum 0.9) update on one fixed batch, the same model in both libraries
(LeNet-5; ResNet-20 and MobileNetV2 for 32x32 inputs run in minigrad only, both paths).
Compile cost: fresh processes with an empty Numba cache (compile) and then the filled one (load), timing
`import minigrad` plus the first ReLU, MaxPool2d and strided Conv2d forward + backward in float32.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import minigrad as mg
from minigrad.bench.cases import torch_lenet5
from minigrad.bench.runner import record_header

LAYERS = {"relu 128x6x28x28": ("relu", (128, 6, 28, 28)), "relu 64x64x16x16": ("relu", (64, 64, 16, 16)),
          "maxpool2 128x6x28x28": ("pool2", (128, 6, 28, 28)), "maxpool2 128x16x10x10": ("pool2", (128, 16, 10, 10)),
          "maxpool2 64x64x32x32": ("pool2", (64, 64, 32, 32)), "maxpool3s2p1 64x64x32x32": ("pool3", (64, 64, 32, 32)),
          "conv3x3 s2 64x16x32x32->32": ("conv_s2", (64, 16, 32, 32)), "conv3x3 64x32x16x16->32": ("conv", (64, 32, 16, 16)),
          "depthwise3x3 64x64x32x32": ("dw", (64, 64, 32, 32)), "depthwise3x3 128x32x28x28": ("dw", (128, 32, 28, 28)),
          "depthwise3x3 128x96x14x14": ("dw", (128, 96, 14, 14))}
STEPS = {f"lenet5 step B={b}": b for b in (64, 128, 256)}
MODELS = {"resnet20 step B=64": ("resnet20", (64, 3, 32, 32), {}),           # minigrad only: no PyTorch twin here
          "mobilenet_v2 step B=64": ("mobilenet_v2", (64, 3, 32, 32), {"in_channels": 3})}
FIRST_USE = r"""
import time; start = time.perf_counter()
import numpy as np, minigrad as mg
x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype("float32")
x16 = np.random.default_rng(0).standard_normal((8, 16, 8, 8)).astype("float32")
for layer, inp in ((mg.nn.ReLU(), x), (mg.nn.MaxPool2d(2), x), (mg.nn.Conv2d(16, 8, 3, stride=2, padding=1), x16)):
    y = layer.forward(inp); layer.backward(np.ones_like(y))
print(time.perf_counter() - start)
"""


def _layer_pair(torch, kind, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "relu":
        layer, t_fn = mg.nn.ReLU(), torch.relu
    elif kind == "pool2":
        layer, t_fn = mg.nn.MaxPool2d(2), lambda t: torch.nn.functional.max_pool2d(t, 2)
    elif kind == "pool3":
        layer, t_fn = mg.nn.MaxPool2d(3, 2, 1), lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1)
    else:                                      # convolutions: the same weights in both libraries
        c = shape[1]
        out, stride, groups = {"conv_s2": (2 * c, 2, 1), "conv": (c, 1, 1), "dw": (c, 1, c)}[kind]
        layer = mg.nn.Conv2d(c, out, 3, stride=stride, padding=1, groups=groups)
        t_layer = torch.nn.Conv2d(c, out, 3, stride=stride, padding=1, groups=groups)
        with torch.no_grad():
            t_layer.weight.copy_(torch.from_numpy(layer.weight.data))
            t_layer.bias.copy_(torch.from_numpy(layer.bias.data))
        t_fn = t_layer
    dy = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def ours():
        layer.forward(x)
        layer.backward(dy)

    def theirs():
        t_fn(tx).backward(tdy)
        tx.grad = None
    return ours, theirs


def _step_pair(torch, batch):
    ours, _ = _model_step("lenet5", (batch, 1, 28, 28), {})
    rng = np.random.default_rng(0)                            # the same batch as _model_step's
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    target = rng.integers(0, 10, batch)
    nn = torch.nn
    t_model = torch_lenet5(torch)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x), torch.from_numpy(target)

    def theirs():
        t_opt.zero_grad()
        nn.functional.cross_entropy(t_model(tx), ty).backward()
        t_opt.step()
    return ours, theirs


def _model_step(factory, shape, kwargs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    target = rng.integers(0, 10, shape[0])
    mg.manual_seed(0)
    model = getattr(mg.models, factory)(**kwargs)
    loss_fn, opt = mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def ours():
        opt.zero_grad()
        loss_fn(model(x), target)
        model.backward(loss_fn.backward())
        opt.step()
    return ours, None


def _turn(fn, algorithm=None):
    if algorithm:
        mg.set_conv_algorithm(algorithm)
    time.sleep(0.25)
    fn()
    start = time.perf_counter()
    for _ in range(5):
        fn()
    return (time.perf_counter() - start) / 5


def _first_use(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, MINIGRAD_CONV="compiled")
    run = subprocess.run([sys.executable, "-c", FIRST_USE], env=env, check=True, capture_output=True, text=True)
    return float(run.stdout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = parser.parse_args(argv)
    import torch
    mg.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    cases = {}
    pairs = {name: _layer_pair(torch, *spec) for name, spec in LAYERS.items()}
    pairs.update({name: _step_pair(torch, batch) for name, batch in STEPS.items()})
    pairs.update({name: _model_step(*spec) for name, spec in MODELS.items()})
    for name, (ours, theirs) in pairs.items():
        times = {"numpy": [], "compiled": [], "torch": []}
        for _ in range(args.repeat):
            times["numpy"].append(_turn(ours, "numpy"))
            times["compiled"].append(_turn(ours, "compiled"))
            if theirs is not None:
                times["torch"].append(_turn(theirs))
        ms = {arm: 1e3 * statistics.median(v) if v else None for arm, v in times.items()}
        cases[name] = {"numpy_ms": ms["numpy"], "compiled_ms": ms["compiled"], "torch_ms": ms["torch"],
                       "speedup": ms["numpy"] / ms["compiled"]}
        if ms["torch"]:
            cases[name].update(numpy_over_torch=ms["numpy"] / ms["torch"], compiled_over_torch=ms["compiled"] / ms["torch"])
    mg.set_conv_algorithm("auto")
    with tempfile.TemporaryDirectory() as cache:
        first = {"compile_s": _first_use(cache), "cached_s": statistics.median(_first_use(cache) for _ in range(3))}
    env = dict(os.environ, MINIGRAD_CONV="numpy")
    first["numpy_s"] = statistics.median(
        float(subprocess.run([sys.executable, "-c", FIRST_USE], env=env, check=True, capture_output=True,
                             text=True).stdout) for _ in range(3))
    record = {**record_header("compiled_ab"),
              "threads": args.threads, "repeat": args.repeat, "cases": cases, "first_use": first}
    print(markdown(record))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)
    return 0


def markdown(record) -> str:
    """The Markdown tables of a recorded run (the --json record)."""
    lines = ["| case | NumPy passes ms | compiled ms | PyTorch ms | NumPy / PyTorch | compiled / PyTorch | speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda value: "-" if value is None else f"{value:.2f}"   # noqa: E731
    for name, c in record["cases"].items():
        lines.append(f"| {name} | {fmt(c['numpy_ms'])} | {fmt(c['compiled_ms'])} | {fmt(c['torch_ms'])} | "
                     f"{fmt(c.get('numpy_over_torch'))} | {fmt(c.get('compiled_over_torch'))} | {fmt(c['speedup'])} |")
    first = record["first_use"]
    lines += ["", f"First use (import minigrad + first ReLU, MaxPool2d and strided Conv2d forward + backward, float32): "
              f"{first['compile_s']:.2f} s compiling, {first['cached_s']:.2f} s from the disk cache, "
              f"{first['numpy_s']:.2f} s with NumPy's passes."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
