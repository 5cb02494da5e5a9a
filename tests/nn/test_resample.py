"""Upsample / interpolate (nearest, nearest-exact, (bi)linear) and PixelShuffle / PixelUnshuffle: output and input
gradient vs PyTorch (float64 at 1e-10, float32 loose) over every option, PyTorch's index arithmetic at the edges
(non-integer and downscaling factors, recompute_scale_factor, out == in), finite differences, both backends,
the strict backend and the error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
TF = torch.nn.functional

MODES = [("nearest", None), ("nearest-exact", None), ("bilinear", None), ("bilinear", False), ("bilinear", True)]
TARGETS = [{"size": 1}, {"size": 4}, {"size": (3, 11)}, {"size": (13, 7)}, {"size": (14, 16)}, {"scale_factor": 2},
           {"scale_factor": 3}, {"scale_factor": 1.5}, {"scale_factor": 0.5}, {"scale_factor": 1.3},
           {"scale_factor": (1.7, 0.6)}, {"scale_factor": (0.34, 2.2)}, {"scale_factor": 2.1},
           {"scale_factor": 1.5, "recompute_scale_factor": True}, {"scale_factor": (0.7, 2.6), "recompute_scale_factor": True}]


def _x(shape, dtype="float64", seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _check(layer, reference, x, dtype):
    try:
        reference(torch.from_numpy(x.copy()))
    except RuntimeError:                                   # e.g. an output size of 0: refused, naming the layer
        with pytest.raises(ValueError, match=type(layer).__name__):
            layer(x)
        return
    y = layer(x)
    dy = _x(y.shape, dtype, seed=1)
    expected, (expected_dx,) = torch_run(reference, [x], dy)
    assert_close(y, expected, dtype, "output")
    assert_close(layer.backward(dy), expected_dx, dtype, "input gradient")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode,corners", MODES, ids=[f"{m}-{c}" for m, c in MODES])
@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (1, 2, 1, 5), (2, 1, 9, 4)], ids=str)
def test_upsample_matches_torch(shape, target, mode, corners, dtype):
    layer = mg.nn.Upsample(mode=mode, align_corners=corners, **target)
    _check(layer, lambda t: TF.interpolate(t, mode=mode, align_corners=corners, **target), _x(shape, dtype), dtype)


@pytest.mark.parametrize("mode,corners", [("nearest", None), ("nearest-exact", None), ("linear", False),
                                          ("linear", True)])
@pytest.mark.parametrize("target", [{"size": 1}, {"size": 12}, {"size": (5,)}, {"scale_factor": 1.5},
                                    {"scale_factor": (0.5,)}, {"scale_factor": 2.2, "recompute_scale_factor": True}],
                         ids=str)
def test_one_dimensional_resize_matches_torch(target, mode, corners):
    layer = mg.nn.Upsample(mode=mode, align_corners=corners, **target)
    _check(layer, lambda t: TF.interpolate(t, mode=mode, align_corners=corners, **target), _x((2, 3, 7)), "float64")


def test_torch_index_arithmetic_at_the_edges():
    """nearest: floor(dst * scale) with the float32 scale 1/scale_factor (not in/out), a copy when out == in and
    a halving when out == 2 in whatever the factor; bilinear: (dst + 0.5) * scale - 0.5 clamped at 0."""
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    up = lambda **kw: mg.functional.interpolate(x, **kw)[0, 0, 0]   # noqa: E731
    np.testing.assert_array_equal(up(scale_factor=(1, 1.5)), [0, 0, 1, 2, 2, 3, 4])     # step 1/1.5, not 5/7
    np.testing.assert_array_equal(up(size=(1, 7)), [0, 0, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(up(scale_factor=(1, 1.1)), [0, 1, 2, 3, 4])           # out == in: a copy
    np.testing.assert_array_equal(up(scale_factor=(1, 2.1)), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])   # out == 2 in
    np.testing.assert_array_equal(up(scale_factor=(1, 0.5)), [0, 2])
    np.testing.assert_array_equal(up(scale_factor=(1, 1.5), mode="nearest-exact"), [0, 1, 1, 2, 3, 3, 4])
    np.testing.assert_allclose(up(scale_factor=(1, 2), mode="bilinear"),
                               [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 4])
    np.testing.assert_allclose(up(size=(1, 3), mode="bilinear", align_corners=True), [0, 2, 4])
    np.testing.assert_allclose(up(size=(1, 1), mode="bilinear", align_corners=True), [0])
    np.testing.assert_allclose(up(size=(1, 1), mode="bilinear"), [2])                   # (0.5 * 5 - 0.5)


def test_interpolate_is_the_layer_forward_and_matches_torch():
    x = _x((2, 3, 5, 6))
    for kwargs in ({"size": (4, 9), "mode": "bilinear", "align_corners": True}, {"scale_factor": 1.5},
                   {"scale_factor": (0.5, 2), "mode": "nearest-exact"}):
        y = mg.functional.interpolate(x, **kwargs)
        assert np.array_equal(y, mg.nn.Upsample(**kwargs)(x))
        np.testing.assert_allclose(y, TF.interpolate(torch.tensor(x), **kwargs).numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cls,kwargs", [("UpsamplingNearest2d", {"scale_factor": 2}),
                                        ("UpsamplingNearest2d", {"size": (5, 11)}),
                                        ("UpsamplingBilinear2d", {"scale_factor": 1.5}),
                                        ("UpsamplingBilinear2d", {"size": 9})])
def test_torch_aliases(cls, kwargs):
    layer = getattr(mg.nn, cls)(**kwargs)
    module = getattr(torch.nn, cls)(**kwargs)
    _check(layer, module, _x((2, 3, 4, 6)), "float64")
    assert repr(layer) == repr(module)


@pytest.mark.parametrize("kwargs", [{"scale_factor": 1.5, "mode": "bilinear"}, {"size": (5, 9)},
                                    {"scale_factor": (0.6, 1.7), "mode": "nearest-exact"},
                                    {"scale_factor": 2, "mode": "bilinear", "align_corners": True}], ids=str)
def test_upsample_finite_differences(kwargs):
    assert mg.gradcheck(mg.nn.Upsample(**kwargs), _x((2, 2, 4, 5)))


def test_upsample_on_each_backend(backend, xp):
    x = _x((2, 3, 5, 6), "float32")
    for kwargs in ({"scale_factor": 2}, {"scale_factor": 1.5, "mode": "bilinear"}, {"size": (3, 4), "mode": "bilinear",
                                                                                    "align_corners": True}):
        layer, reference = mg.nn.Upsample(**kwargs), mg.nn.Upsample(**kwargs)
        y = layer(xp.asarray(x))
        assert mg.backend.backend_of(y) == backend and y.dtype == np.float32
        np.testing.assert_allclose(mg.backend.to_backend(y, "numpy"), reference(x), rtol=1e-6)
        dy = _x(y.shape, "float32", seed=1)
        dx = layer.backward(xp.asarray(dy))
        assert mg.backend.backend_of(dx) == backend and dx.dtype == np.float32
        np.testing.assert_allclose(mg.backend.to_backend(dx, "numpy"), reference.backward(dy), rtol=1e-5, atol=1e-6)
    if backend != "numpy":                            # a NumPy gradient for a layer that ran on the GPU
        layer = mg.nn.Upsample(scale_factor=2)
        layer(xp.asarray(x))
        with pytest.raises(mg.backend.BackendMismatchError, match="Upsample: grad_out is a numpy array"):
            layer.backward(_x((2, 3, 10, 12), "float32"))


@pytest.mark.parametrize("layer", [mg.nn.Upsample(scale_factor=1.5, mode="bilinear"), mg.nn.Upsample(scale_factor=2),
                                   mg.nn.PixelShuffle(2), mg.nn.PixelUnshuffle(2)], ids=repr)
def test_strict_backend(layer):
    x = _x((2, 4, 6, 8), "float32")
    y = layer(x)
    strict_run(layer, [x], np.ones_like(y))


def test_upsample_errors():
    with pytest.raises(NotImplementedError, match=r"Upsample: mode='bicubic' is not implemented"):
        mg.nn.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(NotImplementedError, match=r"mode='area'.*AdaptiveAvgPool2d"):
        mg.functional.interpolate(_x((1, 1, 4, 4)), size=2, mode="area")
    with pytest.raises(ValueError, match=r"Upsample: mode must be one of .*got 'cubic'"):
        mg.nn.Upsample(scale_factor=2, mode="cubic")
    with pytest.raises(ValueError, match=r"align_corners option can only be set with the interpolating modes"):
        mg.nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match=r"only one of size or scale_factor"):
        mg.nn.Upsample(size=3, scale_factor=2)
    with pytest.raises(ValueError, match=r"either size or scale_factor"):
        mg.nn.Upsample()
    with pytest.raises(ValueError, match=r"recompute_scale_factor is not meaningful with an explicit size"):
        mg.nn.Upsample(size=3, recompute_scale_factor=True)
    with pytest.raises(TypeError, match=r"size must be an int or a tuple of ints, got \(3.0, 4\)"):
        mg.nn.Upsample(size=(3.0, 4))
    with pytest.raises(NotImplementedError, match=r"antialias=True"):
        mg.functional.interpolate(_x((1, 1, 4, 4)), scale_factor=0.5, mode="bilinear", antialias=True)
    layer = mg.nn.Upsample(scale_factor=0.1)
    with pytest.raises(ValueError, match=r"Upsample: input and output sizes should be greater than 0.*\(5, 6\).*"
                                         r"\(0, 0\)"):
        layer(_x((1, 1, 5, 6)))
    with pytest.raises(ValueError, match=r"Upsample: input with spatial dimensions \[5, 6\] and size \(3,\)"):
        mg.nn.Upsample(size=(3,))(_x((1, 1, 5, 6)))
    with pytest.raises(NotImplementedError, match=r"Upsample: got 3-D input .* mode='bilinear' needs 4-D"):
        mg.nn.Upsample(scale_factor=2, mode="bilinear")(_x((1, 2, 5)))
    with pytest.raises(ValueError, match=r"Upsample: expected 3-D \(N, C, W\) or 4-D .* got 5-D"):
        mg.nn.Upsample(scale_factor=2)(_x((1, 1, 2, 3, 4)))
    with pytest.raises(TypeError, match=r"Upsample: expected a floating-point input"):
        mg.nn.Upsample(scale_factor=2)(np.ones((1, 1, 2, 2), dtype=int))
    layer = mg.nn.Upsample(scale_factor=2)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(_x((1, 1, 4, 4)))
    layer(_x((1, 1, 2, 3)))
    with pytest.raises(ValueError, match=r"Upsample: expected grad_out of shape \(1, 1, 4, 6\).*got \(1, 1, 4, 4\)"):
        layer.backward(_x((1, 1, 4, 4)))
    layer(_x((1, 1, 2, 3)))
    with pytest.raises(TypeError, match=r"Upsample: grad_out has dtype float32 but input has dtype float64"):
        layer.backward(_x((1, 1, 4, 6), "float32"))


def test_upsample_repr_and_attributes_like_torch():
    for kwargs in ({"scale_factor": 2}, {"size": (3, 4), "mode": "bilinear"}, {"scale_factor": (1.5, 2.0)}):
        ours, theirs = mg.nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs)
        assert repr(ours) == repr(theirs)
        assert (ours.size, ours.scale_factor, ours.mode, ours.align_corners) == (
            theirs.size, theirs.scale_factor, theirs.mode, theirs.align_corners)


def test_float32_stays_float32_and_no_gradient_leaks_between_calls():
    layer = mg.nn.Upsample(scale_factor=1.5, mode="bilinear")
    x = _x((2, 3, 4, 4), "float32")
    y = layer(x)
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    first = layer(x)
    layer(_x((1, 1, 2, 2), "float32"))                                # a second geometry
    assert np.array_equal(layer(x), first)                            # the cached plan is per geometry


# -- pixel shuffle ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("factor", [1, 2, 3])
@pytest.mark.parametrize("lead", [(2,), (), (2, 2)], ids=str)
def test_pixel_shuffle_and_unshuffle_match_torch(lead, factor, dtype):
    x = _x(lead + (36, 3, 4), dtype)
    _check(mg.nn.PixelShuffle(factor), torch.nn.PixelShuffle(factor), x, dtype)
    x = _x(lead + (2, 6, 12), dtype)
    _check(mg.nn.PixelUnshuffle(factor), torch.nn.PixelUnshuffle(factor), x, dtype)


def test_pixel_shuffle_layout_and_inverse():
    x = np.arange(8.0).reshape(1, 8, 1, 1)                            # channels c*4 + i*2 + j
    y = mg.functional.pixel_shuffle(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(y[0, 1], [[4, 5], [6, 7]])
    z = _x((2, 3, 6, 9))
    assert np.array_equal(mg.functional.pixel_shuffle(mg.functional.pixel_unshuffle(z, 3), 3), z)
    shuffle = mg.nn.PixelShuffle(3)
    y = shuffle(mg.functional.pixel_unshuffle(z, 3))
    assert np.array_equal(shuffle.backward(z), mg.functional.pixel_unshuffle(z, 3))   # dx: the inverse permutation


def test_pixel_unshuffle_of_an_empty_batch_has_the_documented_shape():
    """torch returns an empty input unchanged ((0, 2, 6, 12)); the output is (0, C r^2, H/r, W/r)."""
    layer = mg.nn.PixelUnshuffle(2)
    y = layer(np.zeros((0, 2, 6, 12)))
    assert y.shape == (0, 8, 3, 6)
    assert layer.backward(np.zeros((0, 8, 3, 6))).shape == (0, 2, 6, 12)


def test_pixel_shuffle_finite_differences_and_backends(backend, xp):
    assert mg.gradcheck(mg.nn.PixelShuffle(2), _x((1, 8, 2, 3)))
    layer = mg.nn.PixelUnshuffle(2)
    y = layer(xp.asarray(_x((2, 3, 4, 6), "float32")))
    assert mg.backend.backend_of(y) == backend and y.shape == (2, 12, 2, 3) and y.dtype == np.float32
    assert mg.backend.backend_of(layer.backward(y)) == backend


def test_pixel_shuffle_errors():
    with pytest.raises(ValueError, match=r"PixelShuffle: upscale_factor must be a positive int, got 0"):
        mg.nn.PixelShuffle(0)
    with pytest.raises(ValueError, match=r"PixelUnshuffle: downscale_factor must be a positive int, got 1.5"):
        mg.nn.PixelUnshuffle(1.5)
    with pytest.raises(ValueError, match=r"PixelShuffle: the input's channel dimension 6 .* divisible by the square "
                                         r"of upscale_factor 2"):
        mg.nn.PixelShuffle(2)(_x((1, 6, 2, 2)))
    with pytest.raises(ValueError, match=r"PixelUnshuffle: the input's height and width \(5, 4\).*downscale_factor 2"):
        mg.nn.PixelUnshuffle(2)(_x((1, 3, 5, 4)))
    with pytest.raises(ValueError, match=r"PixelShuffle: expected an input of at least 3 dimensions"):
        mg.nn.PixelShuffle(2)(_x((8, 3)))
    with pytest.raises(ValueError, match=r"pixel_shuffle: upscale_factor must be a positive int"):
        mg.functional.pixel_shuffle(_x((1, 4, 2, 2)), -1)
    layer = mg.nn.PixelShuffle(2)
    layer(_x((1, 4, 2, 2)))
    with pytest.raises(ValueError, match=r"PixelShuffle: expected grad_out of shape \(1, 1, 4, 4\)"):
        layer.backward(_x((1, 4, 2, 2)))
    assert repr(mg.nn.PixelShuffle(3)) == repr(torch.nn.PixelShuffle(3))
    assert repr(mg.nn.PixelUnshuffle(3)) == repr(torch.nn.PixelUnshuffle(3))
