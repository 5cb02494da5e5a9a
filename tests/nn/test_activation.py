"""Activations and erf: forward and input gradients vs PyTorch (float64 and float32), erf vs
math.erf, finite differences, the strict backend and error messages."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.functional.special import erf, erfc
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (minigrad layer factory, torch function of x)
ACTIVATIONS = {
    "relu": (lambda: mg.nn.ReLU(), F.relu),
    "leaky_relu": (lambda: mg.nn.LeakyReLU(), F.leaky_relu),
    "leaky_relu_0.2": (lambda: mg.nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)),
    "gelu": (lambda: mg.nn.GELU(), F.gelu),
    "gelu_tanh": (lambda: mg.nn.GELU(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    "sigmoid": (lambda: mg.nn.Sigmoid(), torch.sigmoid),
    "tanh": (lambda: mg.nn.Tanh(), torch.tanh),
    "softmax_1": (lambda: mg.nn.Softmax(dim=1), lambda x: F.softmax(x, dim=1)),
    "softmax_-1": (lambda: mg.nn.Softmax(dim=-1), lambda x: F.softmax(x, dim=-1)),
    "log_softmax_1": (lambda: mg.nn.LogSoftmax(dim=1), lambda x: F.log_softmax(x, dim=1)),
    "log_softmax_0": (lambda: mg.nn.LogSoftmax(dim=0), lambda x: F.log_softmax(x, dim=0)),
}


def _input(dtype, shape=(3, 5, 4), scale=3.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    x[0, 0, :2] = [0.0, -0.0]
    return x.astype(dtype)


def test_erf_matches_math_erf_on_a_wide_grid():
    x = np.concatenate([np.linspace(-30, 30, 60001), np.geomspace(1e-300, 5, 500), -np.geomspace(1e-300, 5, 500)])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), expected, rtol=2e-15, atol=1e-300)
    expected_c = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(erfc(x), expected_c, rtol=4e-15, atol=1e-300)


def test_erf_special_values_and_float32():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 40.0, -40.0])
    np.testing.assert_array_equal(erf(x), [0.0, 0.0, 1.0, -1.0, np.nan, 1.0, -1.0])
    np.testing.assert_array_equal(erfc(x), [1.0, 1.0, 0.0, 2.0, np.nan, 0.0, 2.0])
    x32 = np.linspace(-6, 6, 1001, dtype="float32")
    assert erf(x32).dtype == np.float32 and erfc(x32).dtype == np.float32
    np.testing.assert_allclose(erf(x32), [math.erf(v) for v in x32.astype("float64")], atol=3e-7)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch(name, dtype):
    make, reference = ACTIVATIONS[name]
    layer = make()
    x = _input(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    expected, (expected_dx,) = torch_run(reference, [x], dy)
    assert_close(layer(x), expected, dtype, "output")
    assert_close(layer.backward(dy), expected_dx, dtype, "input gradient")


def test_gelu_float64_matches_torch_to_1e12_and_is_accurate_in_the_tails():
    x = np.linspace(-12, 12, 4801)
    expected, (dx,) = torch_run(F.gelu, [x], np.ones_like(x))
    gelu = mg.nn.GELU()
    y = gelu(x)
    # torch computes 1 + erf(x/sqrt2), which cancels for x << 0; we use erfc(-x/sqrt2), exact to ~1 ulp
    core = np.abs(x) < 3
    np.testing.assert_allclose(y[core], expected.detach().numpy()[core], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gelu.backward(np.ones_like(x)), dx.numpy(), rtol=1e-12, atol=1e-15)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(y, exact, rtol=1e-13, atol=1e-300)  # x/sqrt2 rounding, amplified by x^2


def test_softmax_is_stable_for_huge_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e300, 1e300, 0.0]])
    np.testing.assert_allclose(mg.nn.Softmax(dim=1)(x), [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(mg.nn.LogSoftmax(dim=1)(x)[0], [0.0, -1000.0, -2000.0])
    assert np.isfinite(mg.nn.Sigmoid()(np.array([-1000.0, 1000.0]))).all()


def test_softmax_default_dim_follows_torch_legacy_rule():
    for shape in [(5,), (2, 5), (2, 3, 4), (2, 3, 4, 5)]:
        x = np.random.default_rng(0).standard_normal(shape)
        with pytest.warns(UserWarning):
            expected = F.softmax(torch.tensor(x))
        np.testing.assert_allclose(mg.nn.Softmax()(x), expected.numpy(), rtol=1e-12)


def test_relu_keeps_nan_and_inf():
    y = mg.nn.ReLU()(np.array([np.nan, -np.inf, np.inf, -1.0]))
    np.testing.assert_array_equal(y, [np.nan, 0.0, np.inf, 0.0])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_finite_differences(name):
    x = _input("float64", shape=(2, 3, 3), scale=1.5, seed=3)
    x[0, 0, :2] = [0.3, -0.4]  # keep away from the kink of ReLU / LeakyReLU
    assert mg.gradcheck(ACTIVATIONS[name][0](), x)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_strict_backend(name):
    x = _input("float32")
    strict_run(ACTIVATIONS[name][0](), [x], np.ones_like(x))


def test_activation_runs_on_each_backend(backend, xp):
    x = xp.asarray(_input("float32"))
    for make, _ in ACTIVATIONS.values():
        layer = make()
        y = layer(x)
        assert mg.backend.backend_of(y) == backend and y.dtype == np.float32
        assert mg.backend.backend_of(layer.backward(xp.ones_like(y))) == backend


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_rejects_integer_input(name):
    layer = ACTIVATIONS[name][0]()
    with pytest.raises(TypeError, match=r"floating-point input.*int64"):
        layer(np.arange(6).reshape(2, 3))


def test_activation_errors():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        mg.nn.GELU(approximate="fast")
    with pytest.raises(ValueError, match="dim=3 is out of range.*2 dimensions"):
        mg.nn.Softmax(dim=3)(np.ones((2, 3)))
    relu = mg.nn.ReLU()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        relu.backward(np.ones(3))
    relu(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"ReLU: expected grad_out of shape \(2, 3\).*got \(3, 2\)"):
        relu.backward(np.ones((3, 2)))
