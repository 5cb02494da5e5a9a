"""Array transforms: results against a per-example reference, reproducibility, strict backend, errors."""
import numpy as np
import pytest
from support.strict_backend import assert_strict, to_strict

import minigrad as mg
from minigrad.data import Compose, Normalize, RandomCrop, RandomHorizontalFlip


def batch(rng, shape=(6, 2, 5, 4)):
    return rng.standard_normal(shape).astype(np.float32)


def test_random_crop_matches_per_example_reference(backend, rng):
    x = batch(rng)
    xp = mg.backend.active_module()
    out = RandomCrop((4, 3), padding=(1, 2), fill=-1.0)(xp.asarray(x), rng=np.random.default_rng(9))
    draws = np.random.default_rng(9)
    top, left = draws.integers(0, 4, size=6), draws.integers(0, 6, size=6)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), constant_values=-1.0)
    expected = np.stack([padded[i, :, top[i]:top[i] + 4, left[i]:left[i] + 3] for i in range(6)])
    assert out.shape == (6, 2, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(mg.backend.to_backend(out, "numpy"), expected)


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_random_crop_padding_modes(rng, mode):
    x = batch(rng)
    out = RandomCrop(5, padding=2, padding_mode=mode)(x, rng=np.random.default_rng(1))
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode=mode)
    draws = np.random.default_rng(1)
    top, left = draws.integers(0, 5, size=6), draws.integers(0, 4, size=6)
    for i in range(6):
        np.testing.assert_array_equal(out[i], padded[i, :, top[i]:top[i] + 5, left[i]:left[i] + 5])


def test_flip_and_normalize(backend, rng):
    xp = mg.backend.active_module()
    x = xp.asarray(batch(rng))
    assert bool((RandomHorizontalFlip(p=1.0)(x) == x[..., ::-1]).all())
    assert bool((RandomHorizontalFlip(p=0.0)(x) == x).all())
    flipped = RandomHorizontalFlip()(x, rng=np.random.default_rng(4))
    which = np.random.default_rng(4).random(6) < 0.5
    for i in range(6):
        expected = x[i, ..., ::-1] if which[i] else x[i]
        assert bool((flipped[i] == expected).all())
    out = Normalize((0.5, -1.0), (2.0, 4.0))(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(mg.backend.to_backend(out[:, 1], "numpy"),
                               (mg.backend.to_backend(x[:, 1], "numpy") + 1.0) / 4.0, rtol=1e-6)


def test_compose_is_reproducible(rng):
    x = batch(rng, (8, 1, 6, 6))
    t = Compose([RandomCrop(6, padding=1), RandomHorizontalFlip(), Normalize(0.1, 0.3)])
    a, b = t(x, rng=np.random.default_rng(2)), t(x, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, t(x, rng=np.random.default_rng(3)))
    mg.manual_seed(5)
    c = t(x)
    mg.manual_seed(5)
    np.testing.assert_array_equal(c, t(x))


def test_transforms_use_the_array_module_of_their_input(rng):
    x = to_strict(batch(rng))
    t = Compose([RandomCrop(4, padding=1), RandomHorizontalFlip(), Normalize(0.5, 2.0)])
    assert_strict(t(x, rng=np.random.default_rng(0)), "transformed batch")


def test_transform_errors(rng):
    with pytest.raises(ValueError, match="expected 4-D input"):
        Normalize(0, 1)(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        RandomHorizontalFlip()(np.zeros((1, 1, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="3 mean/std values for an input with 2 channels"):
        Normalize((0, 0, 0), (1, 1, 1))(batch(rng))
    with pytest.raises(ValueError, match="larger than the padded input"):
        RandomCrop(9, padding=1)(batch(rng))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0, 0)
    with pytest.raises(ValueError, match="p must be in"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="padding_mode"):
        RandomCrop(3, padding_mode="wrap")
