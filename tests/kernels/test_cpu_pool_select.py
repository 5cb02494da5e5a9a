"""kernels/cpu_elementwise.select and kernels/cpu_pool against the plain NumPy formulas."""
import numpy as np
import pytest

from minigrad.functional import pool as P
from minigrad.kernels import cpu_pool, pool_reference
from minigrad.kernels.cpu_elementwise import select


@pytest.fixture(autouse=True)
def _numpy_passes(conv_algorithm):
    """These test cpu_pool itself: the NumPy passes, even where Numba is installed (tests/kernels/test_compiled.py
    tests the compiled loops against these and PyTorch)."""
    conv_algorithm("numpy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_select_is_exactly_where(dtype):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((5, 6, 7)).astype(dtype)
    values.flat[::7] = np.nan
    values.flat[1::11] = np.inf
    values.flat[2::13] = -np.inf
    values.flat[3::5] = -0.0
    mask = rng.random(values.shape) > 0.4
    expected = np.where(mask, values, 0.0)
    ours = select(mask, values)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours.view(f"u{ours.itemsize}"), expected.view(f"u{ours.itemsize}"))  # every bit
    strided = values[:, ::2, 1:]
    np.testing.assert_array_equal(select(mask[:, ::2, 1:].copy(), strided), np.where(mask[:, ::2, 1:], strided, 0.0))


def test_select_falls_back_for_other_types():
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(select(mask, np.array([1, 2, 3], dtype=np.float16)), [1, 0, 3])


def _geom(shape, k, s, p, d=1, ceil=False):
    return P.make_pool_geometry(shape, (k, k), (s, s), (p, p), (d, d), ceil, "MaxPool2d")


@pytest.mark.parametrize("block_bytes", [1, 1000, 1 << 20])              # one plane, a few, all at once
@pytest.mark.parametrize("k,s,p,d", [(2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 1), (2, 3, 0, 1), (3, 2, 1, 2),
                                     (2, 1, 1, 1), (2, 2, 1, 1)])       # 2 x 2: the pairwise kernel
@pytest.mark.parametrize("zeros", [False, True], ids=["integers", "signed-zeros"])
def test_fast_max_pool_matches_reference(monkeypatch, k, s, p, d, block_bytes, zeros):
    monkeypatch.setattr(cpu_pool, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (3, 2, 9, 8)).astype(np.float64)      # many ties
    if zeros:                                                     # 0.0 and -0.0 tie; the first one wins
        x = np.where(x > 0, x, np.where(rng.random(x.shape) < 0.5, -0.0, 0.0))
    geom = _geom(x.shape, k, s, p, d)
    y, argmax = P.max_pool2d_forward(x, geom)
    dy = rng.standard_normal(y.shape)
    dx = P.max_pool2d_backward(dy, argmax, x.shape, geom)
    monkeypatch.setattr(cpu_pool, "supported", lambda *arrays: False)  # the reference loop
    y_ref, argmax_ref = P.max_pool2d_forward(x, geom)
    dx_ref = P.max_pool2d_backward(dy, argmax_ref, x.shape, geom)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(dx, dx_ref)


def test_nan_window_takes_the_reference_path():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 0] = np.nan
    x[0, 0, 1, 1] = np.nan
    geom = _geom(x.shape, 2, 2, 0)
    y_ref, argmax_ref = pool_reference.max_forward(x, geom)
    y, argmax = cpu_pool.max_forward(x, geom)                         # hands the NaN batch to the reference
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    y, argmax = P.max_pool2d_forward(x, geom)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 3        # the last NaN, like PyTorch (CPU)


@pytest.mark.parametrize("shape,k", [((3, 2, 8, 8), 2), ((2, 3, 9, 6), 3), ((2, 2, 6, 8), 2)])
def test_windows_that_tile_the_input_write_the_gradient_without_a_fill(monkeypatch, shape, k):
    """MaxPool2d(k) on sizes divisible by k: the tiled backward equals the reference (ties: first maximum)."""
    rng = np.random.default_rng(2)
    x = rng.integers(-2, 3, shape).astype(np.float64)                 # many ties
    geom = _geom(x.shape, k, k, 0)
    assert cpu_pool._tiles_input(geom)
    y, argmax = P.max_pool2d_forward(x, geom)
    dy = rng.standard_normal(y.shape)
    dx = P.max_pool2d_backward(dy, argmax, x.shape, geom)
    dx_ref = pool_reference.max_backward(dy, argmax, x.shape, geom)
    np.testing.assert_array_equal(dx, dx_ref)
    assert not cpu_pool._tiles_input(_geom((3, 2, 9, 8), 2, 2, 0))   # 9 rows: the last one is in no window
