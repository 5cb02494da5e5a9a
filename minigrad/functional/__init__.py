"""Stateless functions on arrays (``mg.functional``): convolution kernels and padding, and the layers' functional
forms with ``torch.nn.functional``'s names (``relu``, ``softmax``, ``max_pool2d``, ``linear``, ``cross_entropy`` ...,
defined in ``minigrad.nn.functional``; forward only)."""
from .conv import conv2d, conv2d_input, conv2d_weight, fold, unfold
from .padding import pad2d, pad2d_backward

__all__ = ["unfold", "fold", "conv2d", "conv2d_input", "conv2d_weight", "pad2d", "pad2d_backward"]

from .special import erf, erfc  # noqa: E402
__all__ += ["erf", "erfc"]

from ..nn import functional as _layer_forms  # noqa: E402  (after the kernels above, which the layers import)
from ..nn.functional import *  # noqa: E402,F401,F403
__all__ += [name for name in _layer_forms.__all__ if name not in __all__]
