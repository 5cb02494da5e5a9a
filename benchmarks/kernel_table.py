"""Each CPU convolution kernel against the others on the geometry it is chosen for (docs/architecture.md).

    python benchmarks/kernel_table.py [--repeat 7] [--threads 2]

Forward + both gradients, float32, every kernel called directly on the same arrays; medians of
interleaved turns with a 0.25 s pause before each. Prints a Markdown table (ms, and each kernel's time
over the one the dispatch table picks).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import minigrad as mg
from minigrad.functional.conv import make_geometry
from minigrad.kernels import (cpu_batchlast, cpu_conv, cpu_depthwise, cpu_pointwise, cpu_samplemajor, cpu_winograd,
                              dispatch, reference_conv)

# name: (x shape, weight shape, stride, padding, groups, kernels to time)
CASES = {
    "LeNet conv1 (1->6, 5x5, batch 128)": ((128, 1, 28, 28), (6, 1, 5, 5), 1, 2, 1,
                                          (cpu_samplemajor, cpu_batchlast, reference_conv)),
    "RGB stem (3->16, 3x3, 64x32x32)": ((64, 3, 32, 32), (16, 3, 3, 3), 1, 1, 1,
                                       (cpu_samplemajor, cpu_batchlast, reference_conv)),
    "LeNet conv2 (6->16, 5x5, batch 128)": ((128, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1,
                                           (cpu_batchlast, cpu_samplemajor, reference_conv)),
    "1x1 (256->64, 8x56x56)": ((8, 256, 56, 56), (64, 256, 1, 1), 1, 0, 1,
                               (cpu_pointwise, cpu_conv, reference_conv)),
    "depthwise 3x3 (64, 64x32x32)": ((64, 64, 32, 32), (64, 1, 3, 3), 1, 1, 64,
                                     (cpu_depthwise, cpu_conv, reference_conv)),
    "3x3 (32->32, 64x16x16)": ((64, 32, 16, 16), (32, 32, 3, 3), 1, 1, 1, (cpu_conv, reference_conv)),
    "3x3 stride 2 (16->32, 64x32x32)": ((64, 16, 32, 32), (32, 16, 3, 3), 2, 1, 1, (cpu_conv, reference_conv)),
    "3x3 (128->128, 8x28x28)": ((8, 128, 28, 28), (128, 128, 3, 3), 1, 1, 1,
                                (cpu_conv, cpu_winograd, reference_conv)),
    "3x3 (256->256, 8x14x14)": ((8, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1,
                                (cpu_conv, cpu_winograd, reference_conv)),
}


def cpu_name() -> str:
    """The CPU model and whether it has AVX-512 (from /proc/cpuinfo where there is one)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    return f"{model}, {'AVX-512' if 'avx512f' in info else 'AVX2' if 'avx2' in info else 'no AVX2'}"


def step(kernel, x, w, b, dy, geom):
    kernel.conv_forward(x, w, b, geom)
    kernel.conv_backward(x, w, dy, geom, True, True, True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        mg.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_name()}, {mg.get_num_threads()} threads, float32, "
          f"forward + both gradients, median of {args.repeat} turns (ms)\n")
    print("| geometry | picked (auto) | " + " | ".join(["kernel ms (x picked)"] * 3) + " |")
    print("|---|---|---|---|---|")
    for name, (x_shape, w_shape, stride, padding, groups, kernels) in CASES.items():
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        b = rng.standard_normal(w_shape[0]).astype(np.float32)
        geom = make_geometry(x.shape, w.shape, stride, padding, 1, groups)
        dy = rng.standard_normal(geom.out_shape).astype(np.float32)
        picked = dispatch.conv_kernel(geom, x, w, b)
        times = {kernel: [] for kernel in kernels}
        for _ in range(args.repeat):
            for kernel in kernels:
                time.sleep(0.25)
                step(kernel, x, w, b, dy, geom)              # untimed: wakes the cores, fills buffers
                start = time.perf_counter()
                step(kernel, x, w, b, dy, geom)
                times[kernel].append(1e3 * (time.perf_counter() - start))
        medians = {kernel: statistics.median(t) for kernel, t in times.items()}
        base = medians.get(picked, min(medians.values()))
        cells = [f"{k.__name__.split('.')[-1]} {m:.1f} ({m / base:.2f})" for k, m in medians.items()]
        cells += [""] * (3 - len(cells))
        print(f"| {name} | {picked.__name__.split('.')[-1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
