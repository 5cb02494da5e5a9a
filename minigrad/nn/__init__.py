"""Layers (``mg.nn``): explicit forward/backward, PyTorch names and signatures."""
from .conv import Conv2d
from .layer import Layer, Parameter, is_grad_enabled, no_grad
from .linear import Flatten, Linear

__all__ = ["Layer", "Parameter", "no_grad", "is_grad_enabled", "Conv2d", "Linear", "Flatten"]
