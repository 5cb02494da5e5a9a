"""erf and erfc over any array module (NumPy has no erf), for the exact GELU.

W. J. Cody's rational Chebyshev approximations (Math. Comp. 23, 1969; the CALERF routine
that libm-style implementations follow), evaluated piecewise on |x|:

    |x| <= 0.46875        erf(x)  = x * P1(x^2) / Q1(x^2)
    0.46875 < |x| <= 4    erfc(x) = exp(-x^2) * P2(|x|) / Q2(|x|)
    |x| > 4               erfc(x) = exp(-x^2) / |x| * (1/sqrt(pi) + R(1/x^2) / x^2)

Each branch is evaluated on the whole array with |x| clipped into its own interval (no
overflow, no warnings) and the right one is picked with ``xp.where``: elementwise array
code, no Python loop over elements. Accuracy in float64 is a few ulp (tested against
``math.erf``). exp(-x^2) is split as exp(-t^2) * exp(-(y-t)(y+t)) with t = trunc(16 y)/16,
Cody's trick against the rounding error of x^2 for large |x|.
On CuPy, ``cupyx.scipy.special.erf/erfc`` is used instead.
"""
from __future__ import annotations

from ..runtime.backend import get_array_module, is_gpu_array

__all__ = ["erf", "erfc"]

_THRESHOLD = 0.46875
_INV_SQRT_PI = 5.6418958354775628695e-1
_BIG = 27.0  # erfc underflows to 0 in float64 beyond ~26.55

_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)


def _gpu_special(x, name):
    """cupyx.scipy.special.<name> when x is a CuPy array, else None."""
    if not is_gpu_array(x):
        return None
    try:
        from cupyx.scipy import special
    except ImportError:  # pragma: no cover - cupyx ships with cupy
        return None
    return getattr(special, name)


def _erf_small(xp, x):
    """erf on |x| <= 0.46875 (x clipped there by the caller)."""
    ysq = x * x
    num, den = _A[4] * ysq, ysq
    for i in range(3):
        num = (num + _A[i]) * ysq
        den = (den + _B[i]) * ysq
    return x * (num + _A[3]) / (den + _B[3])


def _exp_minus_square(xp, y):
    """exp(-y^2), computed as exp(-t^2) * exp(-(y - t)(y + t)) with t = trunc(16 y) / 16."""
    t = xp.trunc(y * 16.0) / 16.0
    return xp.exp(-t * t) * xp.exp(-(y - t) * (y + t))


def _erfc_medium(xp, y):
    """erfc on 0.46875 <= y <= 4."""
    num, den = _C[8] * y, y
    for i in range(7):
        num = (num + _C[i]) * y
        den = (den + _D[i]) * y
    return _exp_minus_square(xp, y) * (num + _C[7]) / (den + _D[7])


def _erfc_large(xp, y):
    """erfc on 4 <= y <= 27."""
    z = 1.0 / (y * y)
    num, den = _P[5] * z, z
    for i in range(4):
        num = (num + _P[i]) * z
        den = (den + _Q[i]) * z
    tail = z * (num + _P[4]) / (den + _Q[4])
    return _exp_minus_square(xp, y) * (_INV_SQRT_PI - tail) / y


def _erfc_of_abs(xp, y):
    """erfc(y) for y = |x| >= 0 (any y; the small branch is filled in by the callers)."""
    medium = _erfc_medium(xp, xp.clip(y, _THRESHOLD, 4.0))
    large = _erfc_large(xp, xp.clip(y, 4.0, _BIG))
    large = xp.where(y >= _BIG, 0.0, large).astype(y.dtype, copy=False)
    return xp.where(y <= 4.0, medium, large)


def erf(x):
    """The error function, elementwise, same shape/dtype/backend as the float array x."""
    xp = get_array_module(x)
    fast = _gpu_special(x, "erf")
    if fast is not None:
        return fast(x)
    y = xp.abs(x)
    small = _erf_small(xp, xp.clip(x, -_THRESHOLD, _THRESHOLD))
    rest = (0.5 - _erfc_of_abs(xp, y)) + 0.5
    rest = xp.where(x < 0, -rest, rest)
    return xp.where(y <= _THRESHOLD, small, rest)


def erfc(x):
    """The complementary error function 1 - erf(x), accurate in the tails, same dtype as x."""
    xp = get_array_module(x)
    fast = _gpu_special(x, "erfc")
    if fast is not None:
        return fast(x)
    y = xp.abs(x)
    small = 1.0 - _erf_small(xp, xp.clip(x, -_THRESHOLD, _THRESHOLD))
    tail = _erfc_of_abs(xp, y)
    tail = xp.where(x < 0, 2.0 - tail, tail)
    return xp.where(y <= _THRESHOLD, small, tail)
