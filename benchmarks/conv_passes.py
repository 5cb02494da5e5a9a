"""Where a cpu_conv convolution spends its time, pass by pass, against the floor of the unfold design.

    python benchmarks/conv_passes.py [--threads 1] [--repeat 10]

For each case, forward and backward (all three gradients) of ``minigrad.kernels.cpu_conv`` with its
columns recomputed (the kernel called directly), one thread by default so the passes add up to the
wall time; the kernel's own functions and its matrix multiplies are timed by wrapping them. Prints,
per case: the GEMMs (time and GFLOP/s), the column builds (``cpu_conv.Columns.fill``: the compiled one when Numba
runs, else NumPy's padding and window copies; bytes written and GB/s), the input gradient, and everything else (the
layout copies of y and dy, bias, sums), next to the floor (``minigrad.bench.cases.conv_floor``).
"""
from __future__ import annotations

import argparse
import functools
import time
import types

import numpy as np

import minigrad as mg
from minigrad.bench.cases import conv_floor
from minigrad.functional.conv import make_geometry
from minigrad.kernels import cpu_conv

CASES = {   # name: (x shape, out channels, kernel, stride, padding)
    "cifar32": ((64, 32, 16, 16), 32, 3, 1, 1),
    "cifar64": ((64, 64, 8, 8), 64, 3, 1, 1),
    "cifar16s2": ((64, 16, 32, 32), 32, 3, 2, 1),
    "imagenet256": ((8, 256, 14, 14), 256, 3, 1, 1),
}


class Timers:
    """Seconds per wrapped function, outermost calls only: a wrapped function called inside another (the padding
    inside a column build, the products inside the input-gradient functions) counts in its caller's time."""

    def __init__(self):
        self.seconds, self.depth = {}, 0

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.depth -= 1
        return timed


def profile(name, shape, o, k, s, p, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal((o, shape[1], k, k), dtype=np.float32)
    geom = make_geometry(x.shape, w.shape, s, p, 1, 1)
    dy = rng.standard_normal(geom.out_shape, dtype=np.float32)
    timers = Timers()
    originals = {n: getattr(cpu_conv, n) for n in ("pad_channels_last", "_dx_gather", "_dx_scatter")}
    fill = cpu_conv.Columns.fill             # the column build of either path (compiled from NCHW, or NumPy's)
    numpy_proxy = types.SimpleNamespace(**{n: getattr(np, n) for n in dir(np) if not n.startswith("__")})
    numpy_proxy.matmul = timers.wrap("GEMM", np.matmul)
    plan = cpu_conv.Plan(geom, np.float32)
    columns_bytes = geom.batch * plan.oh * plan.ow * plan.k * 4
    try:
        for n, fn in originals.items():
            setattr(cpu_conv, n, timers.wrap(n, fn))
        cpu_conv.Columns.fill = timers.wrap("columns", fill)
        cpu_conv.np = numpy_proxy
        step = lambda: (cpu_conv.conv_forward(x, w, None, geom),                      # noqa: E731
                        cpu_conv.conv_backward(x, w, dy, geom, True, True, True))
        step()
        timers.seconds.clear()
        start = time.perf_counter()
        for _ in range(repeat):
            step()
        total = (time.perf_counter() - start) / repeat
    finally:
        for n, fn in originals.items():
            setattr(cpu_conv, n, fn)
        cpu_conv.Columns.fill = fill
        cpu_conv.np = np
    per = {n: t / repeat for n, t in timers.seconds.items()}
    # the gather/scatter input gradient contains its own column build and GEMM: report it whole
    inner = per.get("_dx_gather", 0.0) + per.get("_dx_scatter", 0.0)
    floor = conv_floor(geom.batch, geom.in_channels, o, plan.oh * plan.ow, k * k)
    floor()
    start = time.perf_counter()
    for _ in range(repeat):
        floor()
    floor_s = (time.perf_counter() - start) / repeat
    gemm_flops = 2.0 * geom.batch * plan.oh * plan.ow * plan.k * o * 3
    print(f"{name}: minigrad {1e3 * total:.2f} ms, floor {1e3 * floor_s:.2f} ms ({total / floor_s:.2f}x); "
          f"columns {columns_bytes / 2**20:.1f} MiB per build")
    print(f"  GEMMs outside dx {1e3 * per.get('GEMM', 0):.2f} ms | column builds (fwd + dW, padding included) "
          f"{1e3 * per.get('columns', 0):.2f} ms = "
          f"{2 * columns_bytes / max(per.get('columns', 1e-9), 1e-9) / 1e9:.1f} GB/s written | "
          f"padding to channels-last outside them {1e3 * per.get('pad_channels_last', 0):.2f} ms | dx (its own "
          f"columns + GEMM + layout) {1e3 * inner:.2f} ms | rest (dy/y layout, bias, sums) "
          f"{1e3 * (total - sum(per.values())):.2f} ms")
    print(f"  all three GEMMs at the floor: {gemm_flops / floor_s / 1e9:.0f} GFLOP/s including its column passes")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    mg.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for name, (shape, o, k, s, p) in CASES.items():
            profile(name, shape, o, k, s, p, args.repeat)


if __name__ == "__main__":
    main()
