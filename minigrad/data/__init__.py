"""Data (``mg.data``): MNIST offline, ArrayDataset, DataLoader and array transforms.

    train = mg.data.MNIST("train")                    # float32 (1, 28, 28) images, int64 labels
    loader = mg.data.DataLoader(train, batch_size=64, shuffle=True, seed=0)
    for x, y in loader: ...                           # x: (64, 1, 28, 28) on the active backend
"""
from . import transforms
from .loader import ArrayDataset, DataLoader
from .mnist import (MNIST, MNIST_MEAN, MNIST_STD, DatasetError, DatasetNotFoundError, export_idx, load_mnist,
                    mnist_zarr_path, read_idx, write_idx)
from .transforms import Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip

__all__ = [
    "MNIST", "MNIST_MEAN", "MNIST_STD", "DatasetError", "DatasetNotFoundError", "load_mnist", "mnist_zarr_path",
    "read_idx", "write_idx", "export_idx",
    "ArrayDataset", "DataLoader", "transforms", "Compose", "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip",
]
