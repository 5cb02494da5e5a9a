"""Helpers shared by the benchmark files (see conftest.py for how to run them)."""
import os

import numpy as np
import pytest

from minigrad.bench.cases import build_cases

QUICK = os.environ.get("MINIGRAD_BENCH_QUICK", "") not in ("", "0")


def cases_of(group):
    cases, skipped = build_cases([group], QUICK, np, "numpy")
    return cases, skipped


def run_case(benchmark, case, impl):
    """Benchmark one side of a case; skips the torch side when PyTorch is missing."""
    if impl == "torch":
        pytest.importorskip("torch")
        step = case.torch()
    else:
        step = case.minigrad()
    step()                                   # warm-up outside the timing
    benchmark.extra_info.update(shape=case.shape, flops=case.flops)
    benchmark.pedantic(step, rounds=5 if QUICK else 15, warmup_rounds=1)
