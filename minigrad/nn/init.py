"""Weight initialisation (``mg.nn.init``): PyTorch's ``torch.nn.init`` in-place initialisers, same names,
signatures, defaults and semantics, plus the helpers the layers use for their default weights.

Shape convention, as in PyTorch: a weight is ``(out, in, *kernel)``, so ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)``. Every ``*_`` function takes a ``mg.nn.Parameter`` (its ``.data`` array is
filled in place) or a NumPy/CuPy array (filled in place with ``arr[...] = values``), keeps its dtype and
backend, and returns its argument. Random values are drawn on the host in float64 from minigrad's global
generator (``mg.manual_seed``), or from the ``numpy.random.Generator`` passed as ``generator=``, then cast and
copied onto the array's backend, so a seed gives the same weights on the CPU and on the GPU. They are drawn in
chunks straight into an array of the parameter's dtype (``mg.random.draw_into``): initialising a float32
weight never makes a float64 copy of it. A layer's default weights are checked against the memory guard
(``runtime/memory.py``) before they are allocated: ``Linear(60000, 60000)`` on a small machine is a
MemoryError naming the layer, not an OOM kill.
"""
from __future__ import annotations

import math
import statistics
import warnings

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import backend_of, is_array, to_backend
from ..runtime.memory import check_bytes
from .parameter import Parameter

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
           "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
           "uniform", "kaiming_uniform", "fan_in_bias"]


# --- the layers' default initialisation (arrays built from scratch) -------------------------------------------

def uniform(shape, bound: float, dtype="float32", where: str = "a layer's parameters", what: str = "weight"):
    """Array of U(-bound, bound) samples on the active backend. ``where`` / ``what`` name the layer and the
    parameter in the memory guard's error."""
    check_bytes(math.prod(shape) * numpy.dtype(dtype).itemsize, where, shape, what=what,
                advice="use smaller layer sizes")
    return to_backend(mg_random.uniform(-bound, bound, shape, dtype))


def kaiming_uniform(shape, fan_in: int, a: float = math.sqrt(5), dtype="float32", where: str = "a layer's parameters"):
    """PyTorch's default layer init: U(-b, b), b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)).

    With a = sqrt(5) this is b = 1 / sqrt(fan_in).
    """
    gain = math.sqrt(2.0 / (1.0 + a * a))
    return uniform(shape, gain * math.sqrt(3.0 / fan_in), dtype, where, "weight")


def fan_in_bias(shape, fan_in: int, dtype="float32", where: str = "a layer's parameters"):
    """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0, dtype, where, "bias")


# --- helpers of the in-place initialisers ---------------------------------------------------------------------

def _array(tensor, where: str, random: bool = False):
    """The array to fill: a Parameter's ``.data`` or the array itself; TypeError for anything else."""
    array = tensor.data if isinstance(tensor, Parameter) else tensor
    if not is_array(array):
        raise TypeError(f"nn.init.{where}: expected a mg.nn.Parameter or a NumPy/CuPy array, "
                        f"got {type(tensor).__name__}")
    if random and numpy.dtype(array.dtype).kind != "f":
        raise TypeError(f"nn.init.{where}: random initialisation needs a floating-point array, "
                        f"got dtype {array.dtype}")
    return array


def _rng(generator, where: str) -> numpy.random.Generator:
    """The generator to draw from: ``generator`` (a numpy.random.Generator) or minigrad's global one."""
    if generator is None:
        return mg_random.generator()
    if not isinstance(generator, numpy.random.Generator):
        raise TypeError(f"nn.init.{where}: generator must be None or a numpy.random.Generator, "
                        f"got {type(generator).__name__}")
    return generator


def _draw(array, draw) -> None:
    """Fill ``array`` in place with ``draw(count)`` float64 samples, cast to its dtype in chunks (no float64
    copy of the whole array): straight into a NumPy array, through one host array of its dtype for CuPy."""
    if isinstance(array, numpy.ndarray):
        mg_random.draw_into(array, draw)
    else:
        array[...] = to_backend(mg_random.draw_into(numpy.empty(array.shape, numpy.dtype(array.dtype)), draw),
                                backend_of(array))


def _write(array, host_values) -> None:
    """Cast host values to the array's dtype, move them to its backend and copy them in place."""
    values = numpy.asarray(host_values).astype(numpy.dtype(array.dtype), copy=False)
    array[...] = to_backend(values, backend_of(array))


def _fans(array) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shaped (out, in, *kernel), as torch.nn.init._calculate_fan_in_and_fan_out."""
    if array.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(array.shape[2:])
    return array.shape[1] * receptive, array.shape[0] * receptive


def _fan(array, mode: str) -> int:
    """fan_in or fan_out according to ``mode`` (case-insensitive, as PyTorch)."""
    mode = mode.lower() if isinstance(mode, str) else mode
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _fans(array)
    return fan_in if mode == "fan_in" else fan_out


def _norm_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


_NDTRI = numpy.vectorize(statistics.NormalDist().inv_cdf, otypes=[numpy.float64])   # inverse standard normal CDF


# --- torch.nn.init ----------------------------------------------------------------------------------------------

def calculate_gain(nonlinearity, param=None):
    """Recommended gain for a nonlinearity (``nn.functional`` name; ``param``: leaky_relu's slope, default 0.01).

    1 for linear, conv*, conv_transpose*, sigmoid; 5/3 for tanh; sqrt(2) for relu; sqrt(2 / (1 + slope^2))
    for leaky_relu; 3/4 for selu. The gain scales weights shaped (out, in, *kernel).
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif (not isinstance(param, bool) and isinstance(param, int)) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill ``tensor`` (any shape) in place with U(a, b) samples; returns ``tensor``."""
    array = _array(tensor, "uniform_", random=True)
    rng = _rng(generator, "uniform_")
    if a > b:
        raise ValueError(f"nn.init.uniform_: expects a <= b, but found a={a} > b={b}")
    _draw(array, lambda count: rng.uniform(a, b, size=count))
    return tensor


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill ``tensor`` (any shape) in place with N(mean, std^2) samples; returns ``tensor``."""
    array = _array(tensor, "normal_", random=True)
    rng = _rng(generator, "normal_")
    if std < 0:
        raise ValueError(f"nn.init.normal_: expects std >= 0.0, but found std {std}")
    _draw(array, lambda count: rng.normal(mean, std, size=count))
    return tensor


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill ``tensor`` (any shape) in place with N(mean, std^2) truncated to [a, b]; returns ``tensor``.

    Inverse-CDF sampling: u ~ U(cdf(a'), cdf(b')), x = mean + std * ndtri(u), clipped to [a, b].
    """
    array = _array(tensor, "trunc_normal_", random=True)
    rng = _rng(generator, "trunc_normal_")
    if not std > 0:
        raise ValueError(f"nn.init.trunc_normal_: expects std > 0, but found std {std}")
    if a > b:
        raise ValueError(f"nn.init.trunc_normal_: expects a <= b, but found a={a} > b={b}")
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    low, high = _norm_cdf((a - mean) / std), _norm_cdf((b - mean) / std)
    tiny, below_one = numpy.finfo(numpy.float64).tiny, 1.0 - numpy.finfo(numpy.float64).epsneg

    def draw(count):
        u = numpy.clip(rng.uniform(low, high, size=count), tiny, below_one)   # inv_cdf needs 0 < u < 1
        return numpy.clip(mean + std * _NDTRI(u), a, b)
    _draw(array, draw)
    return tensor


def constant_(tensor, val):
    """Fill ``tensor`` (any shape) in place with the value ``val``; returns ``tensor``."""
    _array(tensor, "constant_")[...] = val
    return tensor


def ones_(tensor):
    """Fill ``tensor`` (any shape) in place with 1; returns ``tensor``."""
    _array(tensor, "ones_")[...] = 1
    return tensor


def zeros_(tensor):
    """Fill ``tensor`` (any shape) in place with 0; returns ``tensor``."""
    _array(tensor, "zeros_")[...] = 0
    return tensor


def eye_(tensor):
    """Fill a 2-D ``tensor`` (out, in) in place with the identity matrix (ones on the diagonal)."""
    array = _array(tensor, "eye_")
    if array.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    _write(array, numpy.eye(*array.shape))
    return tensor


def dirac_(tensor, groups=1):
    """Fill a 3/4/5-D conv weight (out, in, *kernel) in place with the Dirac delta (identity convolution).

    With ``groups`` > 1 each group of ``out // groups`` output channels preserves its own inputs' identity.
    """
    array = _array(tensor, "dirac_")
    dimensions = array.ndim
    if dimensions not in [3, 4, 5]:
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = array.shape
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_chans_per_grp = sizes[0] // groups
    min_dim = min(out_chans_per_grp, sizes[1])
    centre = tuple(s // 2 for s in sizes[2:])
    values = numpy.zeros(sizes, dtype=numpy.dtype(array.dtype))
    for g in range(groups):
        for d in range(min_dim):
            values[(g * out_chans_per_grp + d, d) + centre] = 1
    _write(array, values)
    return tensor


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)), weight (out, in, *kernel)."""
    array = _array(tensor, "xavier_uniform_", random=True)
    fan_in, fan_out = _fans(array)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator=_rng(generator, "xavier_uniform_"))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)), weight (out, in, *kernel)."""
    array = _array(tensor, "xavier_normal_", random=True)
    fan_in, fan_out = _fans(array)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator=_rng(generator, "xavier_normal_"))


def _kaiming_std(tensor, a, mode, nonlinearity, where):
    """std = gain / sqrt(fan) of the He initialisers, or None for a zero-element tensor (a no-op)."""
    array = _array(tensor, where, random=True)
    if 0 in array.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(array, mode))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-b, b), b = gain * sqrt(3 / fan), fan by ``mode`` of a weight (out, in, *kernel)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    rng = _rng(generator, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator=rng)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std^2), std = gain / sqrt(fan), fan by ``mode`` of a weight (out, in, *kernel)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    rng = _rng(generator, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator=rng)


def orthogonal_(tensor, gain=1, generator=None):
    """Fill a weight (out, in, *kernel), seen as (out, rest), in place with a (semi-)orthogonal matrix times gain.

    Rows are orthonormal when out <= rest, columns otherwise (QR of a normal matrix, Saxe et al. 2013).
    """
    array = _array(tensor, "orthogonal_", random=True)
    rng = _rng(generator, "orthogonal_")
    if array.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if array.size == 0:
        return tensor
    rows = array.shape[0]
    cols = array.size // rows
    # QR needs the matrix in float64, its Q and R and LAPACK's workspace: about three float64 copies
    check_bytes(3 * rows * cols * 8, "nn.init.orthogonal_", array.shape, what="a QR decomposition of a weight",
                advice="use a smaller weight or another initialiser")
    flattened = rng.normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flattened = flattened.T
    q, r = numpy.linalg.qr(flattened)
    q *= numpy.sign(numpy.diag(r, 0))   # makes Q uniform over the orthogonal group (arXiv math-ph/0609050)
    if rows < cols:
        q = q.T
    _write(array, (q * gain).reshape(array.shape))
    return tensor
