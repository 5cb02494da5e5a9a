"""``minigrad bench``: minigrad against PyTorch on the same machine, in the same process.

``runner`` holds the protocol (interleaved turns, pauses, medians, GFLOP/s, memory, the report);
``cases`` the benchmark cases, each a minigrad step and its PyTorch twin (also used by the
pytest-benchmark suite in ``benchmarks/``). ``python -m minigrad.bench`` is ``minigrad bench``.
"""
from .runner import add_arguments, gemm_peak, main, plot_ratios, run

__all__ = ["add_arguments", "run", "main", "gemm_peak", "plot_ratios"]
