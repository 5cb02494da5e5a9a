"""What ``mg.gradcheck(..., report=True)`` prints: a gradient check a person can read.

One row per input and parameter: its shape, how many entries were checked, the largest absolute and relative
error, where the error is worst with the analytic and numerical values there, and PASS or FAIL. Below the
table, what the relative error means (CS231n's rule of thumb, for float64 central differences and for what
float32 could reach) and one plain verdict::

    gradcheck(Conv2d): central differences in float64, eps 1e-06; an entry passes when
    |analytic - numeric| <= atol + rtol * |numeric| (atol 1e-05, rtol 0.001)
    gradient of          shape          checked  max abs err  max rel err  worst at      analytic      numeric  verdict
    input 0              (2, 3, 5, 5)       150     2.1e-10      8.4e-10  (1, 0, 2, 3)  -1.2345e+00  -1.2345e+00  PASS
    ...
    PASS: every gradient agrees with finite differences.

The relative error of an entry is |a - n| / max(|a|, |n|), counted where that scale is at least 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy

__all__ = ["GradcheckReport", "GradcheckRow", "MAGNITUDES", "RELATIVE_FLOOR"]

# Central differences in float64 with eps 1e-6 are exact to about 1e-10 absolute: a relative error is reported
# for entries of at least this magnitude (where it can be as small as 1e-6).
RELATIVE_FLOOR = 1e-4
# What the largest relative error usually means (CS231n, "Gradient checks").
MAGNITUDES = ("float64 central differences: below 1e-6 a correct gradient (1e-9 or less is typical for smooth "
              "layers); 1e-6 to 1e-4 suspicious unless the layer has kinks (ReLU, max pooling) near the input; "
              "above 1e-4, and certainly above 1e-2, the gradient is probably wrong.",
              "float32 cannot do better than about 1e-3 to 1e-2 with finite differences (rounding of eps-sized "
              "steps), which is why mg.gradcheck always works in float64.")


@dataclass
class GradcheckRow:
    """One input or parameter: the checked entries' indices, analytic and numerical gradients there."""

    what: str
    shape: tuple
    indices: list
    analytic: numpy.ndarray
    numeric: numpy.ndarray
    atol: float
    rtol: float
    kinks: int = 0          # entries that agreed only with the smaller second step (a kink within eps)

    @property
    def errors(self):
        return numpy.abs(self.analytic - self.numeric)

    @property
    def relative_errors(self):
        """|a - n| / max(|a|, |n|) where that scale is at least RELATIVE_FLOOR; 0 elsewhere (there a tiny
        gradient's relative error measures the finite differences' rounding, and the absolute error decides)."""
        scale = numpy.maximum(numpy.abs(self.analytic), numpy.abs(self.numeric))
        big = scale >= max(self.atol, RELATIVE_FLOOR)
        with numpy.errstate(invalid="ignore", divide="ignore"):
            return numpy.where(big, self.errors / numpy.where(big, scale, 1.0), 0.0)

    @property
    def _worst(self) -> int:
        return int(numpy.argmax(self.errors - (self.atol + self.rtol * numpy.abs(self.numeric))))

    @property
    def passed(self) -> bool:
        bound = self.atol + self.rtol * numpy.abs(self.numeric)
        return bool(numpy.isfinite(self.analytic).all() and (self.errors <= bound).all())

    worst_index = property(lambda self: tuple(int(i) for i in self.indices[self._worst]) if self.indices else ())
    worst_analytic = property(lambda self: float(self.analytic[self._worst]) if self.indices else 0.0)
    worst_numeric = property(lambda self: float(self.numeric[self._worst]) if self.indices else 0.0)
    max_abs_error = property(lambda self: float(self.errors.max()) if self.indices else 0.0)
    max_relative_error = property(lambda self: float(self.relative_errors.max()) if self.indices else 0.0)


@dataclass
class GradcheckReport:
    """The rows of a gradient check; ``bool(report)`` is whether every gradient passed; ``str`` is the table."""

    label: str
    rows: list
    eps: float
    atol: float
    rtol: float
    entries: int | None = None
    kink_eps: float | None = None

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        header = ("gradient of", "shape", "checked", "max abs err", "max rel err", "worst at", "analytic",
                  "numeric", "verdict")
        table = [header] + [(row.what, str(row.shape), f"{len(row.indices)}", f"{row.max_abs_error:.2g}",
                             f"{row.max_relative_error:.2g}", str(row.worst_index), f"{row.worst_analytic:.6g}",
                             f"{row.worst_numeric:.6g}", ("PASS" + ("*" if row.kinks else "")) if row.passed
                             else "FAIL") for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        lines = [f"gradcheck({self.label}): central differences in float64, eps {self.eps:g}; an entry passes when "
                 f"|analytic - numeric| <= atol + rtol * |numeric| (atol {self.atol:g}, rtol {self.rtol:g})"
                 + (f"; {self.entries} random entries per array at most" if self.entries else "; every entry")]
        for line in table:
            cells = [cell.ljust(widths[i]) if i in (0, 5) else cell.rjust(widths[i]) for i, cell in enumerate(line)]
            lines.append("  ".join(cells).rstrip())
        lines.append(f"relative error = |analytic - numeric| / max(|analytic|, |numeric|), over entries of magnitude "
                     f">= {max(self.atol, RELATIVE_FLOOR):g}; " + MAGNITUDES[0])
        lines.append(MAGNITUDES[1])
        kinks = sum(row.kinks for row in self.rows)
        if kinks:
            lines.append(f"* {kinks} entr{'y' if kinks == 1 else 'ies'} disagreed at eps {self.eps:g} and agreed at eps "
                         f"{self.kink_eps:g}: the step crossed a kink (a ReLU or max-pool switch), not a wrong "
                         "gradient; their numbers above are the smaller step's.")
        failed = [row.what for row in self.rows if not row.passed]
        lines.append("PASS: every gradient agrees with finite differences." if not failed else
                     f"FAIL: the gradient of {', '.join(failed)} disagrees with finite differences.")
        return "\n".join(lines)
