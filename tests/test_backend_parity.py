"""Every layer gives the same result on each backend as on NumPy (the cupy cases run on a GPU).

Layers are built once on NumPy, copied to the backend under test with ``.to()``, run on the
same input, and compared (forward, input gradient, parameter gradients) after moving back.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import to_backend

LAYERS = {
    "conv2d": (lambda: mg.nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 9, 8)),
    "conv2d_grouped_reflect": (lambda: mg.nn.Conv2d(4, 4, 3, groups=2, padding=1, padding_mode="reflect"),
                               (2, 4, 6, 6)),
    "conv2d_depthwise": (lambda: mg.nn.Conv2d(4, 4, 3, groups=4, padding=1), (2, 4, 6, 6)),
    "conv2d_1x1": (lambda: mg.nn.Conv2d(4, 6, 1), (2, 4, 5, 5)),
    "linear": (lambda: mg.nn.Linear(6, 3), (4, 6)),
    "flatten": (lambda: mg.nn.Flatten(), (2, 3, 4, 4)),
}


def _host(a):
    return to_backend(a, "numpy")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_same_on_every_backend(name, backend):
    make, shape = LAYERS[name]
    mg.set_backend("numpy")
    reference = make()
    moved = make()
    moved.load_state_dict(reference.state_dict())
    moved.to(backend)
    assert moved.backend in (None, backend)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    y_ref = reference(x)
    y = moved(to_backend(x, backend))
    dy = np.random.default_rng(1).standard_normal(y_ref.shape).astype("float32")
    dx_ref = reference.backward(dy)
    dx = moved.backward(to_backend(dy, backend))
    np.testing.assert_allclose(_host(y), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_host(dx), dx_ref, rtol=1e-5, atol=1e-5)
    for (pname, p_ref), (_, p) in zip(reference.named_parameters(), moved.named_parameters()):
        assert p.backend == backend, pname
        np.testing.assert_allclose(_host(p.grad), p_ref.grad, rtol=1e-4, atol=1e-5, err_msg=pname)
