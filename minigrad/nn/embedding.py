"""Embedding: a lookup table of learned vectors, one per index (token, category), as ``torch.nn.Embedding``.

    y = W[input]            input: integer indices (*) -> y: (*, embedding_dim); W: (num_embeddings, embedding_dim)
    dW[v] += sum of the rows of dy whose index is v (scaled by 1 / count(v) with scale_grad_by_freq);
    the padding_idx row gets no gradient; the indices get none either (backward returns None)

An Embedding is a network's first layer (its input is data): in a Sequential, ``backward`` and
``backward_parameters`` stop at it. The weight starts as N(0, 1) samples, the padding_idx row zeroed, as
PyTorch's; ``Embedding.from_pretrained(W)`` wraps given vectors (frozen by default). The math is in
``minigrad.functional.embedding``.
"""
from __future__ import annotations

import numbers

import numpy

from ..functional.embedding import check_padding_idx, embedding_forward, embedding_weight_grad
from ..runtime.backend import is_array, to_backend
from ..runtime.checks import check_float_array
from ..runtime.memory import check_bytes
from . import init
from .layer import Layer
from .linear import device_dtype
from .parameter import Parameter

__all__ = ["Embedding"]


def _refuse(max_norm, sparse, where):
    if max_norm is not None:
        raise NotImplementedError(f"{where}: max_norm={max_norm!r} (renormalising the rows each forward reads, in "
                                  "place) is not supported; use max_norm=None")
    if not isinstance(sparse, (bool, numpy.bool_)):
        raise TypeError(f"{where}: sparse must be True or False, got {sparse!r}")
    if sparse:
        raise NotImplementedError(f"{where}: sparse=True (a sparse weight gradient) is not supported; minigrad's "
                                  "gradients are dense: use sparse=False")


class Embedding(Layer):
    """A (num_embeddings, embedding_dim) table; forward looks up the rows named by integer indices of any shape."""
    FORWARD_COPIES = 0      # forward checks its exact output bytes itself (runtime/memory.py)

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        super().__init__()
        where = "Embedding"
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
        dtype = device_dtype(Embedding, device, dtype, f"{num_embeddings!r}, {embedding_dim!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = check_padding_idx(padding_idx, self.num_embeddings, where)
        _refuse(max_norm, sparse, where)
        self.max_norm, self.norm_type, self.sparse = max_norm, norm_type, bool(sparse)
        if not isinstance(scale_grad_by_freq, (bool, numpy.bool_)):
            raise TypeError(f"{where}: scale_grad_by_freq must be True or False, got {scale_grad_by_freq!r}")
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        if not isinstance(_freeze, (bool, numpy.bool_)):
            raise TypeError(f"{where}: freeze must be True or False, got {_freeze!r}")
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            label = f"Embedding({num_embeddings}, {embedding_dim})"          # names the layer in a MemoryError
            check_bytes(shape[0] * shape[1] * numpy.dtype(dtype).itemsize, label, shape, what="weight",
                        advice="use a smaller num_embeddings or embedding_dim")
            host = init.normal_(numpy.empty(shape, dtype))                  # N(0, 1), as PyTorch's
            if self.padding_idx is not None:
                host[self.padding_idx] = 0
            weight = to_backend(host)
        else:
            weight = _weight.data if isinstance(_weight, Parameter) else _weight
            check_float_array(weight, where, "_weight")
            if tuple(weight.shape) != shape:       # PyTorch keeps the given tensor (and its dtype) as the weight
                raise ValueError(f"{where}: the given weight has shape {tuple(weight.shape)}, which does not match "
                                 f"num_embeddings and embedding_dim {shape}")
        self.weight = Parameter(weight, requires_grad=not _freeze)
        if device is not None:   # PyTorch's device= ('cpu'/'cuda', or 'numpy'/'cupy'): the same as .to(device)
            self.to(device)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (V, D) itself (not a copy, as PyTorch's); frozen
        (requires_grad=False) unless freeze=False. The padding_idx row is kept as given."""
        if not is_array(embeddings) or embeddings.ndim != 2:
            shape = tuple(embeddings.shape) if is_array(embeddings) else type(embeddings).__name__
            raise ValueError(f"Embedding.from_pretrained: embeddings is expected to be a 2-D array (num_embeddings, "
                             f"embedding_dim), got {shape}")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        """input: integer indices (*) -> (*, embedding_dim). Caches the indices."""
        y = embedding_forward(input, self.weight.data, self.label)
        self._cache = input
        return y

    def _backward(self, grad_out, need_input):
        """grad_out: (*, embedding_dim) -> None (indices have no gradient); adds the scatter of grad_out's rows
        into weight.grad (nothing for a frozen weight or the padding_idx row)."""
        indices = self.take_cache()
        self.check_grad_out(grad_out, tuple(indices.shape) + (self.embedding_dim,), self.weight.data, "weight")
        if self.weight.requires_grad:
            self.weight.accumulate(embedding_weight_grad(grad_out, indices, self.num_embeddings, self.padding_idx,
                                                         self.scale_grad_by_freq, self.label), self.label)
        return None

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
