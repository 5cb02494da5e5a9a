"""Dropout and Identity: train/eval behaviour, scaling like PyTorch, masks reproducible under
mg.manual_seed, gradients (finite differences replay the mask), the strict backend, errors."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import strict_run

torch = pytest.importorskip("torch")


def _x(shape=(4, 5, 6), dtype="float32", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_train_scales_like_torch_and_backward_uses_the_mask(p, dtype):
    x = _x((64, 64), dtype) + 5.0  # no zeros in x
    drop = mg.nn.Dropout(p)
    y = drop(x)
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape
    kept = y != 0
    torch_y = torch.nn.Dropout(p)(torch.tensor(x)).numpy()
    torch_kept = torch_y != 0
    # kept entries are x * (1 / (1 - p)), the scale torch multiplies by
    scale = np.asarray(1.0, dtype) / np.asarray(1 - p, dtype)
    np.testing.assert_array_equal(y[kept], (x * scale)[kept])
    np.testing.assert_allclose(y[kept] / x[kept], (torch_y[torch_kept] / x[torch_kept]).mean(), rtol=1e-6)
    assert abs(1 - kept.mean() - p) < 0.03  # 4096 draws
    dy = _x((64, 64), dtype, seed=1)
    dx = drop.backward(dy)
    np.testing.assert_array_equal(dx, np.where(kept, dy * scale, 0))


def test_dropout_eval_and_p0_are_identity_and_p1_zeroes():
    x = _x()
    drop = mg.nn.Dropout(0.5).eval()
    assert drop(x) is x and drop.backward(x) is x
    zero = mg.nn.Dropout(0.0)
    np.testing.assert_array_equal(zero(x), x)
    one = mg.nn.Dropout(1.0)
    assert not one(x).any() and not one.backward(np.ones_like(x)).any()


def test_dropout_mask_reproducible_under_manual_seed():
    x = _x()
    mg.manual_seed(7)
    first = mg.nn.Dropout(0.5)(x)
    second = mg.nn.Dropout(0.5)(x)
    mg.manual_seed(7)
    again = mg.nn.Dropout(0.5)(x)
    np.testing.assert_array_equal(first, again)
    assert (first != second).any()  # the generator advances between forwards
    mg.manual_seed(7)
    as64 = mg.nn.Dropout(0.5)(x.astype("float64"))
    np.testing.assert_array_equal(as64 != 0, first != 0)  # same mask whatever the dtype


def test_dropout_finite_differences():
    assert mg.gradcheck(mg.nn.Dropout(0.3), _x((3, 4), "float64"))


def test_identity_passes_through():
    layer = mg.nn.Identity(54, unused_argument=0.1)
    x = _x()
    assert layer(x) is x
    assert layer.backward(x) is x
    assert mg.gradcheck(layer, _x((2, 3), "float64"))
    assert list(layer.state_dict()) == []


@pytest.mark.parametrize("make", [lambda: mg.nn.Dropout(0.4), lambda: mg.nn.Dropout(0.4).eval(),
                                  lambda: mg.nn.Identity()])
def test_misc_strict_backend(make):
    x = _x()
    strict_run(make(), [x], np.ones_like(x))


def test_dropout_on_each_backend(backend, xp):
    x = xp.asarray(_x())
    mg.manual_seed(3)
    drop = mg.nn.Dropout(0.5)
    y = drop(x)
    dx = drop.backward(xp.ones_like(y))
    assert mg.backend.backend_of(y) == backend and mg.backend.backend_of(dx) == backend
    assert y.dtype == np.float32
    mg.manual_seed(3)
    assert bool(((mg.nn.Dropout(0.5)(x) != 0) == (y != 0)).all())


def test_misc_errors():
    for bad in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            mg.nn.Dropout(bad)
    with pytest.raises(TypeError, match="Dropout: expected a floating-point input.*int64"):
        mg.nn.Dropout()(np.ones(3, "int64"))
    drop = mg.nn.Dropout()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        drop.backward(np.ones(3))
    drop(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Dropout: expected grad_out of shape \(2, 3\)"):
        drop.backward(np.ones(3))
