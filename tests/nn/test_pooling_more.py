"""AdaptiveMaxPool2d and LPPool2d (and their F forms) vs PyTorch: output, indices and input gradient in float64
(1e-10) and float32, over every output size kind (1, int, pair, None entries, larger than the input) and every
norm_type kind (1, 2, odd, non-integer, negative, +-inf) with ceil_mode; ties and NaN routed like PyTorch; the
gradient where a window's sum of x^p is 0; finite differences; each backend; the strict backend; errors."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
TF = torch.nn.functional

ADAPTIVE_SIZES = [1, 3, (2, 5), (None, 3), (3, None), (None, None), (9, 11), (13, 1), (4, 8), (7, 2)]
# norm_type, kernel_size, stride, ceil_mode, input (H, W), positive input
LP_CASES = [
    (1, 2, None, False, (6, 8), False),
    (2, 3, 2, True, (7, 8), False),
    (2, (2, 3), (2, 1), False, (7, 8), False),
    (3, 2, 1, False, (5, 6), True),
    (3.5, 3, 2, True, (7, 8), True),
    (3.5, (3, 2), None, True, (7, 7), True),
    (0.5, 2, None, False, (6, 6), True),
    (-1.5, 2, 1, False, (5, 5), True),
    (float("inf"), 3, 2, True, (7, 8), False),
    (-float("inf"), 2, None, False, (6, 8), False),
]


def _x(shape, dtype="float64", seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (np.abs(x) + 0.1 if positive else x).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", ADAPTIVE_SIZES, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (3, 5, 3), (0, 2, 4, 5)], ids=["batch", "unbatched", "empty"])
def test_adaptive_max_pool_matches_torch(size, shape, dtype):
    x = _x(shape, dtype)
    layer = mg.nn.AdaptiveMaxPool2d(size, return_indices=True)
    y, indices = layer(x)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    expected, expected_indices = TF.adaptive_max_pool2d(t, size, return_indices=True)
    assert_close(y, expected, dtype, "output")
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected_indices.numpy())
    dy = _x(y.shape, dtype, seed=5)
    expected.backward(torch.from_numpy(dy))
    assert_close(layer.backward(dy), t.grad, dtype, "input gradient")


def test_adaptive_max_pool_ties_and_nan_route_like_torch():
    x = np.round(_x((2, 3, 8, 8), seed=3))                 # many equal values: ties inside most bins
    x[1, 2] = 1.0                                          # one plane of equal values
    x[0, 0, 2, 3] = x[0, 1, 1, 1] = x[0, 1, 1, 5] = np.nan  # NaN wins (the last NaN in row-major order)
    for size in (3, (2, 5), (9, 11), (3, 8), (4, 2), (2, 8), 1):    # the last three divide: MaxPool2d's kernel
        layer = mg.nn.AdaptiveMaxPool2d(size, return_indices=True)
        y, indices = layer(x)
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        y_ref, indices_ref = TF.adaptive_max_pool2d(t, size, return_indices=True)
        np.testing.assert_array_equal(indices, indices_ref.numpy())
        np.testing.assert_array_equal(y, y_ref.detach().numpy())
        dy = _x(y.shape, seed=4)
        y_ref.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(layer.backward(dy), t.grad.numpy(), rtol=1e-15, atol=0)


def test_adaptive_max_pool_overlapping_bins_add_their_gradients():
    """7 -> 3 bins [0, 3), [2, 5), [4, 7) share rows 2 and 4: a maximum there gets both bins' gradient."""
    x = np.zeros((1, 1, 7, 1))
    x[0, 0, 2, 0] = 5.0
    layer = mg.nn.AdaptiveMaxPool2d((3, 1))
    assert layer(x).ravel().tolist() == [5.0, 5.0, 0.0]
    grad = layer.backward(np.array([1.0, 10.0, 100.0]).reshape(1, 1, 3, 1))
    assert grad.ravel().tolist() == [0.0, 0.0, 11.0, 0.0, 100.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", LP_CASES, ids=str)
def test_lp_pool_matches_torch(case, dtype):
    p, k, s, ceil, hw, positive = case
    for shape in ((2, 3) + hw, (3,) + hw):
        x = _x(shape, dtype, positive=positive)
        layer = mg.nn.LPPool2d(p, k, s, ceil)
        y = layer(x)
        dy = _x(y.shape, dtype, seed=5)
        expected, (dx,) = torch_run(torch.nn.LPPool2d(p, k, s, ceil), [x], dy)
        assert_close(y, expected, dtype, "output")
        assert_close(layer.backward(dy), dx, dtype, "input gradient")


@pytest.mark.parametrize("p", [1, 2, 3, 3.5, 0.5, -1.0, float("inf")])
def test_lp_pool_where_the_window_sum_is_zero_like_torch(p):
    """torch: the output is 0 and relu passes no gradient there (the documented "gradient set to zero"), except
    that x^p's own derivative p x^(p-1) is inf at x = 0 for p < 1, which makes 0 * inf = NaN: the same here."""
    x = np.zeros((1, 2, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 2.0], [0.5, 3.0]]
    x[0, 1, :2, 2:] = [[1.0, 0.0], [0.5, 3.0]]              # a zero inside a non-zero window
    layer = mg.nn.LPPool2d(p, 2)
    y = layer(x)
    dy = _x(y.shape, seed=2)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    y_ref = TF.lp_pool2d(t, p, 2)
    y_ref.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, y_ref.detach().numpy(), rtol=1e-12, atol=0)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-12, atol=0)   # NaN where torch has NaN
    assert y[0, 0, 0, 0] == 0
    if p >= 1:                                   # the all-zero window: gradient 0, not NaN
        assert (dx[0, 0, :2, :2] == 0).all() and np.isfinite(dx).all()
    else:
        assert np.isnan(dx[0, 0, :2, :2]).all()


def test_lp_pool_negative_input_with_non_integer_p_is_nan_like_torch():
    x = -np.ones((1, 1, 2, 2))
    assert np.isnan(mg.nn.LPPool2d(2.5, 2)(x)).all()
    assert np.isnan(TF.lp_pool2d(torch.from_numpy(x), 2.5, 2).numpy()).all()
    np.testing.assert_allclose(mg.nn.LPPool2d(1, 2)(x), [[[[-4.0]]]])   # p = 1 keeps the sign, as PyTorch


@pytest.mark.parametrize("name,make,args,kwargs", [
    ("adaptive_max_pool2d", lambda: _x((2, 3, 7, 8)), ((3, None),), {}),
    ("adaptive_max_pool2d", lambda: _x((3, 7, 8)), (4,), {"return_indices": True}),
    ("lp_pool2d", lambda: _x((2, 3, 7, 8)), (2, 3), {"stride": 2, "ceil_mode": True}),
    ("lp_pool2d", lambda: _x((2, 3, 7, 8), positive=True), (3.5, (2, 3)), {}),
], ids=["amp", "amp_indices", "lp", "lp_3.5"])
def test_functional_forms_match_torch_and_the_layers(name, make, args, kwargs):
    x = make()
    ours = getattr(F, name)(x, *args, **kwargs)
    ref = getattr(TF, name)(torch.from_numpy(x.copy()), *args, **kwargs)
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), ref if isinstance(ref, tuple) else (ref,)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-12, atol=0)
    layer = mg.nn.AdaptiveMaxPool2d(*args, **kwargs) if name.startswith("adaptive") else mg.nn.LPPool2d(*args, **kwargs)
    first = ours[0] if isinstance(ours, tuple) else ours
    out = layer(x)
    np.testing.assert_array_equal(first, out[0] if isinstance(out, tuple) else out)


@pytest.mark.parametrize("make,positive", [
    (lambda: mg.nn.AdaptiveMaxPool2d((3, 2)), False), (lambda: mg.nn.AdaptiveMaxPool2d(5), False),
    (lambda: mg.nn.LPPool2d(2, 2, 1), False), (lambda: mg.nn.LPPool2d(3.5, (2, 3), 1, True), True),
    (lambda: mg.nn.LPPool2d(1, 3, 2, True), False), (lambda: mg.nn.LPPool2d(float("inf"), 2), False)],
    ids=["amp", "amp_up", "lp2", "lp3.5_ceil", "lp1_ceil", "lp_inf"])
def test_finite_differences(make, positive):
    x = _x((2, 2, 5, 6), seed=7, positive=positive)            # continuous values: no ties, away from 0
    assert mg.gradcheck(make(), x)


@pytest.mark.parametrize("make", [lambda: mg.nn.AdaptiveMaxPool2d((3, 4)), lambda: mg.nn.AdaptiveMaxPool2d((9, 5)),
                                  lambda: mg.nn.LPPool2d(2, 3, 2), lambda: mg.nn.LPPool2d(float("inf"), 2)],
                         ids=["amp", "amp_up", "lp", "lp_inf"])
def test_strict_backend(make):
    x = _x((2, 3, 7, 8), "float32")
    strict_run(make(), [x], np.ones_like(make()(x)))


def test_each_backend_keeps_the_dtype(backend, xp):
    for dtype in ("float32", "float64"):
        x = xp.asarray(_x((2, 3, 7, 8), dtype, positive=True))
        for layer in (mg.nn.AdaptiveMaxPool2d((3, None)), mg.nn.LPPool2d(3.5, 2, ceil_mode=True),
                      mg.nn.LPPool2d(float("-inf"), 3)):
            y = layer(x)
            assert mg.backend.backend_of(y) == backend and y.dtype == np.dtype(dtype)
            dx = layer.backward(xp.ones_like(y))
            assert mg.backend.backend_of(dx) == backend and dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        host = _x((2, 3, 7, 8))
        layer = mg.nn.AdaptiveMaxPool2d((4, 3), return_indices=True)
        y, indices = layer(xp.asarray(host))
        reference = mg.nn.AdaptiveMaxPool2d((4, 3), return_indices=True)(host)
        np.testing.assert_array_equal(mg.backend.to_backend(indices, "numpy"), reference[1])


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="LPPool2d: norm_type must be a non-zero value"):
        mg.nn.LPPool2d(0, 2)
    with pytest.raises(TypeError, match="LPPool2d: norm_type must be a real number"):
        mg.nn.LPPool2d("2", 2)
    with pytest.raises(ValueError, match="lp_pool2d: norm_type must be a non-zero value"):
        F.lp_pool2d(_x((1, 1, 4, 4)), 0, 2)
    with pytest.raises(ValueError, match="AdaptiveMaxPool2d: output_size must be positive"):
        mg.nn.AdaptiveMaxPool2d(0)
    with pytest.raises(ValueError, match=r"AdaptiveMaxPool2d: expected 3-D or 4-D input"):
        mg.nn.AdaptiveMaxPool2d(2)(_x((7, 8)))
    with pytest.raises(ValueError, match="AdaptiveMaxPool2d: expected non-empty spatial dimensions"):
        mg.nn.AdaptiveMaxPool2d(2)(np.zeros((1, 2, 0, 3)))
    with pytest.raises(TypeError, match=r"LPPool2d: expected a floating-point input.*int64"):
        mg.nn.LPPool2d(2, 2)(np.ones((1, 1, 4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"LPPool2d: input of shape \(1, 1, 2, 2\) is too small for kernel_size"):
        mg.nn.LPPool2d(2, 3)(_x((1, 1, 2, 2)))
    for layer in (mg.nn.AdaptiveMaxPool2d(3), mg.nn.LPPool2d(2, 2), mg.nn.LPPool2d(float("inf"), 2)):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.ones((1, 1, 3, 3)))
        layer(_x((1, 2, 6, 6)))
        name = type(layer).__name__
        with pytest.raises(ValueError, match=rf"{name}: expected grad_out of shape \(1, 2, 3, 3\).*got \(2, 3, 3\)"):
            layer.backward(np.ones((2, 3, 3)))
        layer(_x((1, 2, 6, 6)))
        with pytest.raises(TypeError, match=rf"{name}: grad_out has dtype float32 but input has dtype float64"):
            layer.backward(np.ones((1, 2, 3, 3), dtype=np.float32))


def test_repr_and_no_state():
    assert repr(mg.nn.AdaptiveMaxPool2d((None, 3))) == "AdaptiveMaxPool2d(output_size=(None, 3))"
    assert repr(mg.nn.LPPool2d(2, 3, 2, True)) == \
        "LPPool2d(norm_type=2, kernel_size=(3, 3), stride=(2, 2), ceil_mode=True)"
    assert mg.nn.LPPool2d(2, 3).state_dict() == {} and mg.nn.AdaptiveMaxPool2d(2).parameters() == []
