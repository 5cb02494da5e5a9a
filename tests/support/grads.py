"""Setting a parameter's gradient in a test, as a backward would write it (grad is None until then)."""
from minigrad.backend import get_array_module


def set_grad(param, value):
    """param.grad = value, broadcast to the parameter's shape, in its dtype and on its backend."""
    grad = get_array_module(param.data).zeros_like(param.data)
    grad[...] = value
    param.grad = grad
