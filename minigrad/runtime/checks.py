"""Small shared helpers: argument normalisation and shape/dtype checks with clear messages."""
from __future__ import annotations

import numbers


def pair(value, name: str = "value", where: str = "minigrad") -> tuple[int, int]:
    """Turn an int or a 2-sequence of ints into an (a, b) tuple of ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}")


def positive_pair(value, name: str, where: str, allow_zero: bool = False) -> tuple[int, int]:
    """pair() that also checks every entry is > 0 (or >= 0 with allow_zero)."""
    result = pair(value, name, where)
    low = 0 if allow_zero else 1
    if min(result) < low:
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{where}: {name} must be {bound}, got {value!r}")
    return result


def check_float_array(x, where: str, name: str = "input"):
    """Raise TypeError unless x is a real floating-point array of some backend that takes its dtype
    (no float16 on CuPy: backend.GPU_FLOAT_DTYPES)."""
    from .backend import backend_of, check_backend_dtype, is_array
    if not is_array(x):
        raise TypeError(f"{where}: expected {name} to be a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(
            f"{where}: expected a floating-point {name} (float32 or float64), got dtype {x.dtype}; "
            f"convert it with {name}.astype('float32')")
    check_backend_dtype(backend_of(x), x.dtype, f"{where}: {name}")


def check_ndim(x, ndims, where: str, layout: str, name: str = "input"):
    """Raise ValueError unless x.ndim is one of ndims; layout describes the expected axes."""
    if isinstance(ndims, int):
        ndims = (ndims,)
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{where}: expected {want} {name} {layout}, got {x.ndim}-D {name} of shape "
                         f"{tuple(x.shape)}")


def check_grad_like(grad, where: str, shape, backend: str, dtype, name: str = "grad_out"):
    """Raise unless grad is an array of the output's shape, on the input's backend, of its dtype.

    For layers that cache no array of the input's backend (Flatten, Identity, Add, Concat, pooling):
    forward stores ``backend_of(x)`` and ``x.dtype`` instead.
    """
    from .backend import BackendMismatchError, backend_of, is_array
    if not is_array(grad):
        raise TypeError(f"{where}: expected {name} to be a NumPy or CuPy array, got {type(grad).__name__}")
    if backend_of(grad) != backend:
        raise BackendMismatchError(f"{where}: {name} is a {backend_of(grad)} array but the input was a {backend} "
                                   "array; move them to one backend first (mg.backend.to_backend(array, name))")
    if tuple(grad.shape) != tuple(shape):
        raise ValueError(f"{where}: expected {name} of shape {tuple(shape)} (the output shape), got "
                         f"{tuple(grad.shape)}")
    if dtype is not None and grad.dtype != dtype:
        raise TypeError(f"{where}: {name} has dtype {grad.dtype} but input has dtype {dtype}; use one dtype "
                        "(e.g. layer.to(dtype=...) or x.astype(...))")


def check_same_dtype(a, b, where: str, a_name: str, b_name: str):
    if a.dtype != b.dtype:
        raise TypeError(f"{where}: {a_name} has dtype {a.dtype} but {b_name} has dtype {b.dtype}; "
                        "use one dtype (e.g. layer.to(dtype=...) or x.astype(...))")
