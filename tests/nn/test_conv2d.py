"""mg.nn.Conv2d against torch.nn.Conv2d: forward, input/weight/bias gradients, padding modes,
init, state dicts, finite differences, the strict backend and error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.strict_backend import assert_strict, strict_layer, to_strict

torch = pytest.importorskip("torch")

CASES = [
    dict(cin=3, cout=4, k=3, stride=1, padding=1, dilation=1, groups=1),
    dict(cin=4, cout=6, k=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
    dict(cin=4, cout=4, k=3, stride=2, padding=2, dilation=2, groups=4),
    dict(cin=2, cout=3, k=(2, 4), stride=1, padding="same", dilation=1, groups=1),
    dict(cin=2, cout=2, k=1, stride=3, padding=0, dilation=1, groups=1),
    dict(cin=3, cout=5, k=5, stride=1, padding="valid", dilation=1, groups=1),
]
MODES = ["zeros", "reflect", "replicate", "circular"]


def _pair_layers(case, mode, dtype, bias=True):
    mg.manual_seed(1)
    ours = mg.nn.Conv2d(case["cin"], case["cout"], case["k"], case["stride"], case["padding"], case["dilation"],
                        case["groups"], bias=bias, padding_mode=mode, dtype=dtype)
    ref = torch.nn.Conv2d(case["cin"], case["cout"], case["k"], case["stride"], case["padding"], case["dilation"],
                          case["groups"], bias=bias, padding_mode=mode, dtype=getattr(torch, dtype))
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "c{cin}o{cout}k{k}s{stride}p{padding}d{dilation}g{groups}".format(**c))
def test_conv2d_layer_matches_torch(case, mode, dtype):
    ours, ref = _pair_layers(case, mode, dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, case["cin"], 7, 6)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(x), ref(xt)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    tol = dict(rtol=1e-10, atol=1e-11) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)
    for ours_value, ref_value in [(y, yt), (dx, xt.grad), (ours.weight.grad, ref.weight.grad),
                                  (ours.bias.grad, ref.bias.grad)]:
        assert ours_value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours_value, ref_value.detach().numpy(), **tol)


def test_gradients_accumulate_until_zero_grad():
    conv = mg.nn.Conv2d(2, 3, 3, bias=True)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 5)).astype("float32")
    dy = np.ones((1, 3, 3, 3), "float32")
    conv(x)
    conv.backward(dy)
    once = conv.weight.grad.copy()
    conv(x)
    conv.backward(dy)
    np.testing.assert_allclose(conv.weight.grad, 2 * once, rtol=1e-6)
    conv.zero_grad(set_to_none=False)
    assert not conv.weight.grad.any() and not conv.bias.grad.any()
    conv.zero_grad()                                       # PyTorch's default: no gradient yet
    assert conv.weight.grad is None and conv.bias.grad is None


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_finite_differences(mode):
    conv = mg.nn.Conv2d(4, 4, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(1, 2), groups=2, padding_mode=mode)
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 6))
    assert mg.gradcheck(conv, x)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_strict_backend(mode):
    conv = strict_layer(mg.nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, padding_mode=mode))
    x = to_strict(np.random.default_rng(0).standard_normal((2, 2, 6, 5)).astype("float32"))
    y = conv(x)
    assert_strict(y, "output")
    dx = conv.backward(to_strict(np.ones(y.shape, "float32")))
    assert_strict(dx, "input gradient")
    assert_strict(conv.weight.grad, "weight gradient")
    assert_strict(conv.bias.grad, "bias gradient")


def test_default_init_matches_torch_distribution():
    """kaiming_uniform(a=sqrt(5)): weights and bias in U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    conv = mg.nn.Conv2d(8, 64, 3, groups=2)
    bound = 1 / np.sqrt(4 * 9)
    for array in (conv.weight.data, conv.bias.data):
        assert array.dtype == np.float32
        assert np.abs(array).max() <= bound and np.abs(array).max() > 0.9 * bound
    assert abs(conv.weight.data.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_manual_seed_makes_init_reproducible():
    mg.manual_seed(42)
    a = mg.nn.Conv2d(3, 4, 3)
    mg.manual_seed(42)
    b = mg.nn.Conv2d(3, 4, 3)
    c = mg.nn.Conv2d(3, 4, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


def test_state_dict_names_and_exchange_with_torch():
    ours = mg.nn.Conv2d(3, 4, 3, bias=True)
    ref = torch.nn.Conv2d(3, 4, 3)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    np.testing.assert_array_equal(ours.weight.data, ref.weight.detach().numpy())
    assert list(mg.nn.Conv2d(3, 4, 3, bias=False).state_dict()) == ["weight"]


def test_to_dtype_casts_params_and_grads():
    conv = mg.nn.Conv2d(1, 2, 3)
    conv(np.ones((1, 1, 4, 4), "float32"))
    conv.backward(np.ones((1, 2, 2, 2), "float32"))
    conv.to(dtype="float64")
    assert conv.weight.data.dtype == np.float64 and conv.weight.grad.dtype == np.float64
    assert conv(np.zeros((1, 1, 4, 4))).dtype == np.float64


@pytest.mark.parametrize("make,x,error,words", [
    (lambda: mg.nn.Conv2d(3, 8, 3), np.zeros((1, 1, 28, 28), "float32"), ValueError,
     ["Conv2d", "expected input with 3 channels", "(8, 3, 3, 3)", "(1, 1, 28, 28)"]),
    (lambda: mg.nn.Conv2d(1, 8, 5), np.zeros((1, 1, 3, 3), "float32"), ValueError,
     ["Conv2d", "kernel of size (5, 5)", "padded input (3, 3)"]),
    (lambda: mg.nn.Conv2d(1, 8, 3), np.zeros((28, 28), "float32"), ValueError,
     ["Conv2d", "expected 3-D or 4-D input (N, C, H, W) or (C, H, W)", "(28, 28)"]),
    (lambda: mg.nn.Conv2d(1, 8, 3), np.zeros((1, 1, 28, 28), "uint8"), TypeError,
     ["Conv2d", "floating-point input", "uint8"]),
    (lambda: mg.nn.Conv2d(1, 8, 3), np.zeros((1, 1, 28, 28), "float64"), TypeError,
     ["Conv2d", "input has dtype float64", "weight has dtype float32"]),
    (lambda: mg.nn.Conv2d(1, 8, 3, padding=3, padding_mode="reflect"), np.zeros((1, 1, 3, 3), "float32"),
     ValueError, ["Conv2d", "reflect padding", "smaller than the input's spatial size (3, 3)"]),
    (lambda: mg.nn.Conv2d(1, 8, 3), [[1.0]], TypeError, ["Conv2d", "NumPy or CuPy array", "list"]),
])
def test_forward_errors_name_layer_and_shapes(make, x, error, words):
    conv = make()
    with pytest.raises(error) as info:
        conv(x)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(in_channels=3, out_channels=8, kernel_size=3, stride=0), ValueError, ["Conv2d", "stride", "positive"]),
    (dict(in_channels=3, out_channels=8, kernel_size=3, groups=2), ValueError,
     ["Conv2d", "in_channels=3", "not divisible by groups=2"]),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), ValueError,
     ["Conv2d", "out_channels=6", "not divisible by groups=4"]),
    (dict(in_channels=3, out_channels=8, kernel_size=0), ValueError, ["Conv2d", "kernel_size", "positive"]),
    (dict(in_channels=3, out_channels=8, kernel_size=3, padding_mode="mirror"), ValueError,
     ["Conv2d", "padding_mode", "'mirror'"]),
    (dict(in_channels=3, out_channels=8, kernel_size=3, stride=2, padding="same"), ValueError,
     ["Conv2d", "padding='same'", "strided"]),
    (dict(in_channels=0, out_channels=8, kernel_size=3), ValueError, ["Conv2d", "in_channels", "positive"]),
])
def test_constructor_errors(kwargs, error, words):
    with pytest.raises(error) as info:
        mg.nn.Conv2d(**kwargs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


def test_backward_errors():
    conv = mg.nn.Conv2d(1, 2, 3)
    with pytest.raises(RuntimeError, match="Conv2d: backward called before forward"):
        conv.backward(np.zeros((1, 2, 2, 2), "float32"))
    conv(np.zeros((1, 1, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"Conv2d: expected grad_out of shape \(1, 2, 2, 2\).*got \(1, 2, 3, 3\)"):
        conv.backward(np.zeros((1, 2, 3, 3), "float32"))
    conv(np.zeros((1, 1, 4, 4), "float32"))
    conv.backward(np.zeros((1, 2, 2, 2), "float32"))
    with pytest.raises(RuntimeError, match="twice after one forward"):
        conv.backward(np.zeros((1, 2, 2, 2), "float32"))


def test_conv2d_few_channels_finite_differences():
    """Few input channels take the batch-innermost kernel (kernels/cpu_batchlast)."""
    from minigrad.functional.conv import make_geometry
    from minigrad.kernels import cpu_batchlast, dispatch
    conv = mg.nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(1, 2), dtype="float64")
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6))
    assert dispatch.cpu_kernel(make_geometry(x.shape, conv.weight.shape, (1, 2), (2, 1), (1, 2), 1)) is cpu_batchlast
    assert mg.gradcheck(conv, x)


def test_conv2d_few_channels_wide_output_finite_differences():
    """Few input channels and outputs at least 16 wide take the sample-major kernel (kernels/cpu_samplemajor)."""
    from minigrad.functional.conv import make_geometry
    from minigrad.kernels import cpu_samplemajor, dispatch
    conv = mg.nn.Conv2d(2, 3, (3, 2), padding=(1, 1), dilation=(1, 2), dtype="float64")
    x = np.random.default_rng(4).standard_normal((2, 2, 4, 17))
    assert dispatch.cpu_kernel(make_geometry(x.shape, conv.weight.shape, 1, 1, (1, 2), 1)) is cpu_samplemajor
    assert mg.gradcheck(conv, x)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_unbatched_input_like_pytorch(padding_mode):
    """(C, H, W) in, (O, OH, OW) out, gradients of the same unbatched shapes (float64, 1e-10)."""
    torch = pytest.importorskip("torch")
    conv = mg.nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode, dtype="float64")
    ref = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(conv.weight.data))
        ref.bias.copy_(torch.tensor(conv.bias.data))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 6))
    y = conv(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(dy))
    assert y.shape == tuple(ty.shape) == (4, 7, 6) and dx.shape == x.shape
    for ours, theirs in ((y, ty.detach()), (dx, tx.grad), (conv.weight.grad, ref.weight.grad), (conv.bias.grad, ref.bias.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mg.functional.conv2d(x, conv.weight.data, conv.bias.data, padding=1) if padding_mode == "zeros"
                               else y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"Conv2d: expected grad_out of shape \(4, 7, 6\)"):
        conv(x)
        conv.backward(dy[None])
