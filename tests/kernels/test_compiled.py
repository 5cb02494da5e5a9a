"""The compiled kernels (kernels/compiled.py, Numba): ReLU and max pooling against PyTorch, against NumPy's passes,
on 1-3 threads, and the setting that picks them. The cases that need Numba skip without it; CI installs the
`compiled` extra and runs this file, the pooling/activation tests and the parity tests again with it."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.functional import activation as A
from minigrad.functional import pool as P
from minigrad.kernels import compiled, compiled_pool, cpu_pool, dispatch

torch = pytest.importorskip("torch")
needs_numba = pytest.mark.skipif(not compiled.available(), reason="Numba is not installed (the compiled extra)")


def _bits(a):
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


def _special(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = np.nan
    x.flat[1::11] = np.inf
    x.flat[2::13] = -np.inf
    x.flat[3::5] = -0.0
    x.flat[4::9] = 0.0
    return x


def _relu_both(x, dy):
    y, positive = A.relu_forward(x)
    return y, positive, A.relu_backward(positive, dy)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (5,), (3, 4, 5), (2, 3, 40, 41)])
def test_relu_matches_numpy_passes_and_torch(conv_algorithm, monkeypatch, dtype, shape):
    monkeypatch.setattr(compiled, "BLOCK_ELEMENTS", 1000)          # the biggest shape runs in 10 blocks
    rng = np.random.default_rng(0)
    x, dy = _special(rng, shape, dtype), _special(rng, shape, dtype)
    conv_algorithm("compiled")
    y, positive, dx = _relu_both(x, dy)
    conv_algorithm("numpy")
    y_np, positive_np, dx_np = _relu_both(x, dy)
    assert y.dtype == dx.dtype == dtype and positive.dtype == np.bool_
    np.testing.assert_array_equal(_bits(y), _bits(y_np))          # every bit, NaN, -0.0 -> +0.0 included
    np.testing.assert_array_equal(positive, positive_np)
    np.testing.assert_array_equal(_bits(dx), _bits(dx_np))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = torch.relu(tx)
    ty.backward(torch.from_numpy(dy.copy()))
    np.testing.assert_array_equal(y, ty.detach().numpy())         # equal values (torch keeps -0.0 as -0.0)
    np.testing.assert_array_equal(dx, tx.grad.numpy())


@needs_numba
def test_relu_takes_numpy_passes_for_what_the_loops_do_not_take(conv_algorithm):
    conv_algorithm("compiled")
    x = np.random.default_rng(1).standard_normal((6, 8))
    strided = x[:, ::2]
    assert compiled.relu_forward(strided) is None                  # not C-contiguous
    assert compiled.relu_forward(x.astype(np.float16)) is None
    y, positive = A.relu_forward(strided)
    np.testing.assert_array_equal(y, np.maximum(strided, 0))
    grad = A.relu_backward(positive, np.ones_like(strided)[:, ::1])
    np.testing.assert_array_equal(grad, positive.astype(np.float64))


def _pool_torch(x, dy, k, s, p, d, ceil):
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty, index = torch.nn.functional.max_pool2d(tx, k, s, p, d, ceil_mode=ceil, return_indices=True)
    ty.backward(torch.from_numpy(dy.copy()))
    return ty.detach().numpy(), index.numpy(), tx.grad.numpy()


GEOMETRIES = [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 1, False), (2, 3, 0, 1, False),
              (3, 2, 1, 2, False), (2, 1, 1, 1, False), (2, 2, 1, 1, False), (3, 2, 0, 1, True),
              (3, 3, 1, 1, True), (3, 3, 0, 1, False), ((2, 3), (1, 2), (1, 0), (2, 1), False)]


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("values", ["normal", "ties", "special"])
@pytest.mark.parametrize("shape", [(3, 4, 9, 8), (2, 3, 6, 12)], ids=["odd", "tiled"])   # 6 x 12: 2 x 2, 3 x 3 tile it
def test_max_pool_matches_torch_bit_for_bit(conv_algorithm, monkeypatch, dtype, geometry, values, shape):
    monkeypatch.setattr(compiled_pool, "BLOCK_BYTES", 700)         # a few planes per block
    k, s, p, d, ceil = geometry
    pair = lambda v: v if isinstance(v, tuple) else (v, v)
    rng = np.random.default_rng(2)
    if values == "normal":
        x = rng.standard_normal(shape).astype(dtype)
    elif values == "ties":
        x = rng.integers(-2, 3, shape).astype(dtype)
    else:
        x = _special(rng, shape, dtype)
        x[0, 0] = -np.inf                                          # a plane of -inf: the first position inside wins
    conv_algorithm("compiled")
    geom = P.make_pool_geometry(shape, pair(k), pair(s), pair(p), pair(d), ceil, "MaxPool2d")
    assert dispatch.pool_kernel("max", geom, x) is compiled_pool
    y, argmax = P.max_pool2d_forward(x, geom)
    dy = rng.standard_normal(y.shape).astype(dtype)
    if values == "special":
        dy.flat[::5] = -0.0                                        # torch adds it to a zero: +0.0 where it lands
    dx = P.max_pool2d_backward(dy, argmax, x.shape, geom)
    y_t, index_t, dx_t = _pool_torch(x, dy, k, s, p, d, ceil)
    np.testing.assert_array_equal(_bits(y), _bits(y_t))
    kw, (sh, sw), (dh, dw) = pair(k)[1], pair(s), pair(d)
    rows = np.arange(y.shape[2])[:, None] * sh - pair(p)[0] + (argmax // kw) * dh
    cols = np.arange(y.shape[3])[None, :] * sw - pair(p)[1] + (argmax % kw) * dw
    np.testing.assert_array_equal(rows * x.shape[3] + cols, index_t)   # the same input position as torch's index
    np.testing.assert_array_equal(_bits(dx), _bits(dx_t))              # the same additions in the same order
    if values != "special":                                            # NumPy's passes: the same maxima and offsets
        conv_algorithm("numpy")
        y_np, argmax_np = P.max_pool2d_forward(x, geom)
        np.testing.assert_array_equal(_bits(y), _bits(y_np))
        np.testing.assert_array_equal(argmax, argmax_np)
        tolerance = 1e-5 if dtype == np.float32 else 1e-13            # other order of additions: rounding only
        np.testing.assert_allclose(P.max_pool2d_backward(dy, argmax_np, x.shape, geom), dx, rtol=tolerance,
                                   atol=tolerance)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_on_one_to_three_threads(conv_algorithm, monkeypatch, dtype):
    monkeypatch.setattr(compiled_pool, "BLOCK_BYTES", 4000)
    monkeypatch.setattr(compiled, "BLOCK_ELEMENTS", 5000)
    conv_algorithm("compiled")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6, 16, 16)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    geom = P.make_pool_geometry(x.shape, (3, 3), (2, 2), (1, 1), (1, 1), False, "MaxPool2d")
    before = mg.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            mg.set_num_threads(threads)
            y, positive, dx = _relu_both(x, dy)
            py, argmax = P.max_pool2d_forward(y, geom)
            pdx = P.max_pool2d_backward(dy[:, :, :8, :8], argmax, x.shape, geom)
            results.append([_bits(a) for a in (y, dx, py, pdx)] + [positive, argmax])
    finally:
        mg.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@needs_numba
def test_layers_give_the_same_step_on_both_paths(conv_algorithm):
    """A LeNet-style block (conv, ReLU, 2 x 2 max pool) trained one step: the same gradients either way."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 1, 12, 12))
    grads = []
    for algorithm in ("compiled", "numpy"):
        conv_algorithm(algorithm)
        mg.manual_seed(0)
        model = mg.nn.Sequential(mg.nn.Conv2d(1, 4, 3, dtype=np.float64), mg.nn.ReLU(), mg.nn.MaxPool2d(2))
        y = model.forward(x)
        dx = model.backward(np.ones_like(y))
        grads.append([y, dx] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_the_setting_picks_the_kernels(conv_algorithm):
    x = np.zeros((1, 1, 4, 4))
    geom = P.make_pool_geometry(x.shape, (2, 2), (2, 2), (0, 0), (1, 1), False, "MaxPool2d")
    for algorithm in ("numpy", "reference"):
        conv_algorithm(algorithm)
        assert not compiled.active()
        assert dispatch.pool_kernel("max", geom, x) is cpu_pool
    conv_algorithm("auto")
    assert compiled.active() == compiled.available()
    assert dispatch.pool_kernel("max", geom, x) is (compiled_pool if compiled.available() else cpu_pool)


def test_compiled_without_numba_is_refused_naming_the_extra(conv_algorithm, monkeypatch):
    monkeypatch.setattr(compiled, "_loops", None)
    monkeypatch.setattr(compiled, "_failure", "Numba is not installed")
    with pytest.raises(ImportError, match=r"Numba is not installed.*\.\[compiled\]"):
        mg.set_conv_algorithm("compiled")
    conv_algorithm("auto")                                             # auto: NumPy's passes, silently
    assert not compiled.active()
    y, positive = A.relu_forward(np.array([-1.0, 2.0]))
    np.testing.assert_array_equal(y, [0.0, 2.0])


def test_environment_setting_names_the_choices(monkeypatch):
    from minigrad.runtime import settings
    monkeypatch.setenv("MINIGRAD_CONV", "numba")
    with pytest.raises(settings.SettingError, match="auto, reference, winograd, numpy, compiled"):
        settings.conv_algorithm()
    monkeypatch.setenv("MINIGRAD_CONV", "NumPy")
    assert settings.conv_algorithm() == "numpy"


@needs_numba
@pytest.mark.parametrize("keep", [True, False], ids=["columns-kept", "columns-recomputed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec", [dict(stride=2, padding=1), dict(stride=(2, 3), padding=(2, 0), dilation=(1, 2)),
                                  dict(stride=2, padding=1, groups=2), dict(stride=3, padding=2),
                                  dict(stride=1, padding=1), dict(channels=1, padding=2), dict(channels=3, padding=(1, 3)),
                                  dict(channels=2, dilation=2, padding=3), dict(channels=6, kernel=5, width=14),
                                  dict(channels=3, stride=2, padding=1), dict(channels=2, kernel=(3, 5), stride=(1, 2),
                                                                              padding=(2, 1), width=14)], ids=str)
def test_conv_by_compiled_columns_is_the_numpy_path(conv_algorithm, monkeypatch, dtype, spec, keep):
    """cpu_conv with the compiled im2col (straight from NCHW) and col2im (strided input gradients), and the
    few-channel kernels with their compiled folds (cpu_samplemajor: wide rows; cpu_batchlast: the rest): the columns
    are the same copy and the folds add in the NumPy order, so output and gradients are the same bit for bit, and
    PyTorch's to rounding."""
    from minigrad.kernels import cpu_batchlast, cpu_conv, cpu_runtime, cpu_samplemajor
    if not keep:
        monkeypatch.setattr(cpu_runtime, "SAVED_COLUMNS_MAX", 0)       # backward builds the columns again
        monkeypatch.setattr(cpu_samplemajor, "KEEP_COLUMNS_MAX", 0)
        monkeypatch.setattr(cpu_batchlast, "KEEP_COLUMNS_MAX", 0)
    spec = dict(spec)
    channels, kernel, width = spec.pop("channels", 16), spec.pop("kernel", 3), spec.pop("width", 17)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, channels, 11, width) if channels < 16 else (5, 16, 11, 13)).astype(dtype)
    layer = mg.nn.Conv2d(channels, 6, kernel, dtype=dtype, **spec)
    geom = layer._geometry(x)
    expected = cpu_conv if channels == 16 else cpu_samplemajor if geom.out_size[1] >= 16 and geom.stride == (1, 1) \
        else cpu_batchlast
    assert dispatch.cpu_kernel(geom) is expected
    dy = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    results = {}
    for algorithm in ("compiled", "numpy"):
        conv_algorithm(algorithm)
        layer.zero_grad()
        y = layer.forward(x)
        results[algorithm] = [y, layer.backward(dy), layer.weight.grad.copy(), layer.bias.grad.copy()]
    for a, b in zip(results["compiled"], results["numpy"]):
        np.testing.assert_array_equal(_bits(a), _bits(b))
    t_layer = torch.nn.Conv2d(channels, 6, kernel, dtype=torch.float64, **spec)
    with torch.no_grad():
        t_layer.weight.copy_(torch.from_numpy(layer.weight.data.astype(np.float64)))
        t_layer.bias.copy_(torch.from_numpy(layer.bias.data.astype(np.float64)))
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    t_y = t_layer(tx)
    t_y.backward(torch.from_numpy(dy.astype(np.float64)))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for ours, theirs in zip(results["compiled"][:3], (t_y.detach(), tx.grad, t_layer.weight.grad)):
        theirs = theirs.numpy()
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * np.abs(theirs).max())


def _depthwise_pair(rng, dtype, shape, kernel, padding, dilation):
    c = shape[1]
    layer = mg.nn.Conv2d(c, c, kernel, padding=padding, dilation=dilation, groups=c, dtype=dtype)
    t_layer = torch.nn.Conv2d(c, c, kernel, padding=padding, dilation=dilation, groups=c, dtype=torch.float64)
    with torch.no_grad():
        t_layer.weight.copy_(torch.from_numpy(layer.weight.data.astype(np.float64)))
        t_layer.bias.copy_(torch.from_numpy(layer.bias.data.astype(np.float64)))
    return layer, t_layer


def _depthwise_run(layer, t_layer, x, dy):
    layer.zero_grad()
    y = layer.forward(x)
    dx = layer.backward(dy)
    tx = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    t_y = t_layer(tx)
    t_layer.zero_grad()
    t_y.backward(torch.from_numpy(dy.astype(np.float64)))
    ours = [y, dx, layer.weight.grad, layer.bias.grad]
    theirs = [t_y.detach().numpy(), tx.grad.numpy(), t_layer.weight.grad.numpy(), t_layer.bias.grad.numpy()]
    return ours, theirs


DEPTHWISE = [((2, 3, 16, 14), 3, 1, 1), ((2, 4, 15, 20), 5, 2, 1), ((1, 3, 18, 16), 3, 2, 2), ((2, 2, 14, 20), (3, 5), 0, 1),
             ((2, 3, 16, 16), (1, 3), (0, 1), 1)]


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,padding,dilation", DEPTHWISE, ids=str)
def test_depthwise_matches_torch(conv_algorithm, monkeypatch, dtype, shape, kernel, padding, dilation):
    from minigrad.kernels import compiled_depthwise
    monkeypatch.setattr(compiled_depthwise, "BLOCK_BYTES", 2000)      # several blocks of planes
    conv_algorithm("compiled")
    rng = np.random.default_rng(6)
    layer, t_layer = _depthwise_pair(rng, dtype, shape, kernel, padding, dilation)
    x = rng.standard_normal(shape).astype(dtype)
    assert dispatch.conv_kernel(layer._geometry(x), x) is compiled_depthwise
    dy = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    tolerance = 2e-5 if dtype == np.float32 else 1e-12
    for ours, theirs in zip(*_depthwise_run(layer, t_layer, x, dy)):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance * np.abs(theirs).max())


@needs_numba
@pytest.mark.parametrize("where", ["x", "dy"])
def test_depthwise_keeps_inf_and_nan_where_torch_puts_them(conv_algorithm, where):
    """A non-finite input stays in its own windows (the zero border adds exact zeros); a non-finite dy hands the
    backward to cpu_depthwise, which skips the border: every non-finite number where PyTorch has one. (A non-finite
    weight also goes to cpu_depthwise, whose taps multiply the zero border by it, NaN in the border windows where
    PyTorch's depthwise kernel skips the border: a known difference of every minigrad path, reference included.)"""
    conv_algorithm("compiled")
    rng = np.random.default_rng(7)
    layer, t_layer = _depthwise_pair(rng, np.float64, (2, 3, 16, 16), 3, 1, 1)
    x = rng.standard_normal((2, 3, 16, 16))
    dy = rng.standard_normal((2, 3, 16, 16))
    if where == "x":
        x[0, 1, 0, 5], x[1, 2, 7, 15] = np.inf, np.nan
    else:
        dy[0, 0, 0, 0], dy[1, 1, 15, 3] = np.inf, -np.inf
    for ours, theirs in zip(*_depthwise_run(layer, t_layer, x, dy)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs))
        finite = np.isfinite(theirs)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-12, atol=1e-12)


@needs_numba
def test_depthwise_takes_the_compiled_loops_only_where_they_are_faster(conv_algorithm):
    from minigrad.kernels import compiled_depthwise, cpu_depthwise
    conv_algorithm("compiled")
    for shape, stride, expected in (((1, 8, 16, 16), 1, compiled_depthwise), ((1, 8, 32, 32), 2, cpu_depthwise),
                                    ((1, 8, 7, 7), 1, cpu_depthwise)):
        x = np.zeros(shape, np.float32)
        layer = mg.nn.Conv2d(8, 8, 3, stride=stride, padding=1, groups=8)
        assert dispatch.conv_kernel(layer._geometry(x), x) is expected


@needs_numba
def test_depthwise_same_bits_on_one_to_three_threads(conv_algorithm, monkeypatch):
    from minigrad.kernels import compiled_depthwise
    monkeypatch.setattr(compiled_depthwise, "BLOCK_BYTES", 3000)
    conv_algorithm("compiled")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 5, 16, 16)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    layer = mg.nn.Conv2d(5, 5, 3, padding=1, groups=5)
    before = mg.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            mg.set_num_threads(threads)
            layer.zero_grad()
            y = layer.forward(x)
            results.append([_bits(a) for a in (y, layer.backward(dy), layer.weight.grad, layer.bias.grad)])
    finally:
        mg.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_minigrad_info_says_whether_the_compiled_kernels_run(conv_algorithm):
    from minigrad.cli.info import _compiled_row, collect_info
    info = collect_info()
    assert info["compiled_kernels"] == compiled.active()
    assert _compiled_row(dict(info, numba=None)).startswith('off: Numba not installed (pip install -e ".[compiled]"')
    assert _compiled_row(dict(info, numba="0.68.1", compiled_kernels=True)).startswith("on (Numba 0.68.1")
    assert "'numpy'" in _compiled_row(dict(info, numba="0.68.1", compiled_kernels=False, conv_algorithm="numpy"))
    if compiled.available():
        conv_algorithm("numpy")
        assert collect_info()["compiled_kernels"] is False


@needs_numba
def test_stdout_on_a_terminal_gets_no_colour_codes():
    """With colorama installed, Numba's error colouring made colorama write a terminal reset to stdout at exit
    when stdout is a terminal (as mpirun's ranks' is): bytes around `minigrad train --json`'s JSON."""
    import os
    import pty
    import subprocess
    import sys
    code = ("import numpy as np, minigrad as mg; mg.set_conv_algorithm('compiled'); "
            "mg.nn.ReLU()(np.ones((300, 300), np.float32)); print('{}')")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                        # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert b"".join(chunks).replace(b"\r\n", b"\n") == b"{}\n"
