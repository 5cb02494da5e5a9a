"""ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, CircularPad2d and mg.functional.pad: output and
input gradient vs PyTorch (float64 exact, float32), negative padding (crops), 2-D to 5-D inputs, the padding code
Conv2d's padding_mode shares, finite differences, both backends, the strict backend and the error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
TF = torch.nn.functional

PADS = [0, 1, 3, (1, 2, 3, 4), (0, 2, 1, 0), (-1, 2, 0, -2), (2, -1, -3, 1), (-2, -1, -1, -2), (5, 0, 0, 4),
        (-3, -3, 0, 0)]
CLASSES = ["ZeroPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"]


def _x(shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _pair(name, padding):
    args = (padding, 1.25) if name == "ConstantPad2d" else (padding,)
    return getattr(mg.nn, name)(*args), getattr(torch.nn, name)(*args)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 5, 6), (0, 3, 5, 6)], ids=str)
@pytest.mark.parametrize("padding", PADS, ids=str)
@pytest.mark.parametrize("name", CLASSES + ["ConstantPad2d"])
def test_pad_layer_matches_torch(name, padding, shape, dtype):
    layer, module = _pair(name, padding)
    x = _x(shape, dtype)
    try:
        module(torch.from_numpy(x.copy()))
    except RuntimeError:                                   # e.g. reflect pad 5 of a 5-row input
        with pytest.raises(ValueError, match=name):
            layer(x)
        return
    y = layer(x)
    dy = _x(y.shape, dtype, seed=1)
    expected, (expected_dx,) = torch_run(module, [x], dy)
    assert_close(y, expected, dtype, "output")
    assert_close(layer.backward(dy), expected_dx, dtype, "input gradient")


@pytest.mark.parametrize("shape", [(5, 6), (2, 2, 3, 5, 6)], ids=str)
def test_constant_pads_take_any_rank_from_two_like_torch(shape):
    for layer, module in (_pair("ZeroPad2d", (1, -2, 0, 3)), _pair("ConstantPad2d", 2)):
        x = _x(shape)
        dy = _x(layer(x).shape, seed=1)
        expected, (expected_dx,) = torch_run(module, [x], dy)
        assert_close(layer(x), expected, "float64", "output")
        assert_close(layer.backward(dy), expected_dx, "float64", "input gradient")


def test_negative_padding_semantics():
    """A crop: constant pads crop then fill; reflect and replicate read from the whole input; circular wraps what
    is left after cropping."""
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    row = lambda cls, p: getattr(mg.nn, cls)(p)(x)[0, 0, 0].tolist()      # noqa: E731
    assert row("ZeroPad2d", (-1, 2, 0, 0)) == [1, 2, 3, 4, 0, 0]
    assert row("ReflectionPad2d", (-2, 3, 0, 0)) == [2, 3, 4, 3, 2, 1]
    assert row("ReplicationPad2d", (2, -3, 0, 0)) == [0, 0, 0, 1]
    assert row("CircularPad2d", (-1, 2, 0, 0)) == [1, 2, 3, 4, 1, 2]
    assert row("CircularPad2d", (2, -1, 0, 0)) == [2, 3, 0, 1, 2, 3]


@pytest.mark.parametrize("name", CLASSES + ["ConstantPad2d"])
def test_pad_finite_differences(name):
    layer, _ = _pair(name, (2, -1, 1, 3))
    assert mg.gradcheck(layer, _x((2, 2, 4, 5)))


def test_pad_layers_on_each_backend(backend, xp):
    x = _x((2, 3, 5, 6), "float32")
    for name in CLASSES + ["ConstantPad2d"]:
        layer, reference = _pair(name, (2, -1, 1, 3))[0], _pair(name, (2, -1, 1, 3))[0]
        y = layer(xp.asarray(x))
        assert mg.backend.backend_of(y) == backend and y.dtype == np.float32
        np.testing.assert_array_equal(mg.backend.to_backend(y, "numpy"), reference(x))
        dy = _x(y.shape, "float32", seed=1)
        dx = layer.backward(xp.asarray(dy))
        assert mg.backend.backend_of(dx) == backend and dx.dtype == np.float32
        np.testing.assert_allclose(mg.backend.to_backend(dx, "numpy"), reference.backward(dy), rtol=1e-6)
    if backend != "numpy":                            # a NumPy gradient for a layer that ran on the GPU
        layer = mg.nn.ReflectionPad2d(1)
        layer(xp.asarray(x))
        with pytest.raises(mg.backend.BackendMismatchError, match="ReflectionPad2d: grad_out is a numpy array"):
            layer.backward(_x((2, 3, 7, 8), "float32"))


@pytest.mark.parametrize("name", CLASSES + ["ConstantPad2d"])
def test_pad_strict_backend(name):
    x = _x((2, 3, 5, 6), "float32")
    layer = _pair(name, (1, 2, -1, 2))[0]
    strict_run(layer, [x], np.ones_like(layer(x)))


def test_pad_layers_share_conv_padding_code():
    """ReflectionPad2d + Conv2d(padding=0) is Conv2d(padding_mode='reflect'), output and gradients."""
    conv = mg.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="reflect", dtype="float64")
    plain = mg.nn.Conv2d(3, 4, 3, dtype="float64")
    plain.load_state_dict(conv.state_dict())
    pad = mg.nn.ReflectionPad2d((2, 2, 1, 1))
    x, = (_x((2, 3, 6, 7)),)
    y = conv(x)
    np.testing.assert_allclose(plain(pad(x)), y, rtol=1e-13)
    dy = _x(y.shape, seed=1)
    np.testing.assert_allclose(pad.backward(plain.backward(dy)), conv.backward(dy), rtol=1e-12)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad,shape", [((1, 2), (2, 3, 6)), ((1, 2, 3, 1), (2, 3, 5, 6)), ((1, -1, 2, -2), (3, 5, 6)),
                                       ((2, 0), (3, 6)), ((-1, 2), (2, 3, 6)), ((0, 1, 1, 0), (2, 3, 5, 6))], ids=str)
def test_functional_pad_matches_torch(pad, shape, mode):
    x = _x(shape)
    values = (None, 2.5) if mode == "constant" else (None,)
    for value in values:
        try:
            expected = TF.pad(torch.from_numpy(x.copy()), pad, mode=mode, value=value).numpy()
        except (RuntimeError, NotImplementedError):
            with pytest.raises((ValueError, NotImplementedError), match="pad"):
                mg.functional.pad(x, pad, mode=mode, value=value)
            continue
        np.testing.assert_array_equal(mg.functional.pad(x, pad, mode=mode, value=value), expected)


def test_functional_pad_of_a_constant_two_pad_on_4d_and_refusals():
    x = _x((2, 3, 4, 5))
    np.testing.assert_array_equal(mg.functional.pad(x, (1, 2), value=-1.0),
                                  TF.pad(torch.from_numpy(x.copy()), (1, 2), value=-1.0).numpy())
    with pytest.raises(NotImplementedError, match=r"pad: 6 pad entries are not implemented"):
        mg.functional.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"pad: padding length must be divisible by 2"):
        mg.functional.pad(x, (1,))
    with pytest.raises(ValueError, match=r"pad: reflect padding with 2 entries takes a 2-D or 3-D input"):
        mg.functional.pad(x, (1, 2), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: padding mode 'reflect' doesn't take a value"):
        mg.functional.pad(x, (1, 1, 1, 1), mode="reflect", value=1.0)
    with pytest.raises(ValueError, match=r"pad: mode must be one of"):
        mg.functional.pad(x, (1, 1), mode="zeros")


def test_pad_errors_name_the_layer():
    with pytest.raises(TypeError, match=r"ZeroPad2d: padding must be an int or a 4-tuple of ints \(left, right, top, "
                                        r"bottom\), got \(1, 2\)"):
        mg.nn.ZeroPad2d((1, 2))
    with pytest.raises(TypeError, match=r"ConstantPad2d: value must be a number"):
        mg.nn.ConstantPad2d(1, "a")
    with pytest.raises(ValueError, match=r"ReflectionPad2d: reflect padding \(0, 0, 6, 0\).*smaller than the input's "
                                         r"spatial size \(5, 6\)"):
        mg.nn.ReflectionPad2d((6, 0, 0, 0))(_x((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"CircularPad2d: circular padding .* wrap around more than once"):
        mg.nn.CircularPad2d((7, 0, 0, 0))(_x((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"ReplicationPad2d: padding .* gives an output of size \(5, 0\); it must be "
                                         r"at least 1"):
        mg.nn.ReplicationPad2d((-6, 0, 0, 0))(_x((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding .* gives an output of size \(5, -1\)"):
        mg.nn.ZeroPad2d((-4, -3, 0, 0))(_x((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"ReplicationPad2d: expected 3-D or 4-D input .* got 2-D"):
        mg.nn.ReplicationPad2d(1)(_x((5, 6)))
    with pytest.raises(ValueError, match=r"ZeroPad2d: expected an input of at least 2 dimensions"):
        mg.nn.ZeroPad2d(1)(_x((5,)))
    with pytest.raises(TypeError, match=r"ReflectionPad2d: expected a floating-point input"):
        mg.nn.ReflectionPad2d(1)(np.ones((1, 2, 3, 3), dtype=int))
    layer = mg.nn.ZeroPad2d(1)
    layer(_x((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"ZeroPad2d: expected grad_out of shape \(1, 1, 4, 4\)"):
        layer.backward(_x((1, 1, 2, 2)))
    for name, args in (("ZeroPad2d", (1,)), ("ConstantPad2d", ((1, 2, 3, 4), 0.5)), ("ReflectionPad2d", (2,)),
                       ("CircularPad2d", ((1, 0, 2, 1),))):
        assert repr(getattr(mg.nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))
