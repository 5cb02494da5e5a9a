"""Whether ``minigrad bench``'s own measurements can be trusted, judged from the measurements themselves.

A benchmark on a busy or throttling machine produces numbers that look like any others. Three signs
that they are not, each giving one warning (printed, and listed in the JSON report under ``"trust"``):

    load          the 1-minute load average, before or after the run, above the number of cores the
                  process may use: other processes competed for the CPU during the timings
    spread        a case's PyTorch times (the reference, which minigrad does not change) spread by more
                  than SPREAD_LIMIT: (90th percentile - 10th percentile) / median over its timed calls
    peak          a case above 100 % of the measured float32 GEMM peak: the peak measurement itself was
                  disturbed (a case cannot beat the GEMM it is made of), so every %-of-peak is wrong

``assess`` takes the figures as arguments, so the rules are tested with injected measurements.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["SPREAD_LIMIT", "load_average", "spread", "assess"]

SPREAD_LIMIT = 0.30


def load_average():
    """The 1-minute load average, or None where the system does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def spread(times) -> float | None:
    """(p90 - p10) / median of a list of times; None for fewer than two."""
    if len(times) < 2:
        return None
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return float((p90 - p10) / median) if median > 0 else None


def assess(rows, cores: int, loads=()) -> dict:
    """{"trustworthy", "warnings", "load_average", "cores"} for measured ``rows`` (runner.measure's dicts,
    with "torch_s" and "pct_peak" where known) on ``cores`` cores with the given load averages."""
    warnings = []
    loads = [x for x in loads if x is not None]
    if loads and max(loads) > cores:
        warnings.append(f"load average {max(loads):.1f} above the {cores} cores: other processes competed for the "
                        "CPU; rerun on an idle machine (or with --clock cpu --threads 1)")
    spreads = {r["name"]: spread(r.get("torch_s") or []) for r in rows}
    wide = {name: s for name, s in spreads.items() if s is not None and s > SPREAD_LIMIT}
    if wide:
        listed = ", ".join(f"{name} {100 * s:.0f}%" for name, s in wide.items())
        warnings.append(f"PyTorch timings spread by more than {100 * SPREAD_LIMIT:.0f}% ({listed}): the machine was "
                        "not steady; rerun with more --repeat or on an idle machine")
    above = {r["name"]: r["pct_peak"] for r in rows if (r.get("pct_peak") or 0) > 100}
    if above:
        listed = ", ".join(f"{name} {pct:.0f}%" for name, pct in above.items())
        warnings.append(f"above 100% of the measured GEMM peak ({listed}): the peak measurement was disturbed, so "
                        "every %-of-peak figure is wrong; rerun")
    return {"trustworthy": not warnings, "warnings": warnings, "load_average": loads, "cores": cores,
            "torch_spread": {name: s for name, s in spreads.items() if s is not None}}
