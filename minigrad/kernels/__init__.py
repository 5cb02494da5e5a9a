"""Low-level kernels: im2col / col2im and friends, written once over the array module.

``im2col.py`` holds the reference strided-slice implementation (NumPy and CuPy alike).
Faster backend-specific paths live beside it and are chosen by ``minigrad.functional``.
"""
from .im2col import col2im, im2col, conv_out_size

__all__ = ["im2col", "col2im", "conv_out_size"]
