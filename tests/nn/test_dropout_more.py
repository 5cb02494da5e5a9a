"""Dropout2d and AlphaDropout: the deterministic cases against PyTorch (eval, p = 0, p = 1), the random ones by
their statistics (whole channels dropped at rate p, AlphaDropout keeping mean 0 / variance 1) and by PyTorch's
formula on the mask drawn, backward through the same mask, mg.manual_seed reproducibility, finite differences,
PyTorch's warnings for 3-D and other ranks, both backends, the strict backend and the error messages."""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")

ALPHA = 1.7580993408473766          # ATen's alpha_dropout constant


def _x(shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["Dropout2d", "AlphaDropout"])
@pytest.mark.parametrize("p,train", [(0.0, True), (1.0, True), (0.5, False), (1.0, False)])
def test_deterministic_cases_match_torch(name, p, train, dtype):
    layer, module = getattr(mg.nn, name)(p), getattr(torch.nn, name)(p)
    layer.train(train)
    module.train(train)
    x = _x((3, 4, 5, 2), dtype)
    x[0, 0, 0, 0] = np.nan                                      # p = 1 is x * 0: NaN stays NaN, as PyTorch
    dy = _x(x.shape, dtype, seed=1)
    expected, (expected_dx,) = torch_run(module, [x], dy)
    y = layer(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected.detach().numpy()))
    finite = ~np.isnan(y)
    assert_close(y[finite], expected.detach().numpy()[finite], dtype, "output")
    assert_close(layer.backward(dy), expected_dx, dtype, "input gradient")


def test_dropout2d_zeroes_whole_channels_at_rate_p_and_scales_the_rest():
    mg.manual_seed(3)
    layer = mg.nn.Dropout2d(0.3)
    x = np.abs(_x((400, 50, 3, 4))) + 0.5
    y = layer(x)
    dropped = (y == 0).all(axis=(2, 3))
    kept = np.isclose(y, x / 0.7, rtol=1e-15, atol=0).all(axis=(2, 3))
    assert (dropped | kept).all()                                 # each channel: all zero, or all scaled
    assert abs(dropped.mean() - 0.3) < 0.01                       # 20000 channels: 4.6 standard errors
    dy = _x(x.shape, seed=1)
    np.testing.assert_allclose(layer.backward(dy), np.where(dropped[:, :, None, None], 0.0, dy / 0.7), rtol=1e-15)


def test_alpha_dropout_formula_statistics_and_backward():
    mg.manual_seed(4)
    p = 0.2
    layer = mg.nn.AlphaDropout(p)
    x = _x((200, 1000))
    y = layer(x)
    a = 1.0 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
    dropped_value = ALPHA * a * (p - 1)                            # alpha a (0 - 1 + p)
    dropped = y == dropped_value
    np.testing.assert_allclose(y[~dropped], a * x[~dropped] + ALPHA * a * p, rtol=1e-14)
    assert abs(dropped.mean() - p) < 0.005
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1.0) < 0.01    # SELU's fixed point: mean 0, variance 1
    dy = _x(x.shape, seed=1)
    np.testing.assert_allclose(layer.backward(dy), np.where(dropped, 0.0, a * dy), rtol=1e-14)


def test_alpha_dropout_of_a_selu_network_keeps_the_statistics_like_torch():
    """Same input, each framework's own mask: the moments agree (the masks cannot)."""
    x = _x((100000,))
    mg.manual_seed(0)
    ours = mg.nn.AlphaDropout(0.5)(x)
    torch.manual_seed(0)
    theirs = torch.nn.AlphaDropout(0.5).train()(torch.from_numpy(x)).numpy()
    assert abs(ours.mean() - theirs.mean()) < 0.02 and abs(ours.std() - theirs.std()) < 0.02
    mode = lambda y: max(zip(*np.unique(y, return_counts=True)), key=lambda vc: vc[1])   # noqa: E731
    assert mode(ours)[0] == pytest.approx(mode(theirs)[0], rel=1e-15)             # the one dropped value
    assert abs(mode(ours)[1] - mode(theirs)[1]) < 1000                             # about half of 100000 each


@pytest.mark.parametrize("name", ["Dropout2d", "AlphaDropout"])
def test_manual_seed_reproduces_the_mask(name):
    x = _x((4, 6, 3, 3))
    mg.manual_seed(11)
    first = getattr(mg.nn, name)()(x)
    mg.manual_seed(11)
    second = getattr(mg.nn, name)()(x)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, getattr(mg.nn, name)()(x))   # the generator moved on


@pytest.mark.parametrize("name", ["Dropout2d", "AlphaDropout"])
def test_finite_differences_through_the_mask(name):
    assert mg.gradcheck(getattr(mg.nn, name)(0.4), _x((3, 4, 2, 2)))   # gradcheck replays the same mask


def test_dropout2d_ranks_and_warnings_like_torch():
    mg.manual_seed(0)
    x3 = np.ones((50, 40, 6))
    with pytest.warns(UserWarning, match=r"Received a 3D input to dropout2d and assuming that channel-wise 1D"):
        y = mg.nn.Dropout2d()(x3)
    assert ((y == 0).all(axis=2) | (y == 2).all(axis=2)).all()   # (N, C, L): whole (n, c) rows
    with pytest.warns(UserWarning, match=r"Received a 5-D input to dropout2d, which is deprecated"):
        y = mg.nn.Dropout2d()(np.ones((4, 5, 2, 3, 2)))
    assert ((y == 0).all(axis=(2, 3, 4)) | (y == 2).all(axis=(2, 3, 4))).all()
    with pytest.warns(UserWarning, match=r"Received a 2-D input"):
        mg.nn.Dropout2d()(np.ones((4, 5)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mg.nn.Dropout2d()(np.ones((2, 3, 4, 4)))                 # 4-D: no warning
    with pytest.raises(ValueError, match=r"Dropout2d: feature dropout requires at least 2 dimensions"):
        mg.nn.Dropout2d()(np.ones(5))
    assert mg.nn.AlphaDropout(0.5)(np.array(3.0)).shape == ()    # AlphaDropout: any shape, even 0-d


def test_empty_input_is_the_identity():
    for layer in (mg.nn.Dropout2d(0.5), mg.nn.AlphaDropout(0.5)):
        x = np.ones((0, 3, 2, 2))
        assert layer(x) is x and layer.backward(x) is x


def test_on_each_backend(backend, xp):
    x = xp.asarray(_x((8, 6, 3, 3), "float32"))
    for layer in (mg.nn.Dropout2d(0.5), mg.nn.AlphaDropout(0.3)):
        mg.manual_seed(5)
        y = layer(x)
        assert mg.backend.backend_of(y) == backend and y.dtype == np.float32
        dx = layer.backward(xp.ones_like(y))
        assert mg.backend.backend_of(dx) == backend and dx.dtype == np.float32
        mg.manual_seed(5)
        assert bool((layer(x) == y).all())                        # reproducible on the device too
        if backend != "numpy":
            with pytest.raises(mg.backend.BackendMismatchError, match=f"{type(layer).__name__}: grad_out is a numpy"):
                layer.backward(np.ones((8, 6, 3, 3), dtype="float32"))


@pytest.mark.parametrize("name", ["Dropout2d", "AlphaDropout"])
def test_strict_backend(name):
    x = _x((2, 3, 4, 4), "float32")
    strict_run(getattr(mg.nn, name)(0.3), [x], np.ones_like(x))


def test_errors_and_repr():
    for name in ("Dropout2d", "AlphaDropout"):
        with pytest.raises(ValueError, match=rf"{name}: dropout probability has to be between 0 and 1, but got 1.5"):
            getattr(mg.nn, name)(1.5)
        assert repr(getattr(mg.nn, name)(0.25)) == repr(getattr(torch.nn, name)(0.25))
        layer = getattr(mg.nn, name)()
        with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input"):
            layer(np.ones((2, 3, 2, 2), dtype=int))
        layer(_x((2, 3, 2, 2)))
        with pytest.raises(ValueError, match=rf"{name}: expected grad_out of shape \(2, 3, 2, 2\)"):
            layer.backward(_x((2, 3)))
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(_x((2, 3, 2, 2)))
