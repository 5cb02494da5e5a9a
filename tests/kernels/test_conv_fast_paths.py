"""Every fast CPU convolution path against PyTorch: chunked, row-blocked, threaded, 1x1, depthwise,
Winograd 3x3, batch-innermost for few channels, grouped, strided and dilated; float64 (rtol 1e-10) and float32 (rtol 1e-4).

The dispatch test pins which kernel each geometry takes, so a path cannot silently stop being
covered; small work budgets (kernels/cpu_runtime.BUDGET) force several chunks whose size does not
divide the batch, and row blocks inside one sample.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.functional.conv import conv2d_input, conv2d_weight, make_geometry
from minigrad.kernels import (cpu_batchlast, cpu_conv, cpu_depthwise, cpu_depthwise_rows, cpu_depthwise_taps,
                              cpu_pointwise, cpu_runtime, cpu_samplemajor, cpu_winograd, dispatch, reference_conv)

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}

# (batch, in, out, size (h, w), kernel, stride, padding, dilation, groups, expected kernel module)
# cpu_conv cases have kw * C > cpu_batchlast.MAX_RUN (32) input numbers per window row.
CASES = {
    "3x3": (5, 12, 6, (9, 8), 3, 1, 1, 1, 1, cpu_conv),
    "3x3-nopad": (3, 11, 5, (7, 7), 3, 1, 0, 1, 1, cpu_conv),
    "5x3-asym": (4, 11, 4, (9, 10), (5, 3), 1, (2, 0), 1, 1, cpu_conv),
    "stride2": (5, 12, 6, (9, 8), 3, 2, 1, 1, 1, cpu_conv),
    "stride(2,3)": (3, 12, 5, (11, 10), 3, (2, 3), (1, 2), 1, 1, cpu_conv),
    "dilation2": (3, 12, 4, (10, 9), 3, 1, 2, 2, 1, cpu_conv),
    "stride2-dil2": (3, 12, 4, (11, 10), 3, 2, 2, 2, 1, cpu_conv),          # odd input rows and columns: dx 0
    "stride3-dil2": (2, 12, 4, (13, 11), 3, 3, 1, 2, 1, cpu_conv),
    "k1x3-s2-pad": (3, 12, 5, (7, 8), (1, 3), 2, (1, 1), 1, 1, cpu_conv),
    "bigpad": (3, 11, 3, (6, 6), 3, 1, 3, 1, 1, cpu_conv),              # pads > kernel extent: scatter dx
    "valid5x5-wide": (3, 7, 16, (14, 14), 5, 1, 0, 1, 1, cpu_conv),     # dy's columns too big: scatter dx
    "grouped": (4, 6, 4, (8, 7), 3, 1, 1, 1, 2, cpu_conv),
    "grouped-s2": (5, 6, 9, (9, 9), (3, 2), 2, (1, 0), 1, 3, cpu_conv),
    "1x1": (5, 8, 6, (7, 6), 1, 1, 0, 1, 1, cpu_pointwise),
    "1x1-s2": (5, 8, 6, (7, 6), 1, 2, 0, 1, 1, cpu_pointwise),
    "1x1-padded": (3, 40, 5, (5, 5), 1, 1, 1, 1, 1, cpu_conv),
    "depthwise": (5, 6, 6, (9, 8), 3, 1, 1, 1, 6, cpu_depthwise),
    "depthwise-s2": (5, 6, 6, (9, 8), 3, 2, 1, 1, 6, cpu_depthwise),
    "depthwise-dil2": (3, 4, 4, (11, 9), 3, 1, 2, 2, 4, cpu_depthwise),
    "depthwise-5x5-asym": (3, 4, 4, (9, 9), 5, 1, (2, 0), 1, 4, cpu_depthwise),
    "depthwise-bigpad": (3, 4, 4, (6, 6), 3, (1, 2), 3, 1, 4, cpu_depthwise),
    "depthwise-4x4": (6, 5, 5, (4, 4), 3, 1, 1, 1, 5, cpu_depthwise),
    "depthwise-7x7-s2": (4, 3, 3, (7, 7), 3, 2, 1, 1, 3, cpu_depthwise),
    "depthwise-valid": (3, 4, 4, (16, 15), 3, 1, 0, 1, 4, cpu_depthwise),        # no padding, dy padded for dx
    "depthwise-s3-k2": (3, 4, 4, (13, 12), 2, 3, (1, 0), 1, 4, cpu_depthwise),   # dx rows no kernel row reaches
    "depthwise-x2": (3, 4, 8, (7, 7), 3, 1, 1, 1, 4, cpu_conv),          # channel multiplier 2: grouped GEMM
    "lenet-conv1": (4, 1, 6, (12, 11), 5, 1, 2, 1, 1, cpu_batchlast),
    "lenet-conv2": (3, 6, 16, (14, 14), 5, 1, 0, 1, 1, cpu_batchlast),
    "few-3x3": (5, 3, 8, (9, 8), 3, 1, 1, 1, 1, cpu_batchlast),
    "few-stride2": (5, 4, 6, (9, 8), 3, 2, 1, 1, 1, cpu_batchlast),
    "few-stride(2,3)-dil2": (3, 2, 5, (11, 10), 3, (2, 3), (1, 2), 2, 1, cpu_batchlast),
    "few-5x3-asym": (4, 3, 4, (9, 10), (5, 3), 1, (2, 0), 1, 1, cpu_batchlast),
    "few-bigpad": (3, 2, 3, (6, 6), 3, 1, 3, 1, 1, cpu_batchlast),
    "few-1x1-padded": (3, 4, 5, (5, 5), 1, 1, 1, 1, 1, cpu_batchlast),
    "wide-lenet-conv1": (4, 1, 6, (28, 28), 5, 1, 2, 1, 1, cpu_samplemajor),
    "wide-rgb-3x3": (5, 3, 8, (12, 18), 3, 1, 1, 1, 1, cpu_samplemajor),
    "wide-5x3-asym-dil2": (3, 2, 4, (11, 22), (5, 3), 1, (2, 0), 2, 1, cpu_samplemajor),
    "wide-nopad": (3, 4, 5, (9, 20), 3, 1, 0, 1, 1, cpu_samplemajor),
    # Winograd cases run with mg.set_conv_algorithm("winograd") and MIN_CHANNELS 8 (fixture below); the
    # default selection has its own test.
    "winograd": (5, 11, 12, (9, 8), 3, 1, 1, 1, 1, cpu_winograd),
    "winograd-even": (3, 11, 8, (8, 8), 3, 1, 1, 1, 1, cpu_winograd),
    "winograd-nopad": (3, 12, 8, (9, 10), 3, 1, 0, 1, 1, cpu_winograd),
    "winograd-asym": (3, 11, 10, (7, 9), 3, 1, (2, 0), 1, 1, cpu_winograd),
    "winograd-pad2": (3, 11, 8, (6, 5), 3, 1, 2, 1, 1, cpu_winograd),
    "winograd-pad3": (3, 11, 8, (6, 5), 3, 1, 3, 1, 1, cpu_conv),          # pads > 2: im2col (scatter dx)
    "winograd-grouped": (3, 16, 16, (6, 6), 3, 1, 1, 1, 2, cpu_conv),
}
WINOGRAD_MIN_CHANNELS = cpu_winograd.MIN_CHANNELS


@pytest.fixture(autouse=True)
def _winograd_for_small_test_cases(monkeypatch, conv_algorithm):
    monkeypatch.setattr(cpu_winograd, "MIN_CHANNELS", 8)
    conv_algorithm("winograd")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_selection_depends_on_geometry_and_setting_only(monkeypatch, conv_algorithm, n_threads):
    """Winograd serves >= 128 channels when chosen, never by default; the thread count changes nothing."""
    monkeypatch.setattr(cpu_winograd, "MIN_CHANNELS", WINOGRAD_MIN_CHANNELS)
    before = mg.get_num_threads()
    try:
        big = make_geometry((2, 128, 8, 8), (128, 128, 3, 3), 1, 1, 1, 1)
        mid = make_geometry((2, 64, 8, 8), (64, 64, 3, 3), 1, 1, 1, 1)
        mg.set_num_threads(n_threads)
        conv_algorithm("winograd")
        assert dispatch.cpu_kernel(big) is cpu_winograd
        assert dispatch.cpu_kernel(mid) is cpu_conv
        conv_algorithm("auto")
        assert dispatch.cpu_kernel(big) is cpu_conv
        x = np.ones((2, 128, 8, 8))
        assert dispatch.conv_kernel(big, x, x) is cpu_conv
        conv_algorithm("reference")
        assert dispatch.conv_kernel(big, x, x) is reference_conv
    finally:
        mg.set_num_threads(before)


def test_conv_algorithm_setting_is_checked(conv_algorithm):
    with pytest.raises(ValueError, match="set_conv_algorithm: expected one of"):
        mg.set_conv_algorithm("fastest")


def _run(case, dtype, bias=True, seed=0):
    n, c, o, size, k, s, p, d, g, _ = case
    k = k if isinstance(k, tuple) else (k, k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + size).astype(dtype)
    w = rng.standard_normal((o, c // g) + k).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    y = mg.functional.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    dy = rng.standard_normal(y.shape).astype(dtype)
    geom = make_geometry(x.shape, w.shape, s, p, d, g)
    grads = mg.functional.conv.conv_backward(x, w, dy, geom, need_bias=bias)
    return (x, w, b, dy, (s, p, d, g)), (y,) + tuple(grads)


def _torch_reference(x, w, b, dy, args):
    s, p, d, g = args
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if b is not None else None
    y = F.conv2d(tx, tw, tb, stride=s, padding=p, dilation=d, groups=g)
    y.backward(torch.tensor(dy))
    out = [y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()]
    return out + ([tb.grad.numpy()] if b is not None else [None])


def _assert_matches(ours, ref, dtype):
    for name, a, r in zip(("y", "dx", "dW", "db"), ours, ref):
        if r is None:
            assert a is None
            continue
        assert a.dtype == dtype and a.shape == r.shape, name
        np.testing.assert_allclose(a, r, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dispatch_picks_expected_kernel(name):
    assert dispatch.cpu_kernel(_geometry(CASES[name])) is CASES[name][-1]


def test_stride1_input_gradient_takes_gather_or_scatter_as_planned():
    assert cpu_conv.Plan(_geometry(CASES["3x3"]), np.float64).gather_dx
    assert not cpu_conv.Plan(_geometry(CASES["valid5x5-wide"]), np.float64).gather_dx
    assert not cpu_conv.Plan(_geometry(CASES["bigpad"]), np.float64).gather_dx



@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_matches_torch(name, dtype):
    inputs, ours = _run(CASES[name], dtype)
    _assert_matches(ours, _torch_reference(*inputs), dtype)


@pytest.mark.parametrize("name", ["3x3", "stride2", "1x1", "depthwise", "depthwise-s2", "winograd", "lenet-conv2",
                                  "wide-rgb-3x3"])
def test_without_bias(name):
    inputs, ours = _run(CASES[name], np.float64, bias=False)
    assert ours[3] is None
    _assert_matches(ours, _torch_reference(*inputs), np.float64)


def _geometry(case, batch=None):
    n, c, o, size, k, s, p, d, g, _ = case
    k = k if isinstance(k, tuple) else (k, k)
    return make_geometry((batch or n, c) + size, (o, c // g) + k, s, p, d, g)


def _chunk_sizes(module, geom):
    return [n1 - n0 for n0, n1 in module.chunks(geom, np.float64)]


def _set_budget(monkeypatch, budget):
    monkeypatch.setattr(cpu_runtime, "BUDGET", budget)


@pytest.mark.parametrize("mode", ["samples", "rows"])
@pytest.mark.parametrize("name", ["3x3", "stride2", "dilation2", "grouped-s2", "bigpad", "1x1", "1x1-s2", "stride3-dil2",
                                  "depthwise", "depthwise-s2", "winograd", "winograd-asym", "lenet-conv2",
                                  "few-stride(2,3)-dil2", "few-bigpad", "wide-lenet-conv1", "wide-5x3-asym-dil2"])
def test_small_chunks_that_do_not_divide_the_batch(name, mode, monkeypatch):
    """Batch 7 in uneven chunks of up to 2 or 3 samples, or one sample in blocks of output rows."""
    case = (7,) + CASES[name][1:]
    module = case[-1]
    geom = _geometry(case)
    if mode == "rows":
        _set_budget(monkeypatch, 64)
        assert _chunk_sizes(module, geom) == [1] * 7
        if module is cpu_conv:
            assert cpu_conv.Plan(geom, np.float64).rows < geom.out_size[0]
    else:
        budget = 64
        _set_budget(monkeypatch, budget)
        while max(_chunk_sizes(module, geom)) < 2:
            budget *= 2
            _set_budget(monkeypatch, budget)
        sizes = _chunk_sizes(module, geom)
        assert sum(sizes) == 7 and max(sizes) in (2, 3, 4) and len(set(sizes)) > 1
    inputs, ours = _run(case, np.float64)
    _assert_matches(ours, _torch_reference(*inputs), np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["3x3", "stride2", "grouped", "1x1", "depthwise", "depthwise-s2", "winograd",
                                  "lenet-conv1", "few-stride(2,3)-dil2", "wide-rgb-3x3"])
def test_one_two_and_three_threads_agree_bit_for_bit(name, dtype, monkeypatch):
    """Chunks are cut by sizes only and their partial sums added in chunk order (kernels/cpu_runtime)."""
    _set_budget(monkeypatch, 3000)
    before = mg.get_num_threads()
    try:
        results = {}
        for n_threads in (1, 2, 3):
            mg.set_num_threads(n_threads)
            results[n_threads] = _run(CASES[name], dtype)[1]
    finally:
        mg.set_num_threads(before)
    for n_threads in (2, 3):
        for a, b in zip(results[1], results[n_threads]):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
            assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["3x3", "stride2", "grouped-s2", "1x1-s2", "depthwise", "depthwise-s2",
                                  "winograd-asym", "few-stride2", "few-5x3-asym", "wide-nopad"])
def test_input_and_weight_gradient_functions(name):
    (x, w, _, dy, (s, p, d, g)), ours = _run(CASES[name], np.float64, bias=False)
    dx = conv2d_input(x.shape, w, dy, stride=s, padding=p, dilation=d, groups=g)
    dw = conv2d_weight(x, w.shape, dy, stride=s, padding=p, dilation=d, groups=g)
    tdx = torch.nn.grad.conv2d_input(x.shape, torch.tensor(w), torch.tensor(dy), s, p, d, g).numpy()
    tdw = torch.nn.grad.conv2d_weight(torch.tensor(x), w.shape, torch.tensor(dy), s, p, d, g).numpy()
    np.testing.assert_allclose(dx, tdx, **TOL[np.float64])
    np.testing.assert_allclose(dw, tdw, **TOL[np.float64])


def test_fast_and_reference_paths_agree(conv_algorithm):
    inputs, fast = _run(CASES["grouped-s2"], np.float64)
    conv_algorithm("reference")
    _, ref = _run(CASES["grouped-s2"], np.float64)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_only_plain_float32_float64_numpy_takes_the_fast_path():
    x = np.ones((2, 3, 5, 5))
    w = np.ones((4, 3, 3, 3))
    geom = make_geometry(x.shape, w.shape, 1, 1, 1, 1)
    assert dispatch.conv_kernel(geom, x, w, None) is not reference_conv
    assert dispatch.conv_kernel(geom, x.astype(np.float16), w.astype(np.float16), None) is reference_conv
    assert dispatch.conv_kernel(geom, x.astype(np.float32), w, None) is reference_conv       # mixed dtypes
    from support.strict_backend import to_strict
    assert dispatch.conv_kernel(geom, to_strict(x), to_strict(w), None) is reference_conv
    assert dispatch.conv_kernel(geom, to_strict(x), to_strict(w), to_strict(np.ones(geom.out_shape))) is reference_conv


def test_conv2d_layer_float32_matches_torch():
    mg.manual_seed(0)
    layer = mg.nn.Conv2d(4, 6, 3, stride=1, padding=1)
    x = np.random.default_rng(3).standard_normal((7, 4, 10, 10)).astype(np.float32)
    y = layer(x)
    dy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    ref = torch.nn.Conv2d(4, 6, 3, padding=1)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.data))
        ref.bias.copy_(torch.tensor(layer.bias.data))
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(dy))
    _assert_matches((y, dx, layer.weight.grad, layer.bias.grad),
                    (ty.detach().numpy(), tx.grad.numpy(), ref.weight.grad.numpy(), ref.bias.grad.numpy()),
                    np.float32)


@pytest.mark.parametrize("rows", [False, True])
@pytest.mark.parametrize("name", ["lenet-conv2", "few-stride2", "wide-lenet-conv1", "wide-5x3-asym-dil2", "3x3",
                                  "stride(2,3)", "grouped-s2", "valid5x5-wide"])
def test_columns_kept_from_forward_give_the_same_gradients(name, rows, monkeypatch):
    """Conv2d hands the kernel a dict: the few-channel kernels keep their forward columns there (when the
    batch's fit cpu_runtime.SAVED_COLUMNS_MAX) and backward reuses them instead of recomputing."""
    n, c, o, size, k, s, p, d, g, module = CASES[name]
    k = k if isinstance(k, tuple) else (k, k)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c) + size)
    w = rng.standard_normal((o, c // g) + k)
    geom = _geometry(CASES[name])
    dy = rng.standard_normal(geom.out_shape)
    if rows:                                                 # one sample per chunk, in blocks of output rows
        _set_budget(monkeypatch, 64)
    results = {}
    for limit in (0, 1 << 30):
        monkeypatch.setattr(cpu_runtime, "SAVED_COLUMNS_MAX", limit)
        monkeypatch.setattr(cpu_batchlast, "KEEP_COLUMNS_MAX", limit)
        monkeypatch.setattr(cpu_samplemajor, "KEEP_COLUMNS_MAX", limit)
        saved = {}
        y = mg.functional.conv.conv_forward(x, w, None, geom, saved)
        assert bool(saved) == (limit > 0)
        results[limit] = (y,) + mg.functional.conv.conv_backward(x, w, dy, geom, need_bias=False, saved=saved)
    for a, b in zip(results[0], results[1 << 30]):
        assert (a is None and b is None) or np.array_equal(a, b)
    _assert_matches(results[1 << 30], _torch_reference(x, w, None, dy, (s, p, d, g)), np.float64)


# cpu_depthwise has three paths: tap passes over cache-sized blocks of (channels x samples); for output planes of
# at most DENSE_MAX_OUT numbers, one dense matrix per channel; between them, row-band GEMMs. Every depthwise case
# runs on each path.
DEPTHWISE = sorted(name for name, case in CASES.items() if case[-1] is cpu_depthwise)


@pytest.fixture(params=["taps", "rows", "rows-dots", "dense"])
def depthwise_path(request, monkeypatch):
    """The path to test; "rows-dots": the row bands with dW as dot products (stride 1, OW == W) at any width."""
    monkeypatch.setattr(cpu_depthwise, "DENSE_MAX_OUT", 1 << 30 if request.param == "dense" else 0)
    monkeypatch.setattr(cpu_depthwise, "DENSE_MAX_IN", 1 << 30)
    monkeypatch.setattr(cpu_depthwise, "ROWS_MAX_K", 1 << 30 if request.param.startswith("rows") else 0)
    monkeypatch.setattr(cpu_depthwise_rows, "DOTS_MIN_W", 0 if request.param == "rows-dots" else 1 << 30)
    return request.param.split("-")[0]


def _path_of(geom):
    return cpu_depthwise.path(geom)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_paths_match_torch(name, dtype, bias, depthwise_path):
    assert _path_of(_geometry(CASES[name])) == depthwise_path
    inputs, ours = _run(CASES[name], dtype, bias=bias)
    _assert_matches(ours, _torch_reference(*inputs), dtype)


@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_gradient_functions_on_every_path(name, depthwise_path):
    assert _path_of(_geometry(CASES[name])) == depthwise_path
    test_input_and_weight_gradient_functions(name)


@pytest.mark.parametrize("budget", [64, 8000, 40000, 1 << 30])
@pytest.mark.parametrize("name", ["depthwise", "depthwise-s2", "depthwise-dil2", "depthwise-bigpad", "depthwise-7x7-s2",
                                  "depthwise-s3-k2"])
def test_depthwise_blocks_agree_bit_for_bit_over_threads(name, budget, depthwise_path, monkeypatch):
    """Blocks of one or several channels, of the whole batch or a part of it (uneven), cut by sizes only: 1, 2 and 3
    threads give the same bits, and the result matches PyTorch."""
    _set_budget(monkeypatch, budget)
    case = (7,) + CASES[name][1:]
    geom = _geometry(case)
    assert _path_of(geom) == depthwise_path
    samples, channels = cpu_depthwise_taps.plan(geom, np.float64)
    if depthwise_path == "rows":
        rows = cpu_depthwise_rows.Rows(geom, np.float64)
        samples, channels = rows.samples, rows.channels
        assert rows.dots == (cpu_depthwise_rows.DOTS_MIN_W == 0 and geom.stride == (1, 1) and rows.ow == rows.w)
    if depthwise_path == "taps" and budget == 8000:
        assert len(samples) > 1
        if name in ("depthwise", "depthwise-s2"):
            assert len({n1 - n0 for n0, n1 in samples}) > 1                     # uneven sample blocks
    lay = cpu_depthwise_taps.Layout.of(geom)
    if depthwise_path == "taps" and 2 * 7 * (lay.phases + 3) * lay.sub * 8 <= budget < 1 << 30:
        assert len(samples) == 1 and max(c1 - c0 for c0, c1 in channels) > 1    # several channels per block
    before = mg.get_num_threads()
    try:
        results = {}
        for n_threads in (1, 2, 3):
            mg.set_num_threads(n_threads)
            results[n_threads] = _run(case, np.float64)
    finally:
        mg.set_num_threads(before)
    for n_threads in (2, 3):
        for a, b in zip(results[1][1], results[n_threads][1]):
            assert np.array_equal(a, b)
    _assert_matches(results[1][1], _torch_reference(*results[1][0]), np.float64)


@pytest.mark.parametrize("size, stride, path", [((4, 4), 1, "dense"), ((7, 7), 1, "dense"), ((8, 8), 1, "dense"),
                                                ((14, 14), 2, "dense"), ((9, 9), 1, "rows"), ((14, 14), 1, "rows"),
                                                ((28, 28), 1, "rows"), ((32, 32), 1, "rows"), ((32, 32), 2, "rows"),
                                                ((64, 64), 2, "rows"), ((48, 48), 1, "taps"), ((56, 56), 1, "taps"),
                                                ((224, 224), 2, "taps"), ((40, 40), 5, "rows")])
def test_depthwise_path_by_plane_size(size, stride, path):
    """Dense matrices for output planes of at most 8 x 8, row-band GEMMs up to 42 columns (stride 1; 170 at
    stride 2), tap passes for wider planes: the crossovers measured for cpu_depthwise's thresholds."""
    assert _path_of(_geometry((2, 8, 8, size, 3, stride, 1, 1, 8, None))) == path


def _inside_output(geom):
    """An output position (r, s) near the middle whose window lies wholly inside the input (no padding), or None."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.stride, geom.dilation
    (h, w), (oh, ow), top, left = geom.in_size, geom.out_size, geom.pads[0], geom.pads[2]
    rows = [r for r in range(oh) if r * sh - top >= 0 and r * sh - top + (kh - 1) * dh < h]
    cols = [s for s in range(ow) if s * sw - left >= 0 and s * sw - left + (kw - 1) * dw < w]
    return (rows[len(rows) // 2], cols[len(cols) // 2]) if rows and cols else None


@pytest.mark.parametrize("where", ["input", "grad_out"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_non_finite_numbers_stay_in_their_windows(name, dtype, where, depthwise_path, monkeypatch):
    """An inf or nan makes non-finite numbers exactly where PyTorch's do (nan, +inf and -inf masks equal) and the
    rest equal PyTorch's to rounding, on every path: the GEMM paths multiply the zeros around each window, so a
    call whose products met one is redone by the taps path (which this counts), and the taps keep dW to the
    windows' own positions. Input: +inf, -inf and nan at the edges of three planes (the taps' extra positions
    and the GEMM bands read them). grad_out: one inf at an output whose window holds no padding (PyTorch's dW
    counts inf * padding as nan in float64, and skips the padding in float32)."""
    assert _path_of(_geometry(CASES[name])) == depthwise_path
    redone = []
    for fn in ("forward", "backward"):
        def counted(*args, _original=getattr(cpu_depthwise_taps, fn), _name=fn, **kwargs):
            redone.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(cpu_depthwise_taps, fn, counted)
    n, c, _, (h, w), k, s, p, d, g, _ = CASES[name]
    geom = _geometry(CASES[name])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((c, 1) + geom.kernel).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    dy = rng.standard_normal(geom.out_shape).astype(dtype)
    if where == "input":
        x[0, 1, h // 2, w - 1] = np.inf
        x[n - 1, c - 1, h - 1, 0] = -np.inf
        x[n // 2, 0, 0, w // 2] = np.nan
    else:
        r, col = _inside_output(geom)
        dy[n - 1, c // 2, r, col] = np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        y = mg.functional.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g)
        ours = (y,) + tuple(mg.functional.conv.conv_backward(x, wt, dy, geom))
    ref = _torch_reference(x, wt, b, dy, (s, p, d, g))
    assert not np.isfinite(ref[0] if where == "input" else ref[1]).all()      # the check has something to check
    for label, a, r in zip(("y", "dx", "dW", "db"), ours, ref):
        for mask in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(mask(a), mask(r)), (label, mask.__name__)
        finite = np.isfinite(r)
        np.testing.assert_allclose(a[finite], r[finite], **TOL[dtype], err_msg=label)
    if depthwise_path != "taps":                # the GEMM paths handed back what the inf or nan reached
        assert redone[0] == ("forward" if where == "input" else "backward")
    if where == "grad_out":                     # dx alone: no dW to show dy's inf, so dy itself is checked
        with np.errstate(invalid="ignore", over="ignore"):
            dx, dw, db = mg.functional.conv.conv_backward(x, wt, dy, geom, need_weight=False, need_bias=False)
        assert dw is None and db is None
        for mask in (np.isnan, np.isposinf, np.isneginf):
            assert np.array_equal(mask(dx), mask(ref[1])), mask.__name__
        np.testing.assert_allclose(dx[np.isfinite(ref[1])], ref[1][np.isfinite(ref[1])], **TOL[dtype])


@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_finite_numbers_never_take_the_taps_detour(name, depthwise_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the taps path ran")

    if depthwise_path != "taps":
        monkeypatch.setattr(cpu_depthwise_taps, "forward", fail)
        monkeypatch.setattr(cpu_depthwise_taps, "backward", fail)
    inputs, ours = _run(CASES[name], np.float32)
    _assert_matches(ours, _torch_reference(*inputs), np.float32)
