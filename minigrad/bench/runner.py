"""``minigrad bench``: minigrad against PyTorch on the same machine, in the same process.

    minigrad bench                      # every case group, table per group
    minigrad bench --quick              # seconds: small shapes, 2 repeats (CI keeps the command working)
    minigrad bench --cases conv,pool --json out.json --plot ratios.png
    minigrad bench --backend cupy       # on a GPU; timings synchronize the device
    python -m minigrad.bench ...        # the same, without the CLI

Protocol: the float32 GEMM peak (NumPy matmul) is measured first. Then every case is run in
rounds: in each round each case runs once in minigrad, once in PyTorch and, for the Conv2d cases on
NumPy, once as the *floor* (``cases.conv_floor``: the three GEMMs of the exact unfold shapes plus one
write and one read-modify-write of the column buffer, the limit of any unfold + GEMM design), the
order rotating between rounds, each turn after a pause (``--pause``), because BLAS/OpenMP threads keep
spinning for a while after a call and would slow the other library's next call (docs/benchmarks.md
has the measurements behind the protocol). After the pause a turn makes one
untimed call (waking the idle cores) and then times 3 calls back to back (1 with --quick), the
steady state of a training loop. Medians over all timed calls are reported.
Peak extra memory is the largest amount traced by ``tracemalloc`` (which sees NumPy's
allocations) during one minigrad step, minus the arrays the step returns.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

from .cases import GROUPS, build_cases
from .trust import assess, load_average

__all__ = ["add_arguments", "run", "main", "gemm_peak"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench options to an argparse parser (used by ``minigrad bench``)."""
    parser.add_argument("--quick", action="store_true",
                        help="smoke run in seconds: small batches, 2 repeats, short pauses (no timing claims)")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated case groups out of {','.join(GROUPS)} (default: all, or none with --train)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per case (default 7, quick 2)")
    parser.add_argument("--pause", type=float, default=None,
                        help="seconds of idle before each timed turn (default 0.25, quick 0.01)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both sides: mg.set_num_threads, torch.set_num_threads and NumPy's BLAS "
                             "(default: each library's own default, all cores)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall (default) or cpu: process CPU time, which other processes on a shared machine "
                             "hardly disturb; meaningful with --threads 1")
    parser.add_argument("--backend", default="numpy", help="numpy (default) or cupy")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--json", metavar="FILE", help="write every measurement to FILE as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the minigrad/PyTorch time ratios")
    parser.add_argument("--markdown", metavar="FILE.md", help="write the tables as Markdown (for docs/benchmarks.md)")
    parser.add_argument("--train", action="store_true",
                        help="also train LeNet-5 on MNIST end to end in minigrad and in PyTorch with `minigrad train`'s "
                             "defaults (4 epochs, --quick: 1) and compare training time and accuracy (needs the "
                             "data extra); without --cases only this runs")


def gemm_peak(xp=np, quick=False, sync=lambda: None) -> float:
    """Best float32 GFLOP/s of an n x n matmul (n = 2048, or 512 with quick)."""
    n = 512 if quick else 2048
    a = xp.ones((n, n), dtype=xp.float32)
    b = xp.ones((n, n), dtype=xp.float32)
    out = xp.empty((n, n), dtype=xp.float32)
    best = math.inf
    xp.matmul(a, b, out=out)                  # untimed: wake the cores and BLAS's threads
    sync()
    for _ in range(3 if quick else 12):
        sync()
        start = time.perf_counter()
        xp.matmul(a, b, out=out)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def _timed(step, sync, clock=time.perf_counter) -> float:
    sync()
    start = clock()
    step()
    sync()
    return clock() - start


def extra_memory(step) -> int | None:
    """Peak bytes traced during one call of step, minus the arrays it returns (NumPy only)."""
    from ..kernels.cpu_runtime import release_buffers
    release_buffers()               # work buffers count: measure them being allocated
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = step()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    returned = sum(getattr(a, "nbytes", 0) for a in (result or ()) if a is not None)
    return max(0, peak - returned)


def measure(cases, repeat, pause, sync, use_torch=True, progress=None, clock=time.perf_counter, calls=3):
    """Run the cases interleaved; returns one dict per case with all times (seconds) and medians.

    One turn of a library: the pause, one untimed call (it wakes the cores the pause let go idle: the
    first call after an idle pause was measured much slower, in PyTorch as in minigrad), then `calls`
    timed calls back to back, each recorded.
    """
    rows = []
    for case in cases:
        row = {"group": case.group, "name": case.name, "shape": case.shape, "flops": case.flops,
               "note": case.note, "minigrad_s": [], "torch_s": [], "floor_s": []}
        row["_mg"] = case.minigrad()
        row["_th"] = case.torch() if (use_torch and case.torch is not None) else None
        row["_fl"] = case.floor() if case.floor is not None else None
        for step in (row["_mg"], row["_th"], row["_fl"]):   # warm-up (work buffers, BLAS threads, caches)
            if step is not None:
                step()
        rows.append(row)
    for r in range(repeat):
        for row in rows:
            turns = [("minigrad_s", row["_mg"]), ("torch_s", row["_th"]), ("floor_s", row["_fl"])]
            shift = r % len(turns)        # every competitor goes first, second and last in turn
            for key, step in turns[shift:] + turns[:shift]:
                if step is None:
                    continue
                time.sleep(pause)
                step()                   # untimed: the cores are awake again, as in a training loop
                row[key].extend(_timed(step, sync, clock) for _ in range(calls))
        if progress:
            progress(r + 1, repeat)
    for row in rows:
        row["minigrad_ms"] = 1e3 * float(np.median(row["minigrad_s"]))
        row["torch_ms"] = 1e3 * float(np.median(row["torch_s"])) if row["torch_s"] else None
        row["ratio"] = row["minigrad_ms"] / row["torch_ms"] if row["torch_ms"] else None
        row["floor_ms"] = 1e3 * float(np.median(row["floor_s"])) if row["floor_s"] else None
        row["floor_ratio"] = row["minigrad_ms"] / row["floor_ms"] if row["floor_ms"] else None
    return rows


def record_header(benchmark=None, backend="numpy") -> dict:
    """The fields every recorded result starts with: the benchmark's name (when given), the UTC date, the machine and
    the versions."""
    head = {"benchmark": benchmark} if benchmark else {}
    head.update(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                machine=machine_info(), versions=versions_info(backend))
    return head


def versions_info(backend):
    """Python, NumPy (and its BLAS), minigrad, PyTorch (and CuPy) versions, for a results file."""
    info = {"python": platform.python_version(), "numpy": np.__version__, "minigrad": None, "torch": None}
    from .. import __version__
    info["minigrad"] = __version__
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if backend == "cupy":   # the bench gives PyTorch CuPy's TF32 setting (cases.full_fp32): recorded
            info["torch_tf32"] = {"cudnn": torch.backends.cudnn.allow_tf32,
                                  "matmul": torch.backends.cuda.matmul.allow_tf32}
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
        blas = [m for m in threadpool_info() if m.get("user_api") == "blas" and "numpy" in m.get("filepath", "")]
        if blas:
            info["numpy_blas"] = f"{blas[0]['internal_api']} {blas[0].get('version')} ({blas[0].get('architecture')})"
    except Exception:
        pass
    if backend == "numpy":                   # which CPU kernels ran ReLU and max pooling (kernels/compiled.py)
        from ..kernels import compiled
        info["compiled_kernels"] = compiled.active()
        if compiled.available():
            import numba
            info["numba"] = numba.__version__
    if backend == "cupy":
        import cupy
        from .cases import cupy_tf32
        info["cupy"] = cupy.__version__
        info["cupy_tf32"] = cupy_tf32()      # CUPY_TF32=1: CuPy's matmuls in TF32 (PyTorch set the same)
    return info


def machine_info():
    """The CPU model, its widest SIMD ISA (avx512 / avx2 / ...), the usable cores and the system."""
    cpu = platform.processor() or platform.machine()
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    isa = next((name for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"), ("avx", "avx"), ("sse4_2", "sse4.2"),
                                        ("asimd", "neon")) if flag in flags), None)
    return {"cpu": cpu, "isa": isa, "cores": cores, "system": platform.platform()}


def geometric_mean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def format_table(rows, peak) -> str:
    lines = []
    for group in GROUPS:
        grows = [r for r in rows if r["group"] == group]
        if not grows:
            continue
        lines.append(f"\n== {group} ==")
        lines.append(f"{'case':<18} {'shape':<34} {'minigrad ms':>11} {'torch ms':>9} {'ratio':>6} "
                     f"{'floor ms':>9} {'/floor':>6} {'GFLOP/s':>8} {'%peak':>6} {'extra MiB':>9}")
        for r in grows:
            torch_ms = f"{r['torch_ms']:9.2f}" if r["torch_ms"] else f"{'-':>9}"
            ratio = f"{r['ratio']:6.2f}" if r["ratio"] else f"{'-':>6}"
            floor_ms = f"{r['floor_ms']:9.2f}" if r.get("floor_ms") else f"{'-':>9}"
            floor_ratio = f"{r['floor_ratio']:6.2f}" if r.get("floor_ratio") else f"{'-':>6}"
            gf = f"{r['gflops']:8.1f}" if r.get("gflops") else f"{'-':>8}"
            pct = f"{r['pct_peak']:5.0f}%" if r.get("pct_peak") else f"{'-':>6}"
            mem = f"{r['extra_mib']:9.1f}" if r.get("extra_mib") is not None else f"{'-':>9}"
            lines.append(f"{r['name']:<18} {r['shape']:<34} {r['minigrad_ms']:11.2f} {torch_ms} {ratio} "
                         f"{floor_ms} {floor_ratio} {gf} {pct} {mem}"
                         + (f"  ({r['note']})" if r["note"] else ""))
    return "\n".join(lines)


def format_markdown(report) -> str:
    """The report as Markdown: a header line (date, machine, versions, GEMM peak) and one table."""
    m, v = report["machine"], report["versions"]
    isa = f", {m['isa']}" if m.get("isa") else ""
    lines = [f"Measured {report['date']} on {m['cpu']} ({m['cores']} cores{isa}), Python {v['python']}, "
             f"NumPy {v['numpy']} ({v.get('numpy_blas', 'BLAS ?')}), PyTorch {v.get('torch')} "
             f"({v.get('torch_threads', '?')} threads), minigrad {v['minigrad']} ({report['threads']} threads), "
             f"{report.get('clock', 'wall')}-clock times; "
             f"float32 GEMM peak {report['gemm_peak_gflops']:.0f} GFLOP/s; median of {report['repeat']} "
             f"interleaved rounds x {report.get('calls', 1)} timed calls, {report['pause_s']:.2f} s pause and "
             f"one untimed call before each turn.", "",
             "| group | case | shape | minigrad ms | PyTorch ms | ratio | floor ms | minigrad/floor | GFLOP/s | "
             "% of GEMM peak | extra MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["cases"]:
        def fmt(value, spec):
            return format(value, spec) if value is not None else "-"
        lines.append(f"| {r['group']} | {r['name']} | {r['shape']} | {r['minigrad_ms']:.2f} | "
                     f"{fmt(r['torch_ms'], '.2f')} | {fmt(r['ratio'], '.2f')} | {fmt(r.get('floor_ms'), '.2f')} | "
                     f"{fmt(r.get('floor_ratio'), '.2f')} | {fmt(r.get('gflops'), '.0f')} | "
                     f"{fmt(r.get('pct_peak'), '.0f')} | {fmt(r.get('extra_mib'), '.1f')} |")
    if report.get("trust") and not report["trust"]["trustworthy"]:
        lines += ["", "**Untrustworthy measurements:** " + "; ".join(report["trust"]["warnings"]) + "."]
    if report.get("geomean_resnet_conv"):
        lines += ["", f"Geometric mean of the minigrad/PyTorch time ratio over the 8 ResNet Conv2d shapes: "
                      f"**{report['geomean_resnet_conv']:.3f}**."]
    if report.get("geomean_resnet_floor"):
        lines += ["", f"Geometric mean of minigrad/floor over the same shapes: **{report['geomean_resnet_floor']:.3f}** "
                      f"(floor/PyTorch: {report['geomean_floor_vs_torch']:.3f})."]
    return "\n".join(lines) + "\n"


def plot_ratios(rows, path, title) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r["ratio"]]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4))
    colors = {"conv": "tab:blue", "pool": "tab:orange", "layers": "tab:green", "train": "tab:red"}
    ax.bar(range(len(rows)), [r["ratio"] for r in rows], color=[colors.get(r["group"], "gray") for r in rows])
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["name"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("minigrad / PyTorch time\n(lower is better)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> int:
    """Run the benchmark described by parsed ``args``; returns the exit status."""
    from ..runtime import backend as mg_backend
    from ..runtime import threads
    train_e2e = getattr(args, "train", False)
    cases_arg = args.cases if args.cases is not None else ("" if train_e2e else ",".join(GROUPS))
    groups = [g.strip() for g in cases_arg.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        print(f"minigrad bench: error: unknown case group(s) {unknown}; choose from {','.join(GROUPS)}",
              file=sys.stderr)
        return 2
    try:
        xp = mg_backend.module_for(args.backend)
    except (ValueError, mg_backend.BackendUnavailableError) as exc:
        print(f"minigrad bench: error: {exc}", file=sys.stderr)
        return 2
    sync = (lambda: xp.cuda.Device().synchronize()) if args.backend in ("cupy", "cuda", "gpu") else (lambda: None)
    backend_name = "cupy" if xp is not np else "numpy"
    blas_limit = None
    if args.threads is not None:
        threads.set_num_threads(args.threads)
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits
            blas_limit = threadpool_limits(limits=args.threads, user_api="blas")
        except ImportError:
            pass
    repeat = args.repeat or (2 if args.quick else 7)
    pause = args.pause if args.pause is not None else (0.01 if args.quick else 0.25)
    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            use_torch = False
            print("PyTorch is not installed: minigrad times only", file=sys.stderr)

    compile_seconds = None
    if backend_name == "cupy":    # compile every CUDA kernel now: first-use compiles stay out of the timings
        from ..kernels import cuda
        start = time.perf_counter()
        for dtype in mg_backend.GPU_FLOAT_DTYPES:
            cuda.warm_up(dtype)
        compile_seconds = time.perf_counter() - start
        print(f"minigrad bench: CUDA kernels compiled (or loaded from CuPy's cache) in {compile_seconds:.2f} s, "
              "before and outside the timings")
    load_before = load_average()
    peak = gemm_peak(xp, args.quick, sync)
    print(f"minigrad bench: backend {backend_name}, {threads.get_num_threads()} threads, {args.clock} clock, "
          f"float32 GEMM peak {peak:.1f} GFLOP/s, {repeat} rounds, {pause:.2f} s pause + 1 untimed call per turn")
    cases, skipped = build_cases(groups, args.quick, xp, backend_name)
    for note in skipped:
        print(f"skipped: {note}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    calls = 1 if args.quick else 3
    rows = measure(cases, repeat, pause, sync, use_torch, calls=calls,
                   progress=lambda r, n: print(f"  round {r}/{n}", file=sys.stderr, flush=True), clock=clock)
    for row, case in zip(rows, cases):
        if row["flops"]:
            row["gflops"] = row["flops"] / (row["minigrad_ms"] * 1e-3) / 1e9
            row["pct_peak"] = 100.0 * row["gflops"] / peak
        row["extra_mib"] = extra_memory(row["_mg"]) / 2 ** 20 if backend_name == "numpy" else None
        del row["_mg"], row["_th"], row["_fl"]
    if blas_limit is not None:
        blas_limit.restore_original_limits()
    print(format_table(rows, peak))
    trust = assess(rows, machine_info()["cores"], (load_before, load_average()))
    for warning in trust["warnings"]:
        print(f"minigrad bench: warning: untrustworthy measurements: {warning}", file=sys.stderr)
    training = None
    if train_e2e:
        from .training import format_training, run_training
        if backend_name != "numpy":
            print("minigrad bench: --train runs on the numpy backend only", file=sys.stderr)
            return 2
        training = run_training(quick=args.quick, pause=pause, use_torch=use_torch)
        print(format_training(training))
    resnet_rows = [r for r in rows if r["name"].startswith(("cifar", "imagenet"))]
    resnet = geometric_mean([r["ratio"] for r in resnet_rows])
    resnet_floor = geometric_mean([r["floor_ratio"] for r in resnet_rows])
    floor_vs_torch = geometric_mean([r["floor_ms"] / r["torch_ms"] for r in resnet_rows
                                     if r.get("floor_ms") and r.get("torch_ms")])
    if resnet:
        print(f"\nConv2d fwd+bwd ResNet shapes: geometric mean of minigrad/PyTorch time = {resnet:.3f}")
    if resnet_floor:
        print(f"Conv2d fwd+bwd ResNet shapes: geometric mean of minigrad/floor = {resnet_floor:.3f}"
              + (f" (floor/PyTorch = {floor_vs_torch:.3f})" if floor_vs_torch else ""))
    report = {**record_header(backend=backend_name), "backend": backend_name,
              "threads": threads.get_num_threads(), "clock": args.clock, "quick": bool(args.quick), "repeat": repeat, "calls": calls, "pause_s": pause,
              "gemm_peak_gflops": peak, "compile_seconds": compile_seconds, "geomean_resnet_conv": resnet, "geomean_resnet_floor": resnet_floor,
              "geomean_floor_vs_torch": floor_vs_torch, "skipped": skipped, "cases": rows, "train_e2e": training,
              "trust": trust}
    if args.json:
        try:
            with open(args.json, "w") as f:
                f.write(json.dumps(report, indent=1))
        except OSError as exc:
            print(f"minigrad bench: error: --json {args.json}: cannot write the report ({exc.strerror or exc}); "
                  "free some space or choose another file", file=sys.stderr)
            return 2
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_markdown(report))
        print(f"wrote {args.markdown}")
    if args.plot:
        plot_ratios(rows, args.plot, f"minigrad / PyTorch, {report['machine']['cpu']}, "
                                     f"{report['machine']['cores']} cores, {report['date'][:10]}")
        print(f"wrote {args.plot}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="minigrad bench", description="minigrad vs PyTorch benchmarks")
    add_arguments(parser)
    return run(parser.parse_args(argv))

