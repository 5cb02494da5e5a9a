"""mg.nn.Linear and mg.nn.Flatten against PyTorch, finite differences, strict backend, errors."""
import numpy as np
import pytest

import minigrad as mg
from support.strict_backend import assert_strict, strict_layer, to_strict

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (7,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, dtype, bias):
    ours = mg.nn.Linear(7, 4, bias=bias, dtype=dtype)
    ref = torch.nn.Linear(7, 4, bias=bias, dtype=getattr(torch, dtype))
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(x), ref(xt)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    pairs = [(y, yt), (dx, xt.grad), (ours.weight.grad, ref.weight.grad)]
    if bias:
        pairs.append((ours.bias.grad, ref.bias.grad))
    for a, b in pairs:
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b.detach().numpy(), **tol)


def test_linear_gradcheck_and_strict():
    assert mg.gradcheck(mg.nn.Linear(5, 3), np.random.default_rng(1).standard_normal((4, 2, 5)))
    layer = strict_layer(mg.nn.Linear(5, 3))
    y = layer(to_strict(np.ones((4, 5), "float32")))
    assert_strict(y, "output")
    assert_strict(layer.backward(to_strict(np.ones((4, 3), "float32"))), "input gradient")
    assert_strict(layer.weight.grad, "weight gradient")


def test_linear_errors():
    layer = mg.nn.Linear(784, 10)
    with pytest.raises(ValueError, match=r"Linear: expected input with last dimension in_features=784, "
                                         r"got input of shape \(8, 1, 28, 28\)"):
        layer(np.zeros((8, 1, 28, 28), "float32"))
    with pytest.raises(TypeError, match="Linear: expected a floating-point input.*int32"):
        layer(np.zeros((8, 784), "int32"))
    with pytest.raises(ValueError, match="Linear: out_features must be a positive int"):
        mg.nn.Linear(3, 0)
    layer(np.zeros((8, 784), "float32"))
    with pytest.raises(ValueError, match=r"Linear: expected grad_out of shape \(8, 10\), got \(8, 9\)"):
        layer.backward(np.zeros((8, 9), "float32"))


@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (2, 3), (1, 2)])
def test_flatten_matches_torch(start, end):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer = mg.nn.Flatten(start, end)
    y = layer(x)
    assert y.shape == tuple(torch.nn.Flatten(start, end)(torch.tensor(x)).shape)
    np.testing.assert_array_equal(layer.backward(y), x)
    assert mg.gradcheck(mg.nn.Flatten(start, end), x[:1, :2, :2, :2])
    strict = mg.nn.Flatten(start, end)
    assert_strict(strict.backward(strict(to_strict(x))), "input gradient")
