"""Property-based tests (hypothesis): random convolution / unfold / fold / ConvTranspose2d / MaxPool2d / AvgPool2d
configurations, including edge cases (1x1 inputs, kernel equal to the input, stride larger than the kernel,
large dilation, batch of 1, many groups), compared with PyTorch forward and backward.

Profiles: "ci" (default, bounded example count) and "long" for local runs:
    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
"""
import functools
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@st.composite
def conv_configs(draw, max_groups=6):
    groups = draw(st.integers(1, max_groups))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = draw(st.integers(max(1, span_h - 2 * ph), span_h + 8))
    w = draw(st.integers(max(1, span_w - 2 * pw), span_w + 8))
    n = draw(st.integers(1, 3))
    return dict(n=n, cin=cin, cout=cout, h=h, w=w, kernel=(kh, kw), stride=(sh, sw), dilation=(dh, dw),
                padding=(ph, pw), groups=groups)


def _data(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"]))
    w = rng.standard_normal((cfg["cout"], cfg["cin"] // cfg["groups"]) + cfg["kernel"])
    return rng, x, w


@given(cfg=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_forward_backward_match_torch(cfg, seed):
    rng, x, w = _data(cfg, seed)
    b = rng.standard_normal(cfg["cout"])
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    y = F.conv2d(x, w, b, **args)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = TF.conv2d(xt, wt, bt, **args)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(F.conv2d_input(x.shape, w, dy, **args), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F.conv2d_weight(x, w.shape, dy, **args), wt.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(cfg=conv_configs(max_groups=1), seed=st.integers(0, 2**16),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv2d_layer_padding_modes_match_torch(cfg, seed, mode):
    ph, pw = cfg["padding"]
    if mode == "reflect" and (ph >= cfg["h"] or pw >= cfg["w"]):
        return  # PyTorch rejects this too; covered by the error tests
    if mode == "circular" and (ph > cfg["h"] or pw > cfg["w"]):
        return
    rng, x, _ = _data(cfg, seed)
    ours = mg.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"],
                        padding_mode=mode, dtype="float64")
    ref = torch.nn.Conv2d(cfg["cin"], cfg["cout"], cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"],
                          padding_mode=mode, dtype=torch.float64)
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(x), ref(xt)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(cfg=conv_configs(max_groups=1), seed=st.integers(0, 2**16))
def test_unfold_fold_match_torch_and_are_adjoint(cfg, seed):
    rng, x, _ = _data(cfg, seed)
    args = dict(kernel_size=cfg["kernel"], dilation=cfg["dilation"], padding=cfg["padding"], stride=cfg["stride"])
    cols = F.unfold(x, **args)
    np.testing.assert_array_equal(cols, TF.unfold(torch.tensor(x), **args).numpy())
    c = rng.standard_normal(cols.shape)
    folded = F.fold(c, (cfg["h"], cfg["w"]), **args)
    np.testing.assert_allclose(folded, TF.fold(torch.tensor(c), (cfg["h"], cfg["w"]), **args).numpy(),
                               rtol=1e-12, atol=1e-12)
    assert float((cols * c).sum()) == pytest.approx(float((x * folded).sum()), rel=1e-10, abs=1e-10)


# ----------------------------------------------------------------------------- ConvTranspose2d

@st.composite
def conv_transpose_configs(draw, max_groups=6):
    groups = draw(st.integers(1, max_groups))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dh, dw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    oph = draw(st.integers(0, max(sh, dh) - 1))
    opw = draw(st.integers(0, max(sw, dw) - 1))
    h, w, n = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    assume(out_h >= 1 and out_w >= 1)
    return dict(n=n, cin=cin, cout=cout, h=h, w=w, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                output_padding=(oph, opw), dilation=(dh, dw), groups=groups, bias=draw(st.booleans()))


def _ct_edge(**overrides):
    cfg = dict(n=1, cin=1, cout=1, h=1, w=1, kernel=(1, 1), stride=(1, 1), padding=(0, 0), output_padding=(0, 0),
               dilation=(1, 1), groups=1, bias=True)
    cfg.update(overrides)
    return cfg


@given(cfg=conv_transpose_configs(), seed=st.integers(0, 2**16))
@example(cfg=_ct_edge(), seed=0)                                                    # 1x1 input, 1x1 kernel
@example(cfg=_ct_edge(h=3, w=3, kernel=(3, 3), padding=(1, 1)), seed=1)             # kernel equal to the input
@example(cfg=_ct_edge(h=3, w=2, kernel=(2, 2), stride=(5, 4), output_padding=(4, 3)), seed=2)  # stride > kernel
@example(cfg=_ct_edge(h=4, w=4, kernel=(3, 2), dilation=(6, 5), output_padding=(5, 0)), seed=3)  # large dilation
@example(cfg=_ct_edge(cin=8, cout=8, groups=8, h=3, w=3, kernel=(3, 3), stride=(2, 2)), seed=4)   # depthwise
@example(cfg=_ct_edge(n=3, cin=6, cout=12, groups=6, h=2, w=5, kernel=(2, 3), stride=(2, 1), padding=(1, 1),
                      output_padding=(1, 0), bias=False), seed=5)                   # many groups, no bias
def test_conv_transpose2d_forward_backward_match_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], output_padding=cfg["output_padding"],
                groups=cfg["groups"], bias=cfg["bias"], dilation=cfg["dilation"])
    ours = mg.nn.ConvTranspose2d(cfg["cin"], cfg["cout"], cfg["kernel"], dtype="float64", **args)
    ref = torch.nn.ConvTranspose2d(cfg["cin"], cfg["cout"], cfg["kernel"], dtype=torch.float64, **args)
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((cfg["n"], cfg["cin"], cfg["h"], cfg["w"]))
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(x), ref(xt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    if cfg["bias"]:
        np.testing.assert_allclose(ours.bias.grad, ref.bias.grad.numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- MaxPool2d / AvgPool2d

@st.composite
def pool_configs(draw, dilation=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 4)), draw(st.integers(1, 4))) if dilation else (1, 1)
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = draw(st.integers(max(1, span_h - 2 * ph), span_h + 7))
    w = draw(st.integers(max(1, span_w - 2 * pw), span_w + 7))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)), h=h, w=w, kernel=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), dilation=(dh, dw), ceil_mode=draw(st.booleans()))


def _pool_edge(**overrides):
    cfg = dict(n=1, c=1, h=1, w=1, kernel=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), ceil_mode=False)
    cfg.update(overrides)
    return cfg


POOL_EDGES = [
    _pool_edge(),                                                               # 1x1 input
    _pool_edge(h=3, w=4, kernel=(3, 4)),                                        # kernel equal to the input
    _pool_edge(h=7, w=9, kernel=(2, 3), stride=(5, 6), ceil_mode=True),         # stride larger than the kernel
    _pool_edge(c=2, h=9, w=7, kernel=(3, 2), dilation=(4, 6)),                  # large dilation
    _pool_edge(h=5, w=5, kernel=(4, 4), stride=(3, 3), padding=(2, 2), ceil_mode=True),  # padding k/2, ceil
]


def _distinct(rng, shape):
    """Distinct values (a random permutation, scaled): max pooling has no ties, so one gradient is right."""
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) / 7.0 - 3.0


def _compare_pool(ours, ref, x, rng):
    """Forward and backward of a minigrad pool against torch; if torch refuses the config, so must we."""
    xt = torch.tensor(x, requires_grad=True)
    try:
        yt = ref(xt)
    except RuntimeError as exc:
        with pytest.raises(ValueError):
            ours(x)
        return str(exc)
    y = ours(x)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(ours.backward(dy), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    return None


def _with_pool_edges(test, **extra):
    for i, cfg in enumerate(POOL_EDGES):
        test = example(cfg=cfg, seed=i, **extra)(test)
    return test


@given(cfg=pool_configs(), seed=st.integers(0, 2**16))
@_with_pool_edges
def test_max_pool2d_forward_backward_match_torch(cfg, seed):
    rng = np.random.default_rng(seed)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], ceil_mode=cfg["ceil_mode"])
    x = _distinct(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    refused = _compare_pool(mg.nn.MaxPool2d(cfg["kernel"], **args), torch.nn.MaxPool2d(cfg["kernel"], **args), x, rng)
    if refused is None:
        _compare_pool(mg.nn.MaxPool2d(cfg["kernel"], **args), torch.nn.MaxPool2d(cfg["kernel"], **args), x[0], rng)
        _, indices = mg.nn.MaxPool2d(cfg["kernel"], return_indices=True, **args)(x)
        _, indices_t = torch.nn.MaxPool2d(cfg["kernel"], return_indices=True, **args)(torch.tensor(x))
        np.testing.assert_array_equal(indices, indices_t.numpy())


@given(cfg=pool_configs(dilation=False), seed=st.integers(0, 2**16), count_include_pad=st.booleans(),
       divisor_override=st.sampled_from([None, None, 1, 3]))
@functools.partial(_with_pool_edges, count_include_pad=False, divisor_override=None)
def test_avg_pool2d_forward_backward_match_torch(cfg, seed, count_include_pad, divisor_override):
    if cfg["dilation"] != (1, 1):
        return                                   # AvgPool2d has no dilation (the edge list shares MaxPool2d's)
    rng = np.random.default_rng(seed)
    args = dict(stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"],
                count_include_pad=count_include_pad, divisor_override=divisor_override)
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    _compare_pool(mg.nn.AvgPool2d(cfg["kernel"], **args), torch.nn.AvgPool2d(cfg["kernel"], **args), x, rng)
