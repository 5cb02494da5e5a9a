"""mg.nn.ConvTranspose2d vs torch.nn.ConvTranspose2d: forward, input/weight/bias gradients over
stride, padding, output_padding, groups and dilation; init; output_size; finite differences;
the strict backend; error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run

torch = pytest.importorskip("torch")

CASES = [  # in, out, kernel, stride, padding, output_padding, groups, dilation, (H, W)
    (3, 4, 3, 1, 0, 0, 1, 1, (5, 6)),
    (3, 4, 3, 2, 1, 1, 1, 1, (5, 4)),
    (4, 6, (3, 2), (2, 3), (1, 0), (1, 2), 2, 1, (4, 5)),
    (4, 4, 3, 2, 2, 0, 4, 2, (5, 5)),            # depthwise, dilation
    (2, 3, (2, 4), 1, (1, 2), (1, 0), 1, (2, 1), (4, 6)),  # output_padding >= stride, < dilation
    (6, 3, 4, 3, 1, 2, 3, (1, 2), (3, 4)),
    (2, 2, 1, 2, 0, 1, 1, 1, (3, 3)),
]


def _pair(case, dtype, bias=True):
    cin, cout, k, s, p, op, g, d, _ = case
    mg.manual_seed(1)
    ours = mg.nn.ConvTranspose2d(cin, cout, k, s, p, op, g, bias, d, dtype=dtype)
    ref = torch.nn.ConvTranspose2d(cin, cout, k, s, p, op, g, bias, d, dtype=getattr(torch, dtype))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ours.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_conv_transpose_matches_torch(case, dtype):
    _check_against_torch(case, dtype)


@pytest.mark.parametrize("case", CASES[1:3] + CASES[4:5], ids=str)
def test_conv_transpose_reference_conv_path_matches_torch(case, conv_algorithm):
    conv_algorithm("reference")  # the plain im2col + matmul kernels
    _check_against_torch(case, "float64")


def _check_against_torch(case, dtype):
    ours, ref = _pair(case, dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, case[0]) + case[-1]).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    assert_close(y, yt, dtype, "output")
    assert_close(ours.backward(dy), xt.grad, dtype, "input gradient")
    assert_close(ours.weight.grad, ref.weight.grad, dtype, "weight gradient")
    assert_close(ours.bias.grad, ref.bias.grad, dtype, "bias gradient")


def test_conv_transpose_without_bias_and_output_size_argument():
    ours, ref = _pair((3, 2, 3, 2, 1, 0, 1, 1, (4, 5)), "float64", bias=False)
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    for size in [(7, 9), (8, 10), (2, 2, 8, 9)]:
        expected = ref(torch.tensor(x), output_size=list(size))
        assert_close(ours(x, size), expected, "float64", f"output_size={size}")  # Layer.__call__ takes positionals
        ours.backward(np.ones(expected.shape))
    assert ours.bias is None and list(ours.state_dict()) == ["weight"]


def test_conv_transpose_init_matches_torch_bounds():
    mg.manual_seed(0)
    layer = mg.nn.ConvTranspose2d(8, 6, (3, 2), groups=2)
    assert layer.weight.shape == (8, 3, 3, 2) and layer.weight.dtype == np.float32
    bound = 1 / np.sqrt(3 * 3 * 2)  # fan_in = weight.size(1) * kh * kw, as torch computes it
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.8 * bound
    assert np.abs(layer.bias.data).max() <= bound


def test_conv_transpose_is_the_adjoint_of_conv2d():
    rng = np.random.default_rng(4)
    up = mg.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dtype="float64", bias=False)
    x = rng.standard_normal((2, 4, 5, 5))
    y = up(x)
    z = rng.standard_normal(y.shape)
    conv_z = mg.functional.conv2d(z, up.weight.data, stride=2, padding=1, groups=2)
    np.testing.assert_allclose((y * z).sum(), (x * conv_z).sum(), rtol=1e-12)


FD_CASES = [(2, 4, (3, 2), (2, 1), (1, 0), (1, 0), 2, 1, (3, 4)), (2, 3, 2, 1, 0, 1, 1, 2, (3, 3))]


@pytest.mark.parametrize("case", FD_CASES, ids=str)
def test_conv_transpose_finite_differences(case):
    ours, _ = _pair(case, "float64")
    assert mg.gradcheck(ours, np.random.default_rng(5).standard_normal((2, case[0]) + case[-1]))


@pytest.mark.parametrize("case", FD_CASES, ids=str)
def test_conv_transpose_strict_backend(case):
    ours, _ = _pair(case, "float32")
    x = np.random.default_rng(6).standard_normal((2, case[0]) + case[-1]).astype("float32")
    y = ours(x)
    strict_run(ours, [x], np.ones(y.shape, "float32"))


def test_conv_transpose_on_each_backend(backend, xp):
    layer = mg.nn.ConvTranspose2d(2, 3, 3, stride=2, output_padding=1)
    x = xp.asarray(np.random.default_rng(7).standard_normal((1, 2, 4, 4)).astype("float32"))
    y = layer(x)
    assert y.shape == (1, 3, 10, 10)
    dx = layer.backward(xp.ones_like(y))
    assert mg.backend.backend_of(dx) == backend and mg.backend.backend_of(layer.weight.grad) == backend


def test_conv_transpose_errors():
    with pytest.raises(ValueError, match="output_padding must be smaller than either stride or dilation"):
        mg.nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="in_channels=3 is not divisible by groups=2"):
        mg.nn.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="only padding_mode='zeros'"):
        mg.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    layer = mg.nn.ConvTranspose2d(3, 2, 3)
    with pytest.raises(ValueError, match=r"expected input with 3 channels \(weight of shape \(3, 2, 3, 3\), "
                                         r"groups=1\), got input of shape \(1, 2, 5, 5\)"):
        layer(np.ones((1, 2, 5, 5), "float32"))
    with pytest.raises(ValueError, match=r"ConvTranspose2d: expected 3-D or 4-D input \(N, C, H, W\) or \(C, H, W\), "
                                         r"got 2-D"):
        layer(np.ones((5, 5), "float32"))
    with pytest.raises(TypeError, match="floating-point input.*int64"):
        layer(np.ones((1, 3, 5, 5), "int64"))
    with pytest.raises(TypeError, match="input has dtype float64 but weight has dtype float32"):
        layer(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"output_size \(9, 9\) is not reachable.*between \(7, 7\) and \(7, 7\)"):
        layer.forward(np.ones((1, 3, 5, 5), "float32"), output_size=(9, 9))
    with pytest.raises(ValueError, match="empty output"):
        mg.nn.ConvTranspose2d(3, 2, 1, padding=1)(np.ones((1, 3, 1, 1), "float32"))
    layer(np.ones((1, 3, 5, 5), "float32"))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(1, 2, 7, 7\)"):
        layer.backward(np.ones((1, 2, 5, 5), "float32"))


def test_keyword_arguments_reach_forward_through_call():
    """The U-Net idiom: m(x, output_size=...) is m.forward(x, output_size=...), as in PyTorch."""
    m = mg.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, dtype="float64")
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4))
    y = m(x, output_size=[8, 8])
    assert y.shape == (1, 4, 8, 8)
    ref = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(m.weight.data))
        ref.bias.copy_(torch.tensor(m.bias.data))
    np.testing.assert_allclose(y, ref(torch.tensor(x), output_size=[8, 8]).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_unbatched_input_with_output_size_like_pytorch():
    m = mg.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, dtype="float64")
    ref = torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(m.weight.data))
        ref.bias.copy_(torch.tensor(m.bias.data))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 4))
    y = m(x, output_size=[8, 8])
    dy = rng.standard_normal(y.shape)
    dx = m.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx, output_size=[8, 8])
    ty.backward(torch.tensor(dy))
    assert y.shape == (4, 8, 8) and dx.shape == (3, 4, 4)
    for ours, theirs in ((y, ty.detach()), (dx, tx.grad), (m.weight.grad, ref.weight.grad), (m.bias.grad, ref.bias.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)
