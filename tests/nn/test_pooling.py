"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d vs PyTorch: forward and input gradients in float64 and
float32 over stride > kernel, padding, ceil_mode, dilation and non-square configs; tie routing;
finite differences; the strict backend; error messages."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.functional.pool import adaptive_bins, pool_out_size
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")

# kernel_size, stride, padding, dilation, ceil_mode, (H, W)
MAX_CASES = [
    (2, None, 0, 1, False, (6, 8)),
    (3, 2, 1, 1, False, (7, 7)),
    ((3, 2), (2, 3), (1, 0), 1, True, (7, 8)),
    (2, 3, 0, 1, True, (8, 7)),                 # stride > kernel
    (3, 1, 1, 2, False, (6, 7)),                # dilation
    ((2, 3), 2, (1, 1), (2, 1), True, (7, 9)),  # non-square, dilation, ceil
    (3, 2, 0, 1, True, (6, 6)),                 # ceil mode: last window must start inside the input
    (3, 3, 1, 1, True, (5, 7)),                 # ceil mode with left padding
    ((1, 4), (1, 2), (0, 2), 1, True, (3, 9)),
]
# kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, (H, W)
AVG_CASES = [
    (2, None, 0, False, True, None, (6, 8)),
    (3, 2, 1, False, True, None, (7, 7)),
    (3, 2, 1, False, False, None, (7, 7)),
    ((3, 2), (2, 3), (1, 1), True, True, None, (7, 8)),
    ((3, 2), (2, 3), (1, 1), True, False, None, (7, 8)),
    (2, 3, 0, True, True, None, (8, 7)),       # stride > kernel
    (3, 2, 1, True, False, None, (6, 6)),
    (3, 3, 1, True, True, None, (5, 7)),
    (3, 2, 1, True, True, 5, (6, 6)),          # divisor_override
]
ADAPTIVE_CASES = [(1, (7, 10)), ((2, 3), (7, 10)), ((3, 5), (7, 10)), ((None, 3), (5, 7)), (4, (4, 4)),
                  (5, (7, 6)), ((2, 2), (6, 8)), ((4, 3), (3, 2))]


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _compare(ours, reference, x, dtype):
    y = ours(x)
    dy = _x(y.shape, dtype, seed=5)
    expected, (dx,) = torch_run(reference, [x], dy)
    assert_close(y, expected, dtype, "output")
    assert_close(ours.backward(dy), dx, dtype, "input gradient")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", MAX_CASES, ids=str)
def test_max_pool_matches_torch(case, dtype):
    k, s, p, d, ceil, hw = case
    ours = mg.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    ref = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    _compare(ours, ref, _x((2, 3) + hw, dtype), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", AVG_CASES, ids=str)
def test_avg_pool_matches_torch(case, dtype):
    k, s, p, ceil, include, override, hw = case
    ours = mg.nn.AvgPool2d(k, s, p, ceil, include, override)
    ref = torch.nn.AvgPool2d(k, s, p, ceil, include, override)
    _compare(ours, ref, _x((2, 3) + hw, dtype), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=str)
def test_adaptive_avg_pool_matches_torch(case, dtype):
    out, hw = case
    _compare(mg.nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), _x((2, 3) + hw, dtype), dtype)


def test_output_size_rule_matches_torch_over_a_grid():
    for size in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 5):
                for p in range(0, k // 2 + 1):
                    for d in (1, 2):
                        for ceil in (False, True):
                            ours = pool_out_size(size, k, s, p, d, ceil)
                            if ours < 1:
                                continue
                            ref = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, 1), (k, 1), (s, 1),
                                                                 (p, 0), (d, 1), ceil_mode=ceil)
                            assert ref.shape[2] == ours, (size, k, s, p, d, ceil)


def test_adaptive_bins_match_torch_rule():
    assert adaptive_bins(10, 3) == [(0, 4), (3, 7), (6, 10)]
    assert adaptive_bins(7, 7) == [(i, i + 1) for i in range(7)]


@pytest.mark.parametrize("ceil", [False, True])
def test_max_pool_ties_route_like_torch(ceil):
    x = np.random.default_rng(1).integers(0, 3, (2, 2, 7, 8)).astype("float64")
    x[0, 0] = 1.0  # a plane of equal values
    ours, ref = mg.nn.MaxPool2d(3, 2, 1, ceil_mode=ceil), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=ceil)
    _compare(ours, ref, x, "float64")
    overlapping = mg.nn.MaxPool2d((2, 3), 1)
    _compare(overlapping, torch.nn.MaxPool2d((2, 3), 1), x, "float64")


def test_max_pool_return_indices_match_torch():
    x = _x((2, 3, 7, 9), "float64")
    y, idx = mg.nn.MaxPool2d((2, 3), 2, (1, 1), (2, 1), return_indices=True, ceil_mode=True)(x)
    yt, idxt = torch.nn.MaxPool2d((2, 3), 2, (1, 1), (2, 1), return_indices=True, ceil_mode=True)(torch.tensor(x))
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, idxt.numpy())
    assert idx.dtype == np.int64


def test_max_pool_propagates_nan_like_torch():
    x = _x((1, 1, 4, 4), "float64")
    x[0, 0, 1, 1] = np.nan
    y = mg.nn.MaxPool2d(2)(x)
    np.testing.assert_array_equal(y, torch.nn.MaxPool2d(2)(torch.tensor(x)).numpy())


def test_unbatched_input():
    x = _x((3, 7, 8), "float64")
    for ours, ref in [(mg.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1)),
                      (mg.nn.AvgPool2d(3, 2, 1), torch.nn.AvgPool2d(3, 2, 1)),
                      (mg.nn.AdaptiveAvgPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d((2, 3)))]:
        _compare(ours, ref, x, "float64")


def test_global_average_pool_is_the_mean():
    x = _x((2, 4, 5, 3), "float32")
    pool = mg.nn.AdaptiveAvgPool2d(1)
    np.testing.assert_allclose(pool(x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-6)
    dx = pool.backward(np.ones((2, 4, 1, 1), "float32"))
    assert dx.flags.writeable and dx.dtype == np.float32
    np.testing.assert_allclose(dx, np.full(x.shape, 1 / 15), rtol=1e-6)


FD_LAYERS = [
    lambda: mg.nn.MaxPool2d((3, 2), (2, 1), (1, 1), (1, 2), ceil_mode=True),
    lambda: mg.nn.MaxPool2d(2, 3, ceil_mode=True),
    lambda: mg.nn.AvgPool2d((3, 2), (2, 3), (1, 1), ceil_mode=True, count_include_pad=False),
    lambda: mg.nn.AvgPool2d(3, 2, 1, ceil_mode=True, divisor_override=4),
    lambda: mg.nn.AdaptiveAvgPool2d((2, 3)),
    lambda: mg.nn.AdaptiveAvgPool2d(1),
]


@pytest.mark.parametrize("make", FD_LAYERS)
def test_pool_finite_differences(make):
    # random inputs (no ties), so the max is differentiable
    assert mg.gradcheck(make(), _x((2, 2, 6, 7), "float64", seed=9))


@pytest.mark.parametrize("make", FD_LAYERS)
def test_pool_strict_backend(make):
    layer = make()
    x = _x((2, 2, 6, 7), "float32")
    y = layer(x)
    strict_run(layer, [x], np.ones(y.shape, "float32"))


def test_pool_on_each_backend(backend, xp):
    x = xp.asarray(_x((2, 2, 6, 7), "float32"))
    for make in FD_LAYERS:
        layer = make()
        y = layer(x)
        dx = layer.backward(xp.ones_like(y))
        assert mg.backend.backend_of(dx) == backend and dx.dtype == np.float32 and dx.shape == x.shape


def test_pool_errors():
    with pytest.raises(ValueError, match=r"MaxPool2d: expected 3-D or 4-D input \(N, C, H, W\).*2-D"):
        mg.nn.MaxPool2d(2)(np.ones((4, 4)))
    with pytest.raises(TypeError, match="AvgPool2d: expected a floating-point input.*int64"):
        mg.nn.AvgPool2d(2)(np.ones((1, 1, 4, 4), "int64"))
    with pytest.raises(ValueError, match="padding should be at most half of the kernel size"):
        mg.nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match=r"too small for kernel_size \(5, 5\)"):
        mg.nn.MaxPool2d(5)(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        mg.nn.AvgPool2d(0)
    with pytest.raises(ValueError, match="divisor_override must be a non-zero int"):
        mg.nn.AvgPool2d(2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size must be positive"):
        mg.nn.AdaptiveAvgPool2d(0)
    pool = mg.nn.MaxPool2d(2)
    pool(np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"MaxPool2d: expected grad_out of shape \(1, 1, 2, 2\)"):
        pool.backward(np.ones((1, 1, 4, 4)))
