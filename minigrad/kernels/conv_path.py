"""Dispatch point for backend-specific fast convolution paths.

``minigrad.functional.conv`` asks here first; a path returns its result, or None to fall
back to the reference im2col + matmul code. Keeping the choice in one place means every
fast path is exercised by the same PyTorch comparison tests as the reference.
"""
from __future__ import annotations


def forward(x, weight, bias, geom):
    """Fast conv forward for this backend/geometry, or None for the reference path."""
    return None


def backward(x, weight, grad_out, geom, need_input, need_weight, need_bias):
    """Fast conv backward (dx, dW, db), or None for the reference path."""
    return None
