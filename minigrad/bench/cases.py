"""The cases of ``minigrad bench`` and of ``benchmarks/``: each a minigrad step and its PyTorch twin.

A case builds its data once; ``case.minigrad()`` / ``case.torch()`` return a zero-argument step
(forward + backward, or a whole training step) that returns the arrays it produced.
Groups: conv (Conv2d forward+backward on ResNet shapes, depthwise, 1x1), pool, layers (single layers and
MobileNetV2's inverted residual block), train.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

GROUPS = ("conv", "pool", "layers", "train")


@dataclass
class Case:
    group: str
    name: str
    shape: str
    flops: float | None
    minigrad: Callable[[], Callable]
    torch: Callable[[], Callable] | None
    note: str = ""
    floor: Callable[[], Callable] | None = None    # the design's limit (conv cases on NumPy), see conv_floor


# name, batch (full, quick), in, out, size, kernel, stride, padding, groups
CONV_SPECS = [
    ("cifar16", (64, 4), 16, 16, 32, 3, 1, 1, 1),
    ("cifar32", (64, 4), 32, 32, 16, 3, 1, 1, 1),
    ("cifar64", (64, 4), 64, 64, 8, 3, 1, 1, 1),
    ("cifar16s2", (64, 4), 16, 32, 32, 3, 2, 1, 1),
    ("imagenet64", (8, 1), 64, 64, 56, 3, 1, 1, 1),
    ("imagenet128", (8, 1), 128, 128, 28, 3, 1, 1, 1),
    ("imagenet256", (8, 1), 256, 256, 14, 3, 1, 1, 1),
    ("imagenet1x1", (8, 1), 256, 64, 56, 1, 1, 0, 1),
    ("depthwise3x3", (64, 4), 64, 64, 32, 3, 1, 1, 64),
    ("depthwise3x3s2", (64, 4), 64, 64, 32, 3, 2, 1, 64),
]


def _torch():
    """PyTorch with minigrad's float32 precision: on Ampere and newer GPUs PyTorch would otherwise run float32
    convolutions (cuDNN) in TF32, with a 10-bit mantissa, and the comparison would not be like for like."""
    import torch
    full_fp32(torch)
    return torch


def cupy_tf32() -> bool:
    """Whether CuPy's matmuls (minigrad's GEMMs on the GPU) run in TF32: CuPy's own setting, CUPY_TF32=1."""
    return os.environ.get("CUPY_TF32", "0").strip() == "1"


def full_fp32(torch) -> None:
    """Give PyTorch's cuDNN convolutions and cuBLAS matmuls the precision minigrad's GEMMs have: full float32
    (TF32 off), unless CUPY_TF32=1 puts CuPy's matmuls in TF32, then TF32 on for both (no effect on the CPU)."""
    torch.backends.cudnn.allow_tf32 = cupy_tf32()
    torch.backends.cuda.matmul.allow_tf32 = cupy_tf32()


def _data(xp, shape, seed):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _torch_device(backend):
    torch = _torch()
    if backend == "cupy":
        return "cuda" if torch.cuda.is_available() else None
    return "cpu"


def conv_case(spec, quick, xp, backend) -> Case:
    import minigrad as mg
    name, batches, c, o, size, k, stride, pad, groups = spec
    n = batches[1] if quick else batches[0]
    out = (size + 2 * pad - k) // stride + 1
    flops = 3 * 2.0 * n * o * out * out * (c // groups) * k * k     # forward, input grad, weight grad
    x, dy = _data(xp, (n, c, size, size), 0), _data(xp, (n, o, out, out), 1)

    def minigrad_step():
        layer = mg.nn.Conv2d(c, o, k, stride=stride, padding=pad, groups=groups).to(backend)

        def step():
            y = layer(x)
            return y, layer.backward(dy)
        return step

    def torch_step():
        torch = _torch()
        device = _torch_device(backend)
        conv = torch.nn.Conv2d(c, o, k, stride=stride, padding=pad, groups=groups).to(device)
        tx = torch.as_tensor(np.asarray(x.get() if backend == "cupy" else x), device=device).requires_grad_()
        tdy = torch.as_tensor(np.asarray(dy.get() if backend == "cupy" else dy), device=device)

        def step():
            y = conv(tx)
            return torch.autograd.grad(y, (tx, conv.weight, conv.bias), tdy)
        return step

    shape = f"{n}x{c}x{size}x{size} k{k} s{stride} -> {o}" + (f" g{groups}" if groups > 1 else "")
    def floor_step():
        return conv_floor(n, c, o, out * out, k * k)
    has_floor = backend == "numpy" and groups == 1       # no GEMM design bounds a depthwise convolution
    return Case("conv", name, shape, flops, minigrad_step, torch_step, floor=floor_step if has_floor else None)


def conv_floor(n, c, o, length, taps):
    """The limit of any unfold + GEMM convolution of this geometry, as a step to time: the three GEMMs
    with the exact unfold shapes (y = W cols, dW = dy cols^T, dcols = W^T dy; M = n*length rows,
    K = c*taps) into preallocated outputs, plus one write and one read-modify-write of the column
    buffer (the im2col copy and the col2im accumulation); GEMMs only for 1x1 (taps == 1: no columns).
    Of the two layouts (columns (M, K) channels-last, or (K, M)) the faster one is used."""
    rng = np.random.default_rng(7)
    m, k = n * length, c * taps

    def make(layout):
        a = lambda *shape: rng.standard_normal(shape, dtype=np.float32)   # noqa: E731
        if layout == "MK":                # cols (M, K), weights (K, O), dy (M, O)
            cols, w, dy = a(m, k), a(k, o), a(m, o)
            y, dw, dcols = a(m, o), a(k, o), a(m, k)
            products = ((cols, w, y), (cols.T, dy, dw), (dy, w.T, dcols))
        else:                             # cols (K, M), weights (O, K), dy (O, M)
            cols, w, dy = a(k, m), a(o, k), a(o, m)
            y, dw, dcols = a(o, m), a(o, k), a(k, m)
            products = ((w, cols, y), (dy, cols.T, dw), (w.T, dy, dcols))

        def step():
            if taps > 1:
                cols.fill(0.5)            # the im2col write
            for left, right, result in products:
                np.matmul(left, right, out=result)
            if taps > 1:
                np.add(dcols, 1.0, out=dcols)   # the col2im read-modify-write
            return y, dw, dcols
        return step

    best, best_time = None, float("inf")
    for layout in ("MK", "KM"):
        step = make(layout)
        step()
        start = time.perf_counter()
        for _ in range(3):
            step()
        elapsed = time.perf_counter() - start
        if elapsed < best_time:
            best, best_time = step, elapsed
    return best


def pool_cases(quick, xp, backend):
    import minigrad as mg
    specs = [("maxpool2", (64, 4), 16, 32, "max", 2, 2, 0), ("maxpool3s2", (8, 1), 64, 112, "max", 3, 2, 1),
             ("avgpool2", (64, 4), 16, 32, "avg", 2, 2, 0),
             ("maxpool2-lenet", (128, 4), 6, 28, "max", 2, 2, 0)]        # LeNet's first pool, batch 128
    cases = []
    for name, batches, c, size, kind, k, s, p in specs:
        n = batches[1] if quick else batches[0]
        x = _data(xp, (n, c, size, size), 2)
        out = (size + 2 * p - k) // s + 1
        dy = _data(xp, (n, c, out, out), 3)

        def minigrad_step(kind=kind, k=k, s=s, p=p, x=x, dy=dy):
            layer = (mg.nn.MaxPool2d if kind == "max" else mg.nn.AvgPool2d)(k, s, p)

            def step():
                y = layer(x)
                return y, layer.backward(dy)
            return step

        def torch_step(kind=kind, k=k, s=s, p=p, x=x, dy=dy):
            torch = _torch()
            device = _torch_device(backend)
            fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
            tx = torch.as_tensor(np.asarray(x.get() if backend == "cupy" else x), device=device).requires_grad_()
            tdy = torch.as_tensor(np.asarray(dy.get() if backend == "cupy" else dy), device=device)

            def step():
                return torch.autograd.grad(fn(tx, k, s, p), (tx,), tdy)
            return step
        cases.append(Case("pool", name, f"{n}x{c}x{size}x{size} k{k} s{s} p{p}", None, minigrad_step, torch_step))
    return cases


def layer_cases(quick, xp, backend):
    import minigrad as mg
    n = 16 if quick else 256
    nb = 4 if quick else 64
    specs = [
        ("linear784x256", (n, 784), lambda: mg.nn.Linear(784, 256), lambda t: t.nn.Linear(784, 256),
         2 * 3.0 * n * 784 * 256),
        ("relu", (nb, 64, 16, 16), lambda: mg.nn.ReLU(), lambda t: t.nn.ReLU(), None),
        ("relu-lenet", (2 * nb, 6, 28, 28), lambda: mg.nn.ReLU(), lambda t: t.nn.ReLU(), None),   # LeNet's first
        ("batchnorm2d", (nb, 64, 16, 16), lambda: mg.nn.BatchNorm2d(64), lambda t: t.nn.BatchNorm2d(64), None),
        ("groupnorm8", (nb, 64, 16, 16), lambda: mg.nn.GroupNorm(8, 64), lambda t: t.nn.GroupNorm(8, 64), None),
        ("upsample-nearest", (nb, 32, 16, 16), lambda: mg.nn.Upsample(scale_factor=2, mode="nearest"),
         lambda t: t.nn.Upsample(scale_factor=2, mode="nearest"), None),
        ("upsample-bilinear", (nb, 32, 16, 16), lambda: mg.nn.Upsample(scale_factor=2, mode="bilinear"),
         lambda t: t.nn.Upsample(scale_factor=2, mode="bilinear"), None),
    ]
    nm = 8 if quick else 128
    for name, cin, cout, stride in (("mobilenet-block", 32, 32, 1), ("mobilenet-block-s2", 32, 64, 2)):
        size, hidden = 14, 6 * cin                     # MobileNetV2's inverted residual, expand ratio 6
        out = (size - 1) // stride + 1
        macs = nm * (cin * hidden * size * size + hidden * 9 * out * out + hidden * cout * out * out)
        specs.append((name, (nm, cin, size, size),
                      lambda cin=cin, cout=cout, stride=stride: mg.models.inverted_residual(cin, cout, stride, 6),
                      lambda t, cin=cin, cout=cout, stride=stride: torch_inverted_residual(t, cin, cout, stride, 6),
                      3 * 2.0 * macs))
    cases = []
    for name, shape, make_mg, make_torch, flops in specs:
        x = _data(xp, shape, 4)

        def minigrad_step(make_mg=make_mg, x=x):
            layer = make_mg().to(backend)
            dy = None

            def step():
                nonlocal dy
                y = layer(x)
                if dy is None:
                    dy = xp.ones_like(y)
                return y, layer.backward(dy)
            return step

        def torch_step(make_torch=make_torch, x=x):
            torch = _torch()
            device = _torch_device(backend)
            layer = make_torch(torch).to(device)
            tx = torch.as_tensor(np.asarray(x.get() if backend == "cupy" else x), device=device).requires_grad_()
            params = (tx,) + tuple(layer.parameters())

            def step():
                y = layer(tx)
                return torch.autograd.grad(y, params, torch.ones_like(y))
            return step
        cases.append(Case("layers", name, "x".join(map(str, shape)), flops, minigrad_step, torch_step))
    return cases


def torch_inverted_residual(torch, cin, cout, stride, expand):
    """PyTorch's twin of mg.models.inverted_residual (ReLU6, BatchNorm2d): 1x1 expand, 3x3 depthwise, 1x1 project,
    plus the input when stride is 1 and the channel counts are equal."""
    nn, hidden = torch.nn, cin * expand

    def conv_norm_act(i, o, k, s, g):
        return [nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU6()]

    class InvertedResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(*conv_norm_act(cin, hidden, 1, 1, 1), *conv_norm_act(hidden, hidden, 3, stride,
                                      hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return x + self.conv(x) if stride == 1 and cin == cout else self.conv(x)
    return InvertedResidual()


def torch_lenet5(torch):
    """minigrad.models.lenet5's twin in PyTorch (the bench's cases, `bench --train` and the benchmark scripts)."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))


def _torch_mlp(torch):
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def train_cases(quick, xp, backend):
    """Full training steps (forward, cross-entropy, backward, SGD with momentum); skipped notes if parts are missing."""
    import minigrad as mg
    try:
        from minigrad import models
        loss_cls, sgd = mg.nn.CrossEntropyLoss, mg.optim.SGD
        builders = {"lenet5": (models.lenet5, torch_lenet5), "mlp784-256-10": (models.mlp, _torch_mlp)}
    except (ImportError, AttributeError) as exc:
        return [], [f"train cases need mg.models, mg.nn.CrossEntropyLoss and mg.optim.SGD ({exc})"]
    cases = []
    for name, (make_mg, make_torch) in builders.items():
        for n in ((8,) if quick else (64, 256)):
            x = _data(xp, (n, 1, 28, 28), 5)
            labels = np.random.default_rng(6).integers(0, 10, n)
            y = xp.asarray(labels)

            def minigrad_step(make_mg=make_mg, x=x, y=y):
                model = make_mg().to(backend)
                loss = loss_cls()
                opt = sgd(model.parameters(), lr=0.01, momentum=0.9)

                def step():
                    opt.zero_grad()
                    value = loss(model(x), y)
                    model.backward_parameters(loss.backward())   # like torch: no gradient for the data
                    opt.step()
                    return (value,)
                return step

            def torch_step(make_torch=make_torch, x=x, labels=labels):
                torch = _torch()
                device = _torch_device(backend)
                model = make_torch(torch).to(device)
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                tx = torch.as_tensor(np.asarray(x.get() if backend == "cupy" else x), device=device)
                ty = torch.as_tensor(labels, device=device)

                def step():
                    opt.zero_grad(set_to_none=True)
                    value = torch.nn.functional.cross_entropy(model(tx), ty)
                    value.backward()
                    opt.step()
                    return (value,)
                return step
            cases.append(Case("train", f"{name}-b{n}", f"{n}x1x28x28", None, minigrad_step, torch_step))
    return cases, []


def build_cases(groups, quick, xp, backend):
    """(cases, skipped notes) for the requested groups."""
    cases, skipped = [], []
    if "conv" in groups:
        cases += [conv_case(spec, quick, xp, backend) for spec in CONV_SPECS]
    if "pool" in groups:
        cases += pool_cases(quick, xp, backend)
    if "layers" in groups:
        cases += layer_cases(quick, xp, backend)
    if "train" in groups:
        found, notes = train_cases(quick, xp, backend)
        cases += found
        skipped += notes
    return cases, skipped
