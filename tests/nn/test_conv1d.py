"""Conv1d, MaxPool1d, AvgPool1d, LPPool1d, AdaptiveAvgPool1d, AdaptiveMaxPool1d (and their F forms) vs PyTorch in
float64 (1e-10) and float32: output, input gradient, parameter gradients (accumulated over two backward calls),
every option (stride, padding int/'same'/'valid', dilation, groups, bias, every padding_mode; ceil_mode,
count_include_pad, return_indices); Conv1d is Conv2d's kernel with H = 1 (bit for bit); state dicts as torch's;
finite differences; each backend; the strict backend; errors in 1-d terms naming the layer."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
TF = torch.nn.functional

CONV_CASES = [
    {}, {"stride": 2}, {"padding": 1}, {"padding": (2,)}, {"stride": 3, "padding": 2}, {"dilation": 2},
    {"dilation": 3, "padding": 2, "stride": 2}, {"groups": 2}, {"groups": 2, "padding": 1, "stride": 2},
    {"bias": False}, {"padding": "valid"}, {"padding": "same"}, {"padding": "same", "dilation": 2},
]
MODES = ["zeros", "reflect", "replicate", "circular"]


def _x(shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _pair(kwargs, dtype, in_channels=4, out_channels=6, kernel=3):
    torch_layer = torch.nn.Conv1d(in_channels, out_channels, kernel, **kwargs).to(getattr(torch, dtype))
    layer = mg.nn.Conv1d(in_channels, out_channels, kernel, **kwargs, dtype=dtype)
    layer.load_state_dict({k: v.detach().numpy().copy() for k, v in torch_layer.state_dict().items()})
    return layer, torch_layer


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kwargs", CONV_CASES, ids=str)
def test_conv1d_matches_torch(kwargs, mode, dtype):
    if mode != "zeros" and (kwargs.get("padding") in (None, 0, "valid")):
        kwargs = {**kwargs, "padding": 2}
    for kernel in (3, 4):
        layer, torch_layer = _pair({**kwargs, "padding_mode": mode}, dtype, kernel=kernel)
        for shape in ((2, 4, 11), (4, 11)):
            x = _x(shape, dtype)
            y = layer(x)
            dy = _x(y.shape, dtype, seed=3)
            expected, (dx,) = torch_run(torch_layer, [x], dy)
            assert_close(y, expected, dtype, "output")
            assert_close(layer.backward(dy), dx, dtype, "input gradient")
            for name, parameter in layer.named_parameters():
                assert_close(parameter.grad, dict(torch_layer.named_parameters())[name].grad, dtype, name)
            layer.zero_grad()
            torch_layer.zero_grad()


def test_parameter_gradients_accumulate_over_two_backward_calls_like_torch():
    layer, torch_layer = _pair({"padding": 1, "groups": 2}, "float64")
    t_params = dict(torch_layer.named_parameters())
    for seed in (1, 2):
        x = _x((3, 4, 9), seed=seed)
        dy = _x((3, 6, 9), seed=seed + 10)
        layer(x)
        layer.backward(dy)
        torch_layer(torch.from_numpy(x)).backward(torch.from_numpy(dy))
    for name, parameter in layer.named_parameters():
        np.testing.assert_allclose(parameter.grad, t_params[name].grad.numpy(), rtol=1e-10, atol=1e-12)
    layer(_x((3, 4, 9)))
    layer.backward_parameters(_x((3, 6, 9)))          # the first layer of a network: no input gradient
    assert layer.weight.grad.shape == (6, 2, 3)


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_is_conv2ds_kernel_with_h_1_bit_for_bit(mode):
    mg.manual_seed(0)
    conv1 = mg.nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, padding_mode=mode, dtype="float64")
    conv2 = mg.nn.Conv2d(4, 6, (1, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 2), groups=2, padding_mode=mode,
                         dtype="float64")
    conv2.load_state_dict({"weight": conv1.weight.data[:, :, None, :], "bias": conv1.bias.data})
    x, dy = _x((3, 4, 12)), _x((3, 6, 5), seed=1)
    assert np.array_equal(conv1(x), conv2(x[:, :, None, :])[:, :, 0, :])
    assert np.array_equal(conv1.backward(dy), conv2.backward(dy[:, :, None, :])[:, :, 0, :])
    assert np.array_equal(conv1.weight.grad, conv2.weight.grad[:, :, 0, :])
    assert np.array_equal(conv1.bias.grad, conv2.bias.grad)


def test_state_dict_and_init_like_torch():
    layer = mg.nn.Conv1d(4, 6, 5, groups=2)
    torch_layer = torch.nn.Conv1d(4, 6, 5, groups=2)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in torch_layer.state_dict().items()} == {"weight": (6, 2, 5), "bias": (6,)}
    bound = 1 / np.sqrt(2 * 5)                          # kaiming_uniform(a=sqrt(5)): 1/sqrt(fan_in), as torch
    assert layer.weight.dtype == np.float32 and np.abs(layer.weight.data).max() <= bound
    assert np.abs(layer.bias.data).max() <= bound and np.abs(layer.weight.data).max() > bound / 2
    torch_layer.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in layer.state_dict().items()})
    x = _x((2, 4, 9), "float32")
    np.testing.assert_allclose(layer(x), torch_layer(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    mg.manual_seed(3)
    a = mg.nn.Conv1d(4, 6, 5)
    mg.manual_seed(3)
    assert np.array_equal(a.weight.data, mg.nn.Conv1d(4, 6, 5).weight.data)
    assert mg.nn.Conv1d(2, 3, 3, bias=False).bias is None
    assert repr(mg.nn.Conv1d(4, 6, 3, 2, 1, groups=2, padding_mode="reflect")) == \
        "Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), groups=2, padding_mode='reflect')"


# -- the 1-d pools ---------------------------------------------------------------------------------------------
POOLS = [
    ("MaxPool1d", (3,), {}), ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("MaxPool1d", (2,), {"stride": 1, "dilation": 3, "padding": 1}), ("MaxPool1d", (3,), {"ceil_mode": True}),
    ("MaxPool1d", (3,), {"return_indices": True, "stride": 2, "padding": 1, "dilation": 2}),
    ("AvgPool1d", (3,), {}), ("AvgPool1d", (3,), {"stride": 2, "padding": 1}),
    ("AvgPool1d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("AvgPool1d", (4,), {"stride": 3, "padding": 2, "ceil_mode": True}),
    ("LPPool1d", (2, 3), {}), ("LPPool1d", (1, 3), {"stride": 2, "ceil_mode": True}),
    ("LPPool1d", (float("inf"), 2), {"stride": 1}),
    ("AdaptiveAvgPool1d", (1,), {}), ("AdaptiveAvgPool1d", (4,), {}), ("AdaptiveAvgPool1d", (15,), {}),
    ("AdaptiveMaxPool1d", (4,), {}), ("AdaptiveMaxPool1d", (15,), {"return_indices": True}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,args,kwargs", POOLS, ids=[f"{n}{a}{k}" for n, a, k in POOLS])
def test_pool1d_matches_torch(name, args, kwargs, dtype):
    for shape in ((2, 3, 11), (3, 11), (0, 3, 11)):
        x = _x(shape, dtype)
        layer, torch_layer = getattr(mg.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
        out = layer(x)
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        ref = torch_layer(t)
        if kwargs.get("return_indices"):
            (out, indices), (ref, ref_indices) = out, ref
            assert indices.dtype == np.int64
            np.testing.assert_array_equal(indices, ref_indices.numpy())
        assert_close(out, ref, dtype, "output")
        dy = _x(out.shape, dtype, seed=4)
        ref.backward(torch.from_numpy(dy))
        assert_close(layer.backward(dy), t.grad, dtype, "input gradient")


FORMS = [
    ("conv1d", (_x((2, 4, 9)), _x((6, 2, 3), seed=1), _x((6,), seed=2)), {"stride": 2, "padding": 1, "groups": 2}),
    ("conv1d", (_x((4, 9)), _x((6, 4, 4), seed=1)), {"padding": "same", "dilation": 2}),
    ("max_pool1d", (_x((2, 3, 9)), 3), {"stride": 2, "padding": 1, "ceil_mode": True, "return_indices": True}),
    ("avg_pool1d", (_x((2, 3, 9)), 3), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("lp_pool1d", (_x((2, 3, 9)), 2, 3), {"stride": 2, "ceil_mode": True}),
    ("adaptive_avg_pool1d", (_x((2, 3, 9)), 4), {}),
    ("adaptive_max_pool1d", (_x((3, 9)), 4), {"return_indices": True}),
]


@pytest.mark.parametrize("name,args,kwargs", FORMS, ids=[f"{f[0]}-{i}" for i, f in enumerate(FORMS)])
def test_functional_forms_match_torch(name, args, kwargs):
    ours = getattr(F, name)(*args, **kwargs)
    ref = getattr(TF, name)(*[torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a for a in args], **kwargs)
    for a, b in zip(ours if isinstance(ours, tuple) else (ours,), ref if isinstance(ref, tuple) else (ref,)):
        assert np.asarray(a).dtype == b.numpy().dtype
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: mg.nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), lambda: mg.nn.Conv1d(4, 4, 4, padding="same",
                                                                                          groups=2, bias=False),
    lambda: mg.nn.Conv1d(4, 2, 3, padding=2, padding_mode="reflect"), lambda: mg.nn.Conv1d(4, 2, 3, padding=1,
                                                                                          padding_mode="circular"),
    lambda: mg.nn.MaxPool1d(3, 2, 1, ceil_mode=True), lambda: mg.nn.AvgPool1d(3, 2, 1, True, False),
    lambda: mg.nn.LPPool1d(2, 3, 2), lambda: mg.nn.AdaptiveMaxPool1d(4), lambda: mg.nn.AdaptiveAvgPool1d(4)],
    ids=["conv", "conv_same_groups", "conv_reflect", "conv_circular", "max", "avg", "lp", "amax", "aavg"])
def test_finite_differences(make):
    layer = make()
    channels = getattr(layer, "in_channels", 4)
    assert mg.gradcheck(layer, _x((2, channels, 10), seed=5))


@pytest.mark.parametrize("make", [lambda: mg.nn.Conv1d(4, 6, 3, padding=1, padding_mode="replicate"),
                                  lambda: mg.nn.MaxPool1d(3, 2), lambda: mg.nn.AvgPool1d(3, 2, 1),
                                  lambda: mg.nn.AdaptiveMaxPool1d(3), lambda: mg.nn.LPPool1d(2, 2)],
                         ids=["conv", "max", "avg", "amax", "lp"])
def test_strict_backend(make):
    x = _x((2, 4, 9), "float32")
    strict_run(make(), [x], np.ones_like(make()(x)))


def test_each_backend(backend, xp):
    for dtype in ("float32", "float64"):
        x = xp.asarray(_x((2, 4, 9), dtype))
        for layer in (mg.nn.Conv1d(4, 6, 3, padding="same", padding_mode="circular", dtype=dtype),
                      mg.nn.MaxPool1d(3, 2, 1), mg.nn.AvgPool1d(2), mg.nn.LPPool1d(2, 3),
                      mg.nn.AdaptiveMaxPool1d(5), mg.nn.AdaptiveAvgPool1d(2)):
            y = layer(x)
            assert mg.backend.backend_of(y) == backend and y.dtype == np.dtype(dtype)
            dx = layer.backward(xp.ones_like(y))
            assert mg.backend.backend_of(dx) == backend and dx.dtype == np.dtype(dtype) and dx.shape == x.shape
        assert mg.backend.backend_of(F.conv1d(x, xp.asarray(_x((2, 4, 3), dtype)))) == backend
    if backend != "numpy":                            # a NumPy input for a layer on the GPU, a NumPy gradient
        with pytest.raises(mg.backend.BackendMismatchError, match="Conv1d"):
            mg.nn.Conv1d(4, 6, 3)(_x((2, 4, 9), "float32"))
        pool = mg.nn.MaxPool1d(3)
        pool(xp.asarray(_x((2, 4, 9))))
        with pytest.raises(mg.backend.BackendMismatchError, match="MaxPool1d: grad_out is a numpy array"):
            pool.backward(_x((2, 4, 3)))


@pytest.mark.parametrize("make,x,error,words", [
    (lambda: mg.nn.Conv1d(4, 6, 3), _x((2, 4, 5, 5)), ValueError, r"Conv1d: expected 2-D or 3-D input \(N, C, L\)"),
    (lambda: mg.nn.Conv1d(4, 6, 3), _x((2, 3, 9)), ValueError, r"Conv1d: expected input with 4 channels.*\(2, 3, 9\)"),
    (lambda: mg.nn.Conv1d(4, 6, 5), _x((2, 4, 3)), ValueError, r"Conv1d: kernel of size 5 with dilation 1 spans 5"),
    (lambda: mg.nn.Conv1d(4, 6, 3, padding=3, padding_mode="reflect"), _x((2, 4, 3)), ValueError,
     r"Conv1d: reflect padding"),
    (lambda: mg.nn.Conv1d(4, 6, 3), _x((2, 4, 9), "float32"), TypeError,
     r"Conv1d: input has dtype float32 but weight has dtype float64"),
    (lambda: mg.nn.Conv1d(4, 6, 3), np.ones((2, 4, 9), dtype=np.int64), TypeError, r"Conv1d: expected a floating"),
    (lambda: mg.nn.MaxPool1d(3), _x((2, 3, 4, 4)), ValueError, r"MaxPool1d: expected 2-D or 3-D input \(N, C, L\)"),
    (lambda: mg.nn.MaxPool1d(5), _x((2, 3, 3)), ValueError, r"MaxPool1d: input of shape \(2, 3, 3\) is too small"),
    (lambda: mg.nn.AvgPool1d(4, padding=1), _x((2, 3, 1)), ValueError, r"AvgPool1d: input of shape \(2, 3, 1\)"),
], ids=["ndim", "channels", "kernel", "reflect", "dtype", "int", "pool_ndim", "pool_small", "avg_small"])
def test_forward_errors_name_the_layer_in_1d_terms(make, x, error, words):
    layer = make().to(dtype="float64")
    with pytest.raises(error, match=words):
        layer(x)


@pytest.mark.parametrize("make,error,words", [
    (lambda: mg.nn.Conv1d(4, 6, 3, stride=2, padding="same"), ValueError,
     "Conv1d: padding='same' is not supported for strided convolutions"),
    (lambda: mg.nn.Conv1d(4, 6, 3, padding="full"), ValueError, "Conv1d: padding must be an int, a 1-tuple"),
    (lambda: mg.nn.Conv1d(4, 6, (3, 3)), TypeError, r"Conv1d: kernel_size must be an int or a 1-tuple"),
    (lambda: mg.nn.Conv1d(4, 6, 3, groups=4), ValueError, "Conv1d: out_channels=6 is not divisible by groups=4"),
    (lambda: mg.nn.Conv1d(4, 6, 3, padding_mode="mirror"), ValueError, "Conv1d: padding_mode must be one of"),
    (lambda: mg.nn.Conv1d(4, 6, 0), ValueError, "Conv1d: kernel_size must be positive"),
    (lambda: mg.nn.MaxPool1d(2, padding=2), ValueError, "MaxPool1d: padding should be at most half of the kernel"),
    (lambda: mg.nn.AvgPool1d((2, 2)), TypeError, "AvgPool1d: kernel_size must be an int or a 1-tuple"),
    (lambda: mg.nn.LPPool1d(0, 2), ValueError, "LPPool1d: norm_type must be a non-zero value"),
    (lambda: mg.nn.AdaptiveMaxPool1d(0), ValueError, "AdaptiveMaxPool1d: output_size must be positive"),
    (lambda: F.conv1d(_x((2, 4, 9)), _x((6, 4, 3, 1))), ValueError, r"conv1d: expected 3-D weight"),
    (lambda: F.conv1d(_x((2, 4, 9)), _x((6, 4, 3)), stride=2, padding="same"), ValueError, "conv1d: padding='same'"),
], ids=["same_stride", "bad_padding", "pair_kernel", "groups", "mode", "zero_kernel", "pool_pad", "avg_pair",
        "lp_zero", "amax_zero", "f_weight", "f_same"])
def test_argument_errors(make, error, words):
    with pytest.raises(error, match=words):
        make()


def test_backward_errors_name_the_layer():
    for layer, x, good in ((mg.nn.Conv1d(4, 6, 3), _x((2, 4, 9)), (2, 6, 7)), (mg.nn.MaxPool1d(3), _x((2, 4, 9)),
                                                                                (2, 4, 3)),
                           (mg.nn.AdaptiveAvgPool1d(3), _x((4, 9)), (4, 3))):
        layer.to(dtype="float64")
        name = type(layer).__name__
        with pytest.raises(RuntimeError, match=f"{name}: backward called before forward"):
            layer.backward(np.ones(good))
        layer(x)
        with pytest.raises(ValueError, match=rf"{name}: expected grad_out of shape \({', '.join(map(str, good))}\)"):
            layer.backward(np.ones(good + (1,)))
        layer(x)
        with pytest.raises(TypeError, match=rf"{name}: grad_out has dtype float32"):
            layer.backward(np.ones(good, dtype=np.float32))
