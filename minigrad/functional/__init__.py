"""Stateless functions on arrays (``mg.functional``): convolution kernels and padding."""
from .conv import conv2d, conv2d_input, conv2d_weight, fold, unfold
from .padding import pad2d, pad2d_backward

__all__ = ["unfold", "fold", "conv2d", "conv2d_input", "conv2d_weight", "pad2d", "pad2d_backward"]

from .special import erf, erfc  # noqa: E402
__all__ += ["erf", "erfc"]
