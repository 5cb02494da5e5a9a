"""pytest-benchmark suite (not part of the test run: pyproject's testpaths is tests/).

Run it with:

    python -m pytest benchmarks --benchmark-only          # MINIGRAD_BENCH_QUICK=1 for small shapes

Each case of ``minigrad.bench.cases`` runs twice, as ``impl=minigrad`` and ``impl=torch`` (when
PyTorch is installed). For the careful protocol (interleaved turns, pauses, medians, ratios,
GFLOP/s, memory), use ``minigrad bench`` instead; ``MINIGRAD_BENCH_QUICK=1`` makes both use the
small shapes of ``--quick``.
"""
import os
import sys

# the benchmark files import _cases.py from this folder (pytest runs with --import-mode=importlib)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
