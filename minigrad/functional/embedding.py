"""Embedding lookup: the math of ``nn.Embedding`` and ``torch.nn.functional.embedding``.

    forward   y[..., :] = W[i[...], :]                  i: integer indices (*) -> y: (*, D); W: (V, D)
    backward  dW[v] = s_v sum_{k: i_k = v} dy_k         (a scatter-add of the rows of dy into the rows they read)
              s_v = 1 / count(v) with scale_grad_by_freq, else 1; dW[padding_idx] = 0
              the indices get no gradient (None): they are data, not a function of any parameter

The scatter-add is one ``bincount`` over the flattened (row, column) positions with dy as weights: xp-generic,
summed in float64 whatever the dtype (then cast), so repeated indices add up exactly to the rounding of their
sum, whatever the order. Out-of-range indices are refused (one value read back, a device sync), as PyTorch's
IndexError; CuPy would wrap them around silently.
"""
from __future__ import annotations

import numbers

from ..runtime.backend import get_array_module, is_array
from ..runtime.checks import check_float_array
from ..runtime.memory import check_bytes

__all__ = ["embedding", "check_indices", "check_padding_idx", "embedding_forward", "embedding_weight_grad"]


def check_padding_idx(padding_idx, num_embeddings: int, where: str):
    """None, or PyTorch's padding_idx in [-V, V) -> the row it names in [0, V) (a negative one counts from the end)."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"{where}: padding_idx must be None or an int, got {padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{where}: padding_idx must be within num_embeddings: in [{-num_embeddings}, "
                         f"{num_embeddings}), got {padding_idx}")
    return int(padding_idx) % num_embeddings


def check_indices(input, num_embeddings: int, where: str):
    """input: an integer array of any shape with entries in [0, num_embeddings) (tested by its min and max: no
    temporary of the input's size)."""
    if not is_array(input):
        raise TypeError(f"{where}: expected input to be a NumPy or CuPy array of integer indices, got "
                        f"{type(input).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{where}: expected integer indices (int64 or int32) as input, got dtype {input.dtype}; an "
                        "embedding looks rows up by index: convert the tokens with input.astype('int64')")
    if input.size and bool((input.min() < 0) | (input.max() >= num_embeddings)):   # one value read back (a sync)
        outside = (input < 0) | (input >= num_embeddings)
        example = int(input[outside].reshape(-1)[0])
        raise IndexError(f"{where}: index out of range: the indices must be in [0, {num_embeddings}) "
                         f"(num_embeddings={num_embeddings}), got {example}")


def embedding_forward(input, weight, where: str):
    """input: (*) integer indices, weight: (V, D) -> (*, D), the rows of weight the indices name."""
    check_float_array(weight, where, "weight")
    if weight.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D weight (num_embeddings, embedding_dim), got shape "
                         f"{tuple(weight.shape)}")
    check_indices(input, weight.shape[0], where)
    get_array_module(weight, input, names=("weight", "input"), where=where)
    shape = tuple(input.shape) + (weight.shape[1],)
    check_bytes(input.size * weight.shape[1] * weight.dtype.itemsize, where, shape, like=weight)
    return get_array_module(weight).take(weight, input, axis=0)          # (*) -> (*, D)


def embedding_weight_grad(grad_out, input, num_embeddings: int, padding_idx, scale_grad_by_freq: bool,
                          where: str = "embedding"):
    """grad_out: (*, D), input: (*) indices -> the weight's gradient (V, D), in grad_out's dtype."""
    xp = get_array_module(grad_out)
    dim = grad_out.shape[-1]
    if input.size == 0:
        return xp.zeros((num_embeddings, dim), dtype=grad_out.dtype)
    # the (row, column) positions (int64), the float64 sums and their cast: checked before they are allocated
    check_bytes(8 * input.size * dim + (8 + grad_out.dtype.itemsize) * num_embeddings * dim, where,
                (num_embeddings, dim), what="weight gradient and its scatter positions", like=grad_out,
                advice="use a smaller batch or num_embeddings")
    rows = input.reshape(-1).astype("int64")                            # (*) -> (M,)
    positions = (rows[:, None] * dim + xp.arange(dim)).reshape(-1)     # (M, D) -> (M*D,): row * D + column
    values = grad_out.reshape(-1)                                       # (*, D) -> (M*D,), the same order
    grad = xp.bincount(positions, weights=values, minlength=num_embeddings * dim)
    grad = grad.reshape(num_embeddings, dim)                            # (V*D,) -> (V, D), float64
    if scale_grad_by_freq:
        counts = xp.bincount(rows, minlength=num_embeddings)            # (V,) occurrences of each row
        grad = grad / xp.maximum(counts, 1)[:, None]
    grad = grad.astype(grad_out.dtype)
    if padding_idx is not None:
        grad[padding_idx] = 0                                           # the padding row gets no gradient
    return grad


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """The rows of weight (V, D) named by the integer indices input (*) -> (*, D). (padding_idx and
    scale_grad_by_freq only shape the gradient, which a functional form does not compute; they are checked.)"""
    where = "embedding"
    if max_norm is not None:
        raise NotImplementedError(f"{where}: max_norm= (renormalising the rows read, in place) is not supported")
    if sparse:
        raise NotImplementedError(f"{where}: sparse=True (a sparse gradient) is not supported; gradients are dense")
    weight = weight.data if hasattr(weight, "accumulate") else weight     # a Parameter: its array
    if is_array(weight) and weight.ndim == 2:
        check_padding_idx(padding_idx, weight.shape[0], where)
    return embedding_forward(input, weight, where)
