"""Property-based tests (hypothesis): random convolution / unfold / fold configurations,
including edge cases (1x1 inputs, kernel equal to the input, stride larger than the kernel,
large dilation, batch of 1, many groups), compared with PyTorch forward and backward.

Profiles: "ci" (default, bounded example count) and "long" for local runs:
    HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
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
