"""clip_grad_norm_ / clip_grad_value_ against torch.nn.utils, the strict backend and errors."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Parameter
from minigrad.optim import clip_grad_norm_, clip_grad_value_
from support.strict_backend import assert_strict, strict_layer
from support.grads import set_grad

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _pair(rng, scale, dtype="float64"):
    grads = [(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    params = []
    for g in grads:
        p = Parameter(np.zeros(g.shape, dtype=dtype))
        set_grad(p, g)
        params.append(p)
    tensors = []
    for g in grads:
        t = torch.zeros(g.shape, dtype=getattr(torch, dtype), requires_grad=True)
        t.grad = torch.tensor(g.copy())
        tensors.append(t)
    return params, tensors


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf])
@pytest.mark.parametrize("scale,max_norm", [(10.0, 1.0), (0.01, 1.0), (1.0, 0.0)])
def test_clip_grad_norm_matches_torch(norm_type, scale, max_norm, rng):
    params, tensors = _pair(rng, scale)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type, foreach=False)
    np.testing.assert_allclose(float(total), t_total.item(), rtol=1e-10)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_clip_grad_norm_float32_keeps_dtype(rng):
    params, tensors = _pair(rng, 10.0, dtype="float32")
    clip_grad_norm_(params, 0.5)
    torch.nn.utils.clip_grad_norm_(tensors, 0.5, foreach=False)
    for p, t in zip(params, tensors):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-5)


def test_clip_grad_value_matches_torch(rng):
    params, tensors = _pair(rng, 3.0)
    clip_grad_value_(params, 1.5)
    torch.nn.utils.clip_grad_value_(tensors, 1.5, foreach=False)
    for p, t in zip(params, tensors):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_accepts_single_parameter_layer_and_skips_none(rng):
    p = Parameter(np.zeros(4))
    set_grad(p, [3.0, 4.0, 0.0, 0.0])
    assert float(clip_grad_norm_(p, 100.0)) == pytest.approx(5.0)
    q = Parameter(np.zeros(2))
    q.grad = None
    assert float(clip_grad_norm_([p, q], 1.0)) == pytest.approx(5.0)
    model = mg.nn.Linear(3, 2, dtype="float64")
    for param in model.parameters():
        set_grad(param, 10.0)
    clip_grad_value_(model, 0.25)
    assert all((param.grad == 0.25).all() for param in model.parameters())
    assert float(clip_grad_norm_([], 1.0)) == 0.0


def test_strict_backend(rng):
    model = strict_layer(mg.nn.Linear(3, 2, dtype="float64"))
    for p in model.parameters():
        set_grad(p, 5.0)
    total = clip_grad_norm_(model.parameters(), 1.0)
    clip_grad_value_(model.parameters(), 0.1)
    for p in model.parameters():
        assert_strict(p.grad, "clipped gradient")
    assert float(total) == pytest.approx(math.sqrt(8 * 25.0))


def test_errors():
    p = Parameter(np.zeros(2))
    set_grad(p, np.inf)
    with pytest.raises(RuntimeError, match="clip_grad_norm_: the total norm of order 2.0 of the gradients is inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="clip_grad_norm_: max_norm must be >= 0"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="clip_grad_value_: clip_value must be >= 0"):
        clip_grad_value_([p], -1.0)
    with pytest.raises(TypeError, match="clip_grad_norm_: item 0 is a ndarray, not a minigrad Parameter"):
        clip_grad_norm_([np.zeros(2)], 1.0)
