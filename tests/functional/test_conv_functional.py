"""mg.functional.unfold/fold/conv2d/conv2d_input/conv2d_weight against PyTorch, on a broad
randomized set of configurations, in float64 (~1e-10 relative) and float32 (~1e-4)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _configs(count=40, seed=7):
    """Random conv configurations: batch 1..3, groups incl. depthwise, stride > kernel, dilation,
    kernel up to the input size, non-square everything."""
    rng = np.random.default_rng(seed)
    configs = []
    while len(configs) < count:
        groups = int(rng.choice([1, 1, 2, 3]))
        cin = groups * int(rng.integers(1, 4))
        depthwise = rng.random() < 0.2
        cout = cin if depthwise else groups * int(rng.integers(1, 4))
        if depthwise:
            groups = cin
        kh, kw = (int(k) for k in rng.integers(1, 5, size=2))
        sh, sw = (int(s) for s in rng.integers(1, 6, size=2))
        dh, dw = (int(d) for d in rng.integers(1, 4, size=2))
        ph, pw = (int(p) for p in rng.integers(0, 3, size=2))
        h = int(rng.integers(1, 12)) + dh * (kh - 1)
        w = int(rng.integers(1, 12)) + dw * (kw - 1)
        h, w = max(h - 2 * ph, 1), max(w - 2 * pw, 1)
        if h + 2 * ph < dh * (kh - 1) + 1 or w + 2 * pw < dw * (kw - 1) + 1:
            continue
        n = int(rng.integers(1, 4))
        configs.append(dict(n=n, cin=cin, cout=cout, h=h, w=w, k=(kh, kw), stride=(sh, sw),
                            dilation=(dh, dw), padding=(ph, pw), groups=groups))
    return configs


CONFIGS = _configs()
EDGE = [  # kernel equal to the input, 1x1 input, stride larger than the kernel, big dilation
    dict(n=1, cin=2, cout=3, h=5, w=4, k=(5, 4), stride=(1, 1), dilation=(1, 1), padding=(0, 0), groups=1),
    dict(n=2, cin=3, cout=2, h=1, w=1, k=(1, 1), stride=(1, 1), dilation=(1, 1), padding=(0, 0), groups=1),
    dict(n=2, cin=4, cout=4, h=9, w=11, k=(2, 2), stride=(4, 5), dilation=(1, 1), padding=(1, 0), groups=4),
    dict(n=1, cin=1, cout=2, h=13, w=9, k=(3, 2), stride=(1, 2), dilation=(5, 7), padding=(2, 1), groups=1),
]


def _arrays(cfg, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"])).astype(dtype)
    w = rng.standard_normal((cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["k"]).astype(dtype)
    b = rng.standard_normal(cfg["cout"]).astype(dtype)
    return x, w, b


def _close(ours, ref, dtype):
    ref = ref.detach().numpy()
    assert ours.dtype == np.dtype(dtype), f"dtype changed: {ours.dtype}"
    assert ours.shape == ref.shape
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-4, 1e-5)
    scale = max(np.abs(ref).max(), 1.0)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", CONFIGS + EDGE, ids=lambda c: "n{n}c{cin}o{cout}h{h}w{w}k{k}s{stride}d{dilation}"
                         "p{padding}g{groups}".format(**c))
def test_conv2d_and_gradients_match_torch(cfg, dtype):
    x, w, b = _arrays(cfg, dtype)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    y = F.conv2d(x, w, b, **args)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = TF.conv2d(xt, wt, bt, **args)
    _close(y, yt, dtype)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    _close(F.conv2d_input(x.shape, w, dy, **args), xt.grad, dtype)
    _close(F.conv2d_weight(x, w.shape, dy, **args), wt.grad, dtype)
    tg_in = torch.nn.grad.conv2d_input(x.shape, torch.tensor(w), torch.tensor(dy), **args)
    _close(F.conv2d_input(x.shape, w, dy, **args), tg_in, dtype)


@pytest.mark.parametrize("padding", ["same", "valid", 0, (2, 1)])
@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((4, 2), 1), ((2, 3), (2, 3))])
def test_conv2d_string_padding(padding, kernel, dilation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8, 7))
    w = rng.standard_normal((4, 3) + kernel)
    y = F.conv2d(x, w, padding=padding, dilation=dilation)
    yt = TF.conv2d(torch.tensor(x), torch.tensor(w), padding=padding, dilation=dilation)
    _close(y, yt, "float64")
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cfg", CONFIGS[:20] + EDGE, ids=lambda c: "h{h}w{w}k{k}s{stride}d{dilation}p{padding}".format(**c))
def test_unfold_fold_match_torch(cfg, dtype):
    x, _, _ = _arrays(cfg, dtype)
    args = dict(kernel_size=cfg["k"], dilation=cfg["dilation"], padding=cfg["padding"], stride=cfg["stride"])
    cols = F.unfold(x, **args)
    _close(cols, TF.unfold(torch.tensor(x), **args), dtype)
    back = F.fold(cols, (cfg["h"], cfg["w"]), **args)
    _close(back, TF.fold(torch.tensor(cols), (cfg["h"], cfg["w"]), **args), dtype)
    # unbatched forms
    _close(F.unfold(x[0], **args), TF.unfold(torch.tensor(x[0]), **args), dtype)
    _close(F.fold(cols[0], (cfg["h"], cfg["w"]), **args), TF.fold(torch.tensor(cols[0]), (cfg["h"], cfg["w"]), **args), dtype)


@pytest.mark.parametrize("cfg", CONFIGS[:10] + EDGE, ids=lambda c: "h{h}w{w}k{k}s{stride}".format(**c))
def test_fold_is_adjoint_of_unfold(cfg):
    """<unfold(x), c> == <x, fold(c)> for all x, c: fold is the transpose of unfold."""
    rng = np.random.default_rng(5)
    x, _, _ = _arrays(cfg, "float64")
    args = dict(kernel_size=cfg["k"], dilation=cfg["dilation"], padding=cfg["padding"], stride=cfg["stride"])
    c = rng.standard_normal(F.unfold(x, **args).shape)
    lhs = float((F.unfold(x, **args) * c).sum())
    rhs = float((x * F.fold(c, (cfg["h"], cfg["w"]), **args)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_float32_stays_float32():
    x = np.ones((2, 2, 5, 5), "float32")
    w = np.ones((3, 2, 3, 3), "float32")
    dy = np.ones((2, 3, 3, 3), "float32")
    assert F.conv2d(x, w, np.zeros(3, "float32")).dtype == np.float32
    assert F.conv2d_input(x.shape, w, dy).dtype == np.float32
    assert F.conv2d_weight(x, w.shape, dy).dtype == np.float32
    assert F.fold(F.unfold(x, 3), (5, 5), 3).dtype == np.float32
    assert F.conv2d(x.astype("float16"), w.astype("float16")).dtype == np.float16


def test_conv_gradients_pass_finite_differences(rng):
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((6, 2, 3, 2))
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    forward = lambda x, w: F.conv2d(x, w, **args)  # noqa: E731
    backward = lambda dy, x, w: (F.conv2d_input(x.shape, w, dy, **args), F.conv2d_weight(x, w.shape, dy, **args))  # noqa: E731
    assert mg.gradcheck((forward, backward), (x, w))
    unfold = lambda x: F.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(1, 2))  # noqa: E731
    fold_back = lambda dc, x: F.fold(dc, x.shape[2:], (2, 3), dilation=(2, 1), padding=1, stride=(1, 2))  # noqa: E731
    assert mg.gradcheck((unfold, fold_back), (x,))


@pytest.mark.parametrize("call,error,words", [
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8)), np.zeros((4, 2, 3, 3))), ValueError,
     ["conv2d", "expected input with 2 channels", "(4, 2, 3, 3)", "(1, 3, 8, 8)"]),
    (lambda: F.conv2d(np.zeros((1, 2, 2, 2)), np.zeros((4, 2, 3, 3))), ValueError,
     ["conv2d", "kernel of size (3, 3)", "larger than the padded input (2, 2)"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 3)), stride=0), ValueError,
     ["conv2d", "stride must be positive", "0"]),
    (lambda: F.conv2d(np.zeros((1, 4, 8, 8)), np.zeros((3, 2, 3, 3)), groups=2), ValueError,
     ["conv2d", "out_channels=3", "not divisible by groups=2"]),
    (lambda: F.conv2d(np.zeros((8, 8)), np.zeros((4, 2, 3, 3))), ValueError,
     ["conv2d", "expected 3-D or 4-D input (N, C, H, W) or (C, H, W)", "2-D input of shape (8, 8)"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8), "int64"), np.zeros((4, 2, 3, 3))), TypeError,
     ["conv2d", "floating-point input", "int64"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8), "float32"), np.zeros((4, 2, 3, 3))), TypeError,
     ["conv2d", "float32", "float64"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 3)), np.zeros(3)), ValueError,
     ["conv2d", "bias of shape (4,)", "(3,)"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 3)), stride=2, padding="same"), ValueError,
     ["padding='same'", "strided"]),
    (lambda: F.conv2d(np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 3)), padding="full"), ValueError,
     ["padding must be an int, a pair, 'valid' or 'same'"]),
    (lambda: F.conv2d_input((1, 2, 8, 8), np.zeros((4, 2, 3, 3)), np.zeros((1, 4, 5, 5))), ValueError,
     ["conv2d_input", "grad_output of shape (1, 4, 6, 6)", "(1, 4, 5, 5)"]),
    (lambda: F.conv2d_weight(np.zeros((1, 2, 8, 8)), (4, 2, 3, 3), np.zeros((1, 4, 6, 6), "float32")), TypeError,
     ["conv2d_weight", "grad_output has dtype float32", "input has dtype float64"]),
    (lambda: F.unfold(np.zeros((1, 1, 2, 2)), 3), ValueError, ["unfold", "does not fit"]),
    (lambda: F.fold(np.zeros((1, 9, 10)), (5, 5), 3), ValueError, ["fold", "9 blocks", "L=10"]),
    (lambda: F.fold(np.zeros((1, 8, 9)), (5, 5), 3), ValueError, ["fold", "divisible by kh*kw=9"]),
    (lambda: F.unfold(np.zeros((1, 1, 5, 5)), (3, 3, 3)), TypeError, ["unfold", "kernel_size", "pair"]),
])
def test_bad_arguments_raise_clear_errors(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


@pytest.mark.parametrize("groups,stride,padding", [(1, 1, 0), (2, 2, 1), (1, (2, 1), (0, 2))])
def test_unbatched_gradients_like_torch_nn_grad(groups, stride, padding):
    """conv2d takes unbatched (C, H, W) inputs, as torch's does; its gradients do too: the gradients of
    torch's conv2d on an unbatched input (autograd) are the reference."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 7, 6))                               # (C, H, W)
    w = rng.standard_normal((6, 4 // groups, 3, 2))
    x_t, w_t = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y_t = torch.nn.functional.conv2d(x_t, w_t, stride=stride, padding=padding, groups=groups)
    dy = rng.standard_normal(tuple(y_t.shape))                       # (O, OH, OW)
    ref_x, ref_w = torch.autograd.grad(y_t, (x_t, w_t), torch.tensor(dy))
    ours_x = F.conv2d_input(x.shape, w, dy, stride, padding, 1, groups)
    ours_w = F.conv2d_weight(x, w.shape, dy, stride, padding, 1, groups)
    assert ours_x.shape == x.shape and ours_w.shape == w.shape
    np.testing.assert_allclose(ours_x, ref_x.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours_w, ref_w.numpy(), rtol=1e-12, atol=1e-12)


def test_unbatched_gradients_refuse_a_batched_grad_output():
    x, w = np.ones((2, 5, 5)), np.ones((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_input: an unbatched input \(C, H, W\) takes grad_output of shape "
                                         r"\(O, OH, OW\), got 4-D grad_output of shape \(1, 3, 3, 3\)"):
        F.conv2d_input(x.shape, w, np.ones((1, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d_weight: an unbatched input"):
        F.conv2d_weight(x, w.shape, np.ones((1, 3, 3, 3)))
