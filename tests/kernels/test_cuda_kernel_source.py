"""Every CUDA kernel body in minigrad/kernels/cuda.py, checked on the CPU.

No GPU is needed: the exact source strings of ``KERNELS`` are compiled as host C++ (g++, in
double precision) inside the loop CuPy would run (one iteration per output element ``i``),
called through ctypes on NumPy arrays and compared with minigrad's NumPy implementations.
On a GPU machine the backend-parity tests run the real kernels.
"""
import ctypes

import numpy as np
import pytest

import minigrad as mg
from minigrad.functional import pool as P
from minigrad.kernels.cuda import KERNELS, REDUCTIONS
from minigrad.kernels.im2col import col2im, conv_out_size, im2col

from support import cuda_host
from support.grads import set_grad

# Non-raw input parameters that are arrays (the rest are scalars); outputs are always arrays.
ARRAY_INPUTS = {"sgd_momentum": {"grad"}, "adam": {"grad"}, "softmax_xent_forward": {"lse"}}
C_VALUE = {"T": ctypes.c_double, **{name: c for name, (_, c) in cuda_host.C_TYPES.items()}}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if not cuda_host.compiler_available():
        pytest.skip("g++ is not installed")
    source = "".join(cuda_host.host_function(f"k_{name}", *KERNELS[name], "double", ARRAY_INPUTS.get(name, ()))
                     for name in KERNELS)
    return cuda_host.build(source, str(tmp_path_factory.mktemp("kernels")))


@pytest.fixture(scope="module")
def reductions(tmp_path_factory):
    """REDUCTIONS as host C++ (double): reduce_<name>(inputs..., outputs..., rows, length, fault)."""
    if not cuda_host.compiler_available():
        pytest.skip("g++ is not installed")
    source = "".join(cuda_host.host_reduction(f"reduce_{name}", *REDUCTIONS[name], "double") for name in REDUCTIONS)
    return cuda_host.build(source, str(tmp_path_factory.mktemp("reductions")))


def reduce_rows(reductions, name, x):
    """Reduction ``name`` over the last axis of a 2-D float64 array -> its first output, (rows,)."""
    outputs = [np.empty(x.shape[0]) for _ in cuda_host.params(REDUCTIONS[name][1])]
    fault = ctypes.c_int(0)
    getattr(reductions, f"reduce_{name}")(np.ascontiguousarray(x).ctypes.data_as(ctypes.c_void_p),
                                          *(o.ctypes.data_as(ctypes.c_void_p) for o in outputs),
                                          ctypes.c_longlong(x.shape[0]), ctypes.c_longlong(x.shape[1]),
                                          ctypes.byref(fault))
    finite = ~np.isnan(x).any(axis=1)
    if len(outputs) > 1:     # softmax_xent_lse's second output: the row max (rows without NaN)
        np.testing.assert_array_equal(outputs[1][finite], x.max(axis=1)[finite])
    return outputs[0]


def run(lib, name, *args, count):
    """Call kernel `name`; numpy arrays go by pointer, Python numbers by value in the declared type.
    Fails (IndexError) if the kernel reads a raw array out of bounds."""
    in_spec, out_spec, _ = KERNELS[name]
    declared = cuda_host.params(in_spec) + cuda_host.params(out_spec)
    assert len(args) == len(declared), f"{name}: {len(args)} args for {len(declared)} params"
    cuda_host.call(getattr(lib, f"k_{name}"), in_spec, out_spec, args, lambda t, v: C_VALUE[t](v), count)


def test_every_kernel_compiles_and_is_covered(lib):
    tested = {"im2col", "col2im", "max_pool_forward", "max_pool_backward", "avg_pool_forward",
              "avg_pool_backward", "softmax_xent_forward", "softmax_xent_backward", "sgd_momentum", "adam"}
    assert set(KERNELS) == tested, "a kernel was added without a host test"
    for name in KERNELS:
        assert hasattr(lib, f"k_{name}")


CONV_CASES = [((2, 3, 7, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
              ((1, 2, 9, 11), (2, 4), (2, 3), (0, 1, 2, 0), (2, 1)),
              ((2, 1, 5, 5), (5, 5), (1, 1), (0, 0, 0, 0), (1, 1)),
              ((1, 2, 8, 7), (3, 2), (4, 5), (2, 2, 1, 1), (1, 3)),
              ((3, 2, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1))]


@pytest.mark.parametrize("shape,kernel,stride,pads,dilation", CONV_CASES)
def test_im2col_col2im(lib, shape, kernel, stride, pads, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    n, c, h, w = shape
    out_h = conv_out_size(h, kernel[0], stride[0], pads[0], pads[1], dilation[0])
    out_w = conv_out_size(w, kernel[1], stride[1], pads[2], pads[3], dilation[1])
    window = (h, w, out_h, out_w, *kernel, *stride, pads[0], pads[2], *dilation)
    expected = im2col(x, kernel, stride, pads, dilation)
    cols = np.empty_like(expected)
    run(lib, "im2col", x, *window, cols, count=cols.size)
    np.testing.assert_array_equal(cols, expected)
    dcols = rng.standard_normal(expected.shape)
    image = np.empty(shape)
    run(lib, "col2im", dcols, *window, image, count=image.size)
    np.testing.assert_allclose(image, col2im(dcols, (h, w), stride, pads, dilation), rtol=1e-13, atol=1e-13)


POOL_CASES = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
              ((1, 2, 9, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),
              ((2, 1, 10, 9), (3, 2), (1, 3), (1, 1), (2, 1), False),
              ((1, 1, 5, 6), (4, 4), (3, 3), (2, 2), (1, 1), True)]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil_mode", POOL_CASES)
def test_max_pool(lib, shape, kernel, stride, padding, dilation, ceil_mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    geom = P.make_pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode, "test")
    expected_y, expected_argmax = P.max_pool2d_forward(x, geom)
    window = (*geom.in_size, *geom.out_size, *kernel, *stride, geom.pads[0], geom.pads[2], *dilation)
    y = np.empty(expected_y.shape)
    argmax = np.empty(expected_y.shape, np.int32)
    run(lib, "max_pool_forward", x, *window, y, argmax, count=y.size)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(argmax, expected_argmax)
    dy = rng.standard_normal(y.shape)
    dx = np.empty(shape)
    run(lib, "max_pool_backward", dy, argmax, *window, dx, count=dx.size)
    np.testing.assert_allclose(dx, P.max_pool2d_backward(dy, expected_argmax, shape, geom), rtol=1e-13, atol=1e-13)


def test_max_pool_nan_wins(lib):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    geom = P.make_pool_geometry(x.shape, (2, 2), (2, 2), (0, 0), (1, 1), False, "test")
    window = (4, 4, 2, 2, 2, 2, 2, 2, 0, 0, 1, 1)
    y, argmax = np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), np.int32)
    run(lib, "max_pool_forward", x, *window, y, argmax, count=4)
    expected, _ = P.max_pool2d_forward(x, geom)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert argmax[0, 0, 0, 0] == 1


AVG_CASES = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False, True, None),
             ((1, 2, 9, 7), (3, 3), (2, 2), (1, 1), True, True, None),
             ((1, 2, 9, 7), (3, 3), (2, 2), (1, 1), True, False, None),
             ((2, 1, 7, 10), (3, 2), (1, 3), (1, 1), False, False, None),
             ((1, 1, 6, 6), (3, 3), (2, 2), (1, 0), False, True, 5)]


def _random_avg_cases(count, seed=11):
    """Random geometries (PyTorch's limits: padding at most half the kernel), odd sizes and ceil mode."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        shape = (1, 2, int(rng.integers(kernel[0], 13)), int(rng.integers(kernel[1], 13)))
        cases.append((shape, kernel, stride, padding, bool(rng.integers(2)), bool(rng.integers(2)), None))
    return cases


@pytest.mark.parametrize("shape,kernel,stride,padding,ceil_mode,include_pad,override",
                         AVG_CASES + _random_avg_cases(24))
def test_avg_pool(lib, shape, kernel, stride, padding, ceil_mode, include_pad, override):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    geom = P.make_pool_geometry(shape, kernel, stride, padding, (1, 1), ceil_mode, "test")
    divisor = P.avg_divisor(np, geom, include_pad, override, x.dtype)
    args = (*geom.in_size, *geom.out_size, *kernel, *stride, *padding, include_pad, float(override or 0))
    y = np.empty(x.shape[:2] + geom.out_size)
    run(lib, "avg_pool_forward", x, *args, y, count=y.size)
    np.testing.assert_allclose(y, P.avg_pool2d_forward(x, geom, divisor), rtol=1e-13, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    dx = np.empty(shape)
    run(lib, "avg_pool_backward", dy, *args, dx, count=dx.size)
    np.testing.assert_allclose(dx, P.avg_pool2d_backward(dy, shape, geom, divisor), rtol=1e-13, atol=1e-14)


def _logsumexp(logits):
    peak = logits.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))[:, 0]


@pytest.mark.parametrize("classes", [1, 5, 7, 8, 9, 1000])
def test_softmax_cross_entropy_logsumexp_reduction(reductions, classes):
    """The row log-sum-exp as the GPU folds it: lanes of strided partial states, then a tree."""
    rng = np.random.default_rng(classes)
    logits = rng.standard_normal((4, classes)) * 30       # large values: the rescaling must keep it finite
    if classes > 1:
        logits[1, 0] = -np.inf                            # an impossible class contributes exp(-inf) = 0
        logits[2, -1] = 700.0                             # exp(700 - 0) would overflow without the max
    np.testing.assert_allclose(reduce_rows(reductions, "softmax_xent_lse", logits), _logsumexp(logits),
                               rtol=1e-14)
    if classes > 2:                                       # masked classes in many lanes: -inf meets -inf
        logits[0, ::2] = -np.inf
        np.testing.assert_allclose(reduce_rows(reductions, "softmax_xent_lse", logits)[0],
                                   _logsumexp(logits[:1, 1::2])[0], rtol=1e-14)
    logits[3, classes // 2] = np.nan
    assert np.isnan(reduce_rows(reductions, "softmax_xent_lse", logits)[3])


def test_softmax_cross_entropy(lib, reductions):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 5)) * 30  # large values: the max shift must keep it finite
    target = np.array([0, 4, 2, -100, 1, 3], np.int64)
    lse = reduce_rows(reductions, "softmax_xent_lse", logits)
    expected_lse = _logsumexp(logits)
    np.testing.assert_allclose(lse, expected_lse, rtol=1e-14)
    loss = np.empty(6)
    run(lib, "softmax_xent_forward", logits, lse, target, 5, -100, loss, count=6)
    kept = target != -100
    expected_loss = np.where(kept, expected_lse - logits[np.arange(6), np.where(kept, target, 0)], 0.0)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-13)
    grad = np.empty_like(logits)
    scale = 1.0 / kept.sum()
    run(lib, "softmax_xent_backward", logits, lse, target, 5, -100, scale, grad, count=grad.size)
    softmax = np.exp(logits - expected_lse[:, None])
    onehot = np.zeros_like(logits)
    onehot[np.arange(6)[kept], target[kept]] = 1
    np.testing.assert_allclose(grad, scale * (softmax - onehot) * kept[:, None], rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_out_of_range_targets_read_nothing_out_of_bounds(lib):
    """Targets outside [0, C) give 0 (the loss layer reports them); the row is never indexed with them."""
    logits = np.ones((3, 5))
    target = np.array([5, -3, 2], np.int64)
    loss, lse = np.full(3, np.nan), np.full(3, 1 + np.log(5.0))
    run(lib, "softmax_xent_forward", logits, lse, target, 5, -100, loss, count=3)
    np.testing.assert_allclose(loss, [0.0, 0.0, np.log(5.0)], rtol=1e-14)
    grad = np.full_like(logits, np.nan)
    run(lib, "softmax_xent_backward", logits, lse, target, 5, -100, 1.0, grad, count=grad.size)
    np.testing.assert_array_equal(grad[:2], 0.0)
    np.testing.assert_allclose(grad[2], [0.2, 0.2, -0.8, 0.2, 0.2], rtol=1e-14)


@pytest.mark.parametrize("nesterov,wd,dampening,maximize", [(True, 5e-4, 0.0, False), (False, 0.0, 0.1, False),
                                                            (False, 1e-2, 0.0, True)])
def test_sgd_momentum_matches_optimizer(lib, nesterov, wd, dampening, maximize):
    rng = np.random.default_rng(4)
    param = mg.nn.Parameter(rng.standard_normal(50))
    opt = mg.optim.SGD([param], lr=0.1, momentum=0.9, dampening=dampening, weight_decay=wd, nesterov=nesterov,
                       maximize=maximize)
    ours, buf = param.data.copy(), np.empty(50)
    for step in range(4):
        grad = rng.standard_normal(50)
        set_grad(param, grad)
        opt.step()
        run(lib, "sgd_momentum", grad, 0.1, 0.9, dampening, wd, nesterov, maximize, step == 0, ours, buf, count=50)
        np.testing.assert_allclose(ours, param.data, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("cls,wd,maximize", [("Adam", 0.0, False), ("Adam", 1e-2, False), ("AdamW", 1e-2, False),
                                             ("AdamW", 0.1, True)])
def test_adam_matches_optimizer(lib, cls, wd, maximize):
    rng = np.random.default_rng(5)
    param = mg.nn.Parameter(rng.standard_normal(40))
    betas = (0.9, 0.999)
    opt = getattr(mg.optim, cls)([param], lr=1e-2, betas=betas, eps=1e-8, weight_decay=wd, maximize=maximize)
    ours, m, v = param.data.copy(), np.zeros(40), np.zeros(40)
    for step in range(1, 6):
        grad = rng.standard_normal(40)
        set_grad(param, grad)
        opt.step()
        bc1, bc2_sqrt = 1 - betas[0] ** step, (1 - betas[1] ** step) ** 0.5
        run(lib, "adam", grad, 1e-2, *betas, 1e-8, wd, bc1, bc2_sqrt, cls == "AdamW", maximize, ours, m, v, count=40)
        np.testing.assert_allclose(ours, param.data, rtol=1e-13, atol=1e-15)
