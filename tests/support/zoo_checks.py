"""Shared checks for the layer-zoo tests (activations, pooling, norms, losses, ...).

``torch_run`` runs a torch module/function on float copies of the inputs and returns the
output and the input gradients for a given output gradient; ``strict_run`` runs a minigrad
layer on the strict backend and asserts every output and gradient stayed on it.
"""
import copy

import numpy as np
import pytest

try:
    import torch
except ImportError:          # the strict-backend checks need no torch; torch_run skips its test without it
    torch = None

from .strict_backend import assert_strict, strict_layer, to_strict

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


def assert_close(actual, expected, dtype, what=""):
    """Compare a minigrad array with a torch tensor / numpy array at the dtype's tolerance."""
    if torch is not None and isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    actual = np.asarray(actual)
    assert actual.shape == tuple(expected.shape), f"{what}: shape {actual.shape} != {tuple(expected.shape)}"
    assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {dtype}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOL[str(np.dtype(dtype))])


def torch_run(fn, inputs, grad_out, requires_grad=None):
    """out, [grad of each input that requires grad] for out = fn(*inputs); (out * grad_out).sum() backward."""
    if torch is None:
        pytest.skip("needs PyTorch (the reference), which the test extra installs")
    tensors = []
    for i, x in enumerate(inputs):
        t = torch.from_numpy(np.array(x))
        if t.is_floating_point() and (requires_grad is None or requires_grad[i]):
            t.requires_grad_(True)
        tensors.append(t)
    out = fn(*tensors)
    if grad_out is not None:
        out.backward(torch.from_numpy(np.array(grad_out)))
    grads = [t.grad for t in tensors if t.requires_grad]
    return out, grads


def strict_run(layer, inputs, grad_out):
    """Forward and backward on the strict backend; asserts outputs and all gradients are strict."""
    layer = strict_layer(copy.deepcopy(layer))
    out = layer(*[to_strict(x) if isinstance(x, np.ndarray) else x for x in inputs])
    assert_strict(out, "output")
    grads = layer.backward(to_strict(grad_out) if isinstance(grad_out, np.ndarray) else grad_out)
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert_strict(g, "input gradient")
    for name, param in layer.named_parameters():
        assert_strict(param.grad, f"gradient of {name}")
    for name, buf in layer.named_buffers():
        assert_strict(buf, f"buffer {name}")
    return out, grads
