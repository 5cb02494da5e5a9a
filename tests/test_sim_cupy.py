"""The simulated CuPy (tests/support/sim_cupy.py) refuses what real CuPy refuses and runs the CUDA kernels.

These run on every machine, without installing the simulator as ``cupy``; the cupy cases of
the suite run on it with ``MINIGRAD_TEST_CUPY=sim`` (see docs/backends.md, "Testing the GPU path without a GPU").
"""
import numpy as np
import pytest

from support import cuda_host
from support import sim_cupy
from minigrad.kernels.cuda import KERNELS
from minigrad.kernels.im2col import col2im, im2col

cp = sim_cupy.make_module()


def test_device_arrays_refuse_implicit_host_conversion_and_host_operands():
    x = sim_cupy.asarray(np.arange(6, dtype="float32").reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    with pytest.raises(TypeError, match="Unsupported type"):
        x + np.ones(3, dtype="float32")
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(x, np.zeros((2, 3), dtype="float32"))
    with pytest.raises(TypeError, match="Unsupported type"):
        x[...] = np.zeros((2, 3), dtype="float32")


def test_device_results_stay_on_the_device():
    x = sim_cupy.asarray(np.arange(6, dtype="float32").reshape(2, 3))
    for result in (x + 1, np.float32(2) * x, np.exp(x), x.sum(), x[0], cp.concatenate([x, x]), x.T @ x):
        assert isinstance(result, sim_cupy.ndarray)
    assert x.sum().shape == () and float(x.sum()) == 15.0       # reductions give 0-d arrays, as in CuPy
    np.testing.assert_array_equal(x.get(), np.arange(6).reshape(2, 3))


def test_only_what_cupy_14_has():
    x = sim_cupy.asarray(np.zeros(3, dtype="float32"))
    assert not hasattr(cp, "errstate") and not hasattr(cp, "vecdot")   # NumPy has them, CuPy 14 does not
    assert not hasattr(x, "resize")
    assert callable(cp.zeros) and callable(x.astype)


@pytest.mark.skipif(not cuda_host.compiler_available(), reason="g++ is not installed")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_kernel_runs_im2col_and_col2im(dtype):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6)).astype(dtype)
    kernel, stride, pads, dilation = (3, 2), (2, 1), (1, 0, 1, 1), (1, 2)
    expected = im2col(x, kernel, stride, pads, dilation)
    out_h, out_w = expected.shape[-2:]
    window = (7, 6, out_h, out_w, *kernel, *stride, pads[0], pads[2], *dilation)
    cols = sim_cupy.ndarray(expected.shape, dtype=dtype)
    sim_cupy.ElementwiseKernel(*KERNELS["im2col"])(sim_cupy.asarray(x), *window, cols)
    np.testing.assert_array_equal(cols.get(), expected)
    image = sim_cupy.ndarray(x.shape, dtype=dtype)
    sim_cupy.ElementwiseKernel(*KERNELS["col2im"])(cols, *window, image)
    np.testing.assert_allclose(image.get(), col2im(expected, (7, 6), stride, pads, dilation), rtol=1e-6)


@pytest.mark.skipif(not cuda_host.compiler_available(), reason="g++ is not installed")
def test_elementwise_kernel_checks_arguments_like_cupy():
    grad = sim_cupy.asarray(np.ones(4, dtype="float32"))
    param = sim_cupy.asarray(np.ones(4, dtype="float64"))
    buf = sim_cupy.asarray(np.zeros(4, dtype="float64"))
    sgd = sim_cupy.ElementwiseKernel(*KERNELS["sgd_momentum"])
    with pytest.raises(TypeError, match="Type is mismatched"):
        sgd(grad, 0.1, 0.9, 0.0, 0.0, False, False, True, param, buf)
    with pytest.raises(TypeError, match="wrong number of arguments"):
        sgd(grad, 0.1, param, buf)
    with pytest.raises(TypeError, match="NumPy"):
        sgd(np.ones(4), 0.1, 0.9, 0.0, 0.0, False, False, True, param, buf)
    grad64 = sim_cupy.asarray(np.ones(4))
    sgd(grad64, 0.1, 0.9, 0.0, 0.0, False, False, True, param, buf)
    np.testing.assert_allclose(param.get(), 0.9)      # param - lr * grad on the first step
    np.testing.assert_allclose(buf.get(), 1.0)


@pytest.mark.skipif(not cuda_host.compiler_available(), reason="g++ is not installed")
def test_elementwise_kernel_allocates_omitted_outputs_like_cupy():
    square = sim_cupy.ElementwiseKernel("T x, T k", "T y", "y = k * x * x", "square")
    x = sim_cupy.asarray(np.arange(4, dtype="float32"))
    y = square(x, 2.0)
    assert isinstance(y, sim_cupy.ndarray) and y.dtype == np.float32 and y.shape == (4,)
    np.testing.assert_array_equal(y.get(), [0, 2, 8, 18])


def test_host_reads_are_counted():
    x = sim_cupy.asarray(np.arange(6, dtype="float32"))
    before = sim_cupy.host_reads
    y = x * 2 + 1                                      # device work: no read
    assert sim_cupy.host_reads == before
    float(y.sum())
    y.get()
    y[y > 3]                                           # boolean mask: the size is read back
    cp.nonzero(y > 3)
    assert sim_cupy.host_reads == before + 4


def test_stricter_where_cupy_is_stricter():
    x = sim_cupy.asarray(np.arange(3, dtype="float32"))
    with pytest.raises(TypeError, match="Unsupported type"):
        x + [1, 2, 3]                                   # CuPy ufuncs take arrays and scalars only
    v = x[0]                                            # a 0-d view, as in CuPy
    v += 10
    assert float(x[0]) == 10.0
    assert isinstance(cp.allclose(x, x), sim_cupy.ndarray)


@pytest.mark.skipif(not cuda_host.compiler_available(), reason="g++ is not installed")
def test_out_of_bounds_reads_of_raw_arrays_are_caught():
    shift = sim_cupy.ElementwiseKernel("raw T x", "T y", "y = x[i + 1]", "shift")
    x = sim_cupy.asarray(np.arange(4, dtype="float32"))
    with pytest.raises(sim_cupy.SimulatedDeviceError, match="out of bounds"):
        shift(x, sim_cupy.ndarray((4,), dtype="float32"))
    y = sim_cupy.ndarray((3,), dtype="float32")
    shift(x, y)                                         # i + 1 < 4: in bounds
    np.testing.assert_array_equal(y.get(), [1, 2, 3])
