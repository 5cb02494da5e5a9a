"""Per-layer profile of a training step: time, calls, bytes and GFLOP/s of each layer; PyTorch's whole step.

    python benchmarks/lenet_profile.py [--model lenet5|resnet20] [--batch 128] [--steps 30] [--threads N]
                                       [--json PATH]

The model runs as users run it: model(x), cross-entropy, model.backward_parameters, Adam; container fusions
(ReLU, MaxPool2d run pool first) are in the figures. Every leaf layer's forward and backward is timed by
wrapping its class's methods for the run (the first layer's backward computes no input gradient, like
PyTorch's); medians over the steps after a warm-up, a layer used twice in a step summed.

One more step on one thread (every piece of work inline) counts the calls each pass makes: Python functions
and C functions (NumPy's functions and array methods among them) seen by sys.setprofile; ufunc operators
(a + b, a @ b) raise no profile event and are not counted. "MB" is what a pass takes and returns (forward:
inputs and output; backward: output gradient, input gradient, parameter gradients): the least it must
move; GB/s is that over the pass's time, GFLOP/s the multiply-adds x 2 of a convolution or linear layer
over it. A pass far below the machine's bandwidth and GFLOP/s is bound by its calls and copies.

ResNet-20 (minigrad only: no PyTorch twin here) is reported by kind of layer (convolutions by geometry).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

import minigrad as mg
from minigrad.bench.runner import record_header

PHASES = ("forward", "backward")
METHODS = {"forward": "forward", "backward": "backward", "backward_parameters": "backward",
           "_forward_relu": "forward"}      # MaxPool2d's forward when it runs before its ReLU (nn/fusion.py)


def _nbytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(item) for item in value)
    return 0


def _flops(layer, out_size: int) -> int:
    """Multiply-adds x 2 of one product (forward; each of dW and dx costs the same)."""
    weight = getattr(layer, "weight", None)
    if isinstance(layer, mg.nn.Conv2d):
        return 2 * out_size * int(np.prod(weight.data.shape[1:]))
    if isinstance(layer, mg.nn.Linear):
        return 2 * out_size * weight.data.shape[1]
    return 0


def kind_of(layer) -> str:
    if isinstance(layer, mg.nn.Conv2d):
        kh, kw = layer.kernel_size
        return f"Conv2d {kh}x{kw} s{layer.stride[0]} {layer.in_channels}->{layer.out_channels}"
    return type(layer).__name__


class Meter:
    """Per leaf layer, per phase: seconds this step, calls, bytes and flops of the last pass."""

    def __init__(self, label):
        self.label = label
        self.seconds = {p: 0.0 for p in PHASES}
        self.times = {p: [] for p in PHASES}
        self.calls = {p: 0 for p in PHASES}
        self.bytes = {p: 0 for p in PHASES}
        self.flops = {p: 0 for p in PHASES}

    def end_step(self):
        for p in PHASES:
            self.times[p].append(self.seconds[p])
            self.seconds[p] = 0.0


class Instruments:
    """Wraps the forward/backward methods of the leaf layers' classes while it is entered."""

    def __init__(self, model, label=lambda layer, name: name):
        self.meters = {}
        for name, layer in model.named_modules():
            if not list(layer.children()):
                self.meters[id(layer)] = Meter(label(layer, name or type(layer).__name__))
        self.layers = [layer for layer in model.modules() if id(layer) in self.meters]
        self.current = None                  # the meter of the pass running now (for counting calls)
        self.counting = False

    def _wrap(self, method, name):
        meters, phase = self.meters, METHODS[name]
        products = 2 if name == "backward" else 1      # backward: dW and dx; backward_parameters: dW

        def timed(layer, *args, **kwargs):
            meter = meters.get(id(layer))
            if meter is None:
                return method(layer, *args, **kwargs)
            outer, self.current = self.current, (meter, phase)
            start = time.perf_counter()
            try:
                out = method(layer, *args, **kwargs)
            finally:
                meter.seconds[phase] += time.perf_counter() - start
                self.current = outer
            grads = [p.grad for p in layer.parameters(recurse=False)] if phase == "backward" else []
            passed_on = args and out is args[0]      # e.g. a fused ReLU's backward: nothing moved
            meter.bytes[phase] = 0 if passed_on else _nbytes(args) + _nbytes(out) + _nbytes(grads)
            size = args[0].size if phase == "backward" else getattr(out, "size", 0)
            meter.flops[phase] = _flops(layer, size) * (products if phase == "backward" else 1)
            return out
        return timed

    def __enter__(self):
        self.saved = []
        classes = {type(layer) for layer in self.layers}
        found = [(cls, name, getattr(cls, name)) for cls in classes for name in METHODS if hasattr(cls, name)]
        for cls, name, method in found:
            self.saved.append((cls, name, cls.__dict__.get(name)))
            setattr(cls, name, self._wrap(method, name))
        return self

    def __exit__(self, *exc_info):
        for cls, name, own in reversed(self.saved):
            if own is None:
                delattr(cls, name)
            else:
                setattr(cls, name, own)

    def count(self, fn):
        """Run fn() once with sys.setprofile counting each pass's Python and C function calls."""
        counts = defaultdict(int)

        def profiler(frame, event, arg):
            if self.current is not None and event in ("call", "c_call"):
                counts[self.current] += 1
        sys.setprofile(profiler)
        try:
            fn()
        finally:
            sys.setprofile(None)
        for (meter, phase), n in counts.items():
            meter.calls[phase] = n


def profile_minigrad(model_name, batch, steps, threads):
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    if model_name == "lenet5":
        model, shape = mg.models.lenet5(), (batch, 1, 28, 28)
        label = lambda layer, name: f"{name} {type(layer).__name__}"   # noqa: E731
    else:
        model, shape = mg.models.resnet20(), (batch, 3, 32, 32)
        label = lambda layer, name: kind_of(layer)                      # noqa: E731
    loss = mg.nn.CrossEntropyLoss()
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 10, batch)
    other = {"loss f+b": [], "optimizer": [], "step": []}

    def step(record=True):
        t_step = time.perf_counter()
        opt.zero_grad()
        out = model(x)
        t = time.perf_counter()
        loss(out, y)
        g = loss.backward()
        t_loss = time.perf_counter() - t
        model.backward_parameters(g)
        t = time.perf_counter()
        opt.step()
        if record:
            other["optimizer"].append(time.perf_counter() - t)
            other["loss f+b"].append(t_loss)
            other["step"].append(time.perf_counter() - t_step)

    with Instruments(model, label) as meters:
        for number in range(steps + 5):
            step(record=number >= 5)
            for meter in meters.meters.values():
                meter.end_step()
                if number < 5:                       # drop the warm-up steps
                    for p in PHASES:
                        meter.times[p].clear()
        mg.set_num_threads(1)
        meters.count(lambda: step(record=False))
        mg.set_num_threads(threads)
    med = lambda v: 1e3 * statistics.median(v)   # noqa: E731
    rows = defaultdict(lambda: {"n": 0, "ms": [0.0, 0.0], "calls": [0, 0], "mb": [0.0, 0.0], "gflop": [0.0, 0.0]})
    for meter in meters.meters.values():           # leaves in model order; same-kind rows add up
        row = rows[meter.label]
        row["n"] += 1
        for i, p in enumerate(PHASES):
            row["ms"][i] += med(meter.times[p])
            row["calls"][i] += meter.calls[p]
            row["mb"][i] += meter.bytes[p] / 1e6
            row["gflop"][i] += meter.flops[p] / 1e9
    return [dict(layer=name, **row) for name, row in rows.items()], {k: med(v) for k, v in other.items()}


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


def _rate(amount, ms):
    return f"{amount / ms:.1f}" if amount and ms >= 0.005 else "–"    # (MB or GFLOP) per ms = (GB or TFLOP)/s


def _markdown_per_layer_times(record) -> str:
    """An earlier record (each row: name, forward ms, backward ms; the layers called one by one)."""
    lines = [f"LeNet-5 training step, batch {record['batch']}, {record['threads']} threads, medians of "
             f"{record['steps']} steps (ms)", "", "| layer | forward | backward |", "|---|---:|---:|"]
    lines += [f"| {name} | {f:.2f} | {b:.2f} |" for name, f, b in record["layers"]]
    lines += [f"| loss (forward + backward) | {record['other']['loss f+b']:.2f} | |",
              f"| Adam step | {record['other']['optimizer']:.2f} | |", "",
              f"minigrad step {record['other']['step']:.2f} ms, PyTorch step {record['torch_ms']:.2f} ms: ratio "
              f"{record['other']['step'] / record['torch_ms']:.2f}"]
    return "\n".join(lines)


def markdown(record) -> str:
    """The Markdown table of a recorded profile (the --json record)."""
    if "model" not in record:
        return _markdown_per_layer_times(record)
    title = {"lenet5": "LeNet-5", "resnet20": "ResNet-20"}[record["model"]]
    lines = [f"{title} training step, batch {record['batch']}, {record['threads']} threads, medians of "
             f"{record['steps']} steps", "",
             "| layer | forward ms | backward ms | calls f / b | MB f / b | GB/s f / b | GFLOP/s f / b |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in record["layers"]:
        (f, b), (cf, cb), (mf, mb), (gf, gb) = row["ms"], row["calls"], row["mb"], row["gflop"]
        name = row["layer"] + (f" (x{row['n']})" if row["n"] > 1 else "")
        lines.append(f"| {name} | {f:.2f} | {b:.2f} | {cf} / {cb} | {mf:.1f} / {mb:.1f} | "
                     f"{_rate(mf, f)} / {_rate(mb, b)} | {_rate(1e3 * gf, f)} / {_rate(1e3 * gb, b)} |")
    lines += [f"| loss (forward + backward) | {record['other']['loss f+b']:.2f} | | | | | |",
              f"| Adam step | {record['other']['optimizer']:.2f} | | | | | |", ""]
    step = f"minigrad step {record['other']['step']:.2f} ms"
    if record.get("torch_ms"):
        step += f", PyTorch step {record['torch_ms']:.2f} ms: ratio {record['other']['step'] / record['torch_ms']:.2f}"
    return "\n".join(lines + [step])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["lenet5", "resnet20"], default="lenet5")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="also write the table and the steps to PATH")
    args = parser.parse_args(argv)
    if args.threads:
        mg.set_num_threads(args.threads)
    threads = mg.get_num_threads()
    rows, other = profile_minigrad(args.model, args.batch, args.steps, threads)
    torch_ms = None
    if args.model == "lenet5":
        import torch
        torch.set_num_threads(threads)
        time.sleep(0.25)
        torch_ms = profile_torch(args.batch, args.steps)
    record = {**record_header("lenet_profile"), "model": args.model, "batch": args.batch, "steps": args.steps,
              "threads": threads, "layers": rows, "other": other, "torch_ms": torch_ms}
    print(markdown(record))
    if args.json:
        import json
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
