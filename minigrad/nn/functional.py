"""The functional forms of the layers, with ``torch.nn.functional``'s names and signatures.

Also available as ``mg.functional.<name>``; ``conv2d``, ``unfold`` and ``fold`` (from ``minigrad.functional.conv``)
are here too, so ``import minigrad.nn.functional as F`` reads like PyTorch. Each function
returns the forward result only (there is no autograd tape): it runs its layer's forward, the same code
the layer uses, and keeps nothing for a backward pass. To train through an operation, use the layer
(``mg.nn.ReLU()``, ...) whose ``backward`` gives the gradients.

    y = mg.functional.relu(x)                                   # x: any shape -> same shape
    p = mg.functional.softmax(logits, dim=1)                    # (N, C) -> (N, C), rows sum to 1
    y = mg.functional.max_pool2d(x, 2)                          # (N, C, H, W) -> (N, C, H/2, W/2)
    y = mg.functional.linear(x, weight, bias)                   # (*, in) @ (out, in).T + (out,) -> (*, out)
    loss = mg.functional.cross_entropy(logits, target)          # 0-d array (reduction='mean')
"""
from __future__ import annotations

from ..functional.conv import conv2d, fold, unfold
from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .grad_mode import no_grad
from .parameter import Parameter
from .linear import linear_forward
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "max_pool2d",
           "avg_pool2d", "adaptive_avg_pool2d", "linear", "cross_entropy", "nll_loss", "mse_loss",
           "binary_cross_entropy_with_logits", "conv2d", "unfold", "fold"]


def _run(layer, *inputs):
    """layer(*inputs) with nothing cached for backward (the layer is used once and dropped)."""
    with no_grad():
        return layer(*inputs)


def _array_of(value):
    """A Parameter's array (``.data``); anything else as it is."""
    return value.data if isinstance(value, Parameter) else value


def _cast(input, dtype):
    """softmax's dtype=: the input is cast first, as in PyTorch."""
    return input if dtype is None else input.astype(dtype)


def relu(input, inplace: bool = False):
    """max(x, 0). x: any shape -> same shape (a new array; ``inplace`` is accepted and ignored)."""
    return _run(ReLU(inplace), input)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x for x > 0, negative_slope * x otherwise. x: any shape -> same shape."""
    return _run(LeakyReLU(negative_slope, inplace), input)


def gelu(input, approximate: str = "none"):
    """x * Phi(x) ('none') or its tanh approximation ('tanh'). x: any shape -> same shape."""
    return _run(GELU(approximate), input)


def sigmoid(input):
    """1 / (1 + exp(-x)). x: any shape -> same shape."""
    return _run(Sigmoid(), input)


def tanh(input):
    """tanh(x). x: any shape -> same shape."""
    return _run(Tanh(), input)


def softmax(input, dim=None, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along ``dim`` (None: PyTorch's legacy choice). -> input's shape."""
    return _run(Softmax(dim), _cast(input, dtype))


def log_softmax(input, dim=None, dtype=None):
    """log(softmax(x)) along ``dim``, computed stably. -> input's shape."""
    return _run(LogSoftmax(dim), _cast(input, dtype))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows. x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW) (and the indices with
    ``return_indices=True``); padding is -inf."""
    return _run(MaxPool2d(kernel_size, stride=stride, padding=padding, dilation=dilation,
                          return_indices=return_indices, ceil_mode=ceil_mode), input)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average over windows. x: (N, C, H, W) or (C, H, W) -> (N, C, OH, OW)."""
    return _run(AvgPool2d(kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                          count_include_pad=count_include_pad, divisor_override=divisor_override), input)


def linear(input, weight, bias=None):
    """input @ weight.T + bias. input: (*, in_features); weight: (out_features, in_features);
    bias: (out_features,) or None -> (*, out_features). A layer's Parameters may be passed as they are
    (``F.linear(x, layer.weight, layer.bias)``, the PyTorch idiom): their arrays are used."""
    return linear_forward(input, _array_of(weight), _array_of(bias), "linear")


def adaptive_avg_pool2d(input, output_size):
    """Mean over PyTorch's adaptive bins. x: (N, C, H, W) or (C, H, W) -> (N, C, *output_size)."""
    return _run(AdaptiveAvgPool2d(output_size), input)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0):
    """Softmax cross-entropy of logits (N, C, *) against class indices (N, *) or probabilities (N, C, *).
    (size_average/reduce, deprecated in PyTorch, raise NotImplementedError naming reduction=.)"""
    return _run(CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing, size_average=size_average,
                                 reduce=reduce), input, target)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities (N, C, *) against class indices (N, *)."""
    return _run(NLLLoss(weight, ignore_index, reduction, size_average=size_average, reduce=reduce), input, target)


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """(input - target)^2, reduced. input, target: the same shape."""
    return _run(MSELoss(reduction, size_average, reduce), input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable step. input, target: the same shape."""
    return _run(BCEWithLogitsLoss(weight, reduction, pos_weight, size_average=size_average, reduce=reduce),
                input, target)
