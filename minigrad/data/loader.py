"""ArrayDataset and DataLoader: host-side datasets served as batches on the active backend.

The loader picks a batch's indices on the host, asks the dataset for the whole batch at
once (``dataset[index_array]``), copies each array of the batch to the active backend
once (nothing on the CPU; on the GPU a single host-to-device copy per array, staged in
pinned memory and run on a copy stream one batch ahead, so it overlaps the compute on the
previous batch: ``device_copy.PinnedCopier``), then applies the transform there. Nothing in
the loop reads device memory back.

Reproducibility: the order of epoch ``e`` is ``default_rng([seed, e]).permutation(N)`` and
the random transforms of batch ``b`` draw from ``default_rng([seed, e, b])``. With
``seed=None`` the seed is drawn from minigrad's global generator when the loader is
created, so ``mg.manual_seed(n)`` fixes it. Because every epoch and batch has its own
stream, ``state_dict()`` (seed, epoch, batch position) is all a checkpoint needs to continue
mid-epoch with exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import numbers

import numpy

from ..runtime import random as mg_random
from ..runtime.backend import get_backend, is_array, to_backend
from .device_copy import PinnedCopier

__all__ = ["ArrayDataset", "DataLoader"]


class ArrayDataset:
    """Dataset over equal-length arrays: ``ds[i] -> (a[i], b[i], ...)``, like torch's TensorDataset.

    An index array or slice returns whole batches (``(a[idx], b[idx], ...)``). The arrays stay
    where they are (host arrays are the usual case; the DataLoader moves batches).
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset: expected at least one array, got none")
        for index, array in enumerate(arrays):
            if not is_array(array):
                raise TypeError(f"ArrayDataset: argument {index} must be a NumPy or CuPy array, "
                                f"got {type(array).__name__}")
            if array.ndim < 1:
                raise ValueError(f"ArrayDataset: argument {index} is 0-d; expected arrays with a first "
                                 "(example) dimension")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"ArrayDataset: all arrays must have the same length (first dimension), "
                             f"got lengths {lengths}")
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(array[index] for array in self.arrays)

    def __repr__(self):
        shapes = ", ".join(f"{a.dtype} {tuple(a.shape)}" for a in self.arrays)
        return f"ArrayDataset({shapes})"


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"DataLoader: {name} must be a positive int, got {value!r}")
    return int(value)


def _fetch(dataset, indices: numpy.ndarray):
    """One batch as a tuple of host/device arrays: ``dataset[indices]`` when the dataset batches, else stacked."""
    try:
        batch = dataset[indices]
    except (TypeError, IndexError, KeyError, ValueError):
        batch = None
    if batch is not None:
        items = batch if isinstance(batch, tuple) else (batch,)
        if all(is_array(a) and a.ndim >= 1 and len(a) == len(indices) for a in items):
            return items
    samples = [dataset[int(i)] for i in indices]  # per-example datasets (a list, a plain __getitem__)
    if not isinstance(samples[0], tuple):
        samples = [(s,) for s in samples]
    return tuple(numpy.stack([numpy.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))


class DataLoader:
    """Iterate over a dataset in batches that live on the active backend.

    Args:
        dataset: ``len(ds)`` and ``ds[index_array] -> tuple of arrays`` (MNIST, ArrayDataset);
            a dataset that only supports integer indexing is stacked example by example.
        batch_size: examples per batch (the last batch may be smaller unless drop_last).
        shuffle: new random order every epoch.
        drop_last: drop the last incomplete batch.
        seed: seed of the shuffling and transform streams; None draws one from mg.manual_seed's generator.
        transform: callable ``transform(x, rng)`` applied to the first array of each batch (the
            inputs) after it is on the device; see ``minigrad.data.transforms``.
        backend: where batches go; None means the active backend at iteration time.

    Yields tuples like ``(x, y)``. ``len(loader)`` is the number of batches per epoch.
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform=None, backend: str | None = None):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must support len() and indexing, got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError("DataLoader: the dataset is empty")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.dataset = dataset
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if drop_last and len(dataset) < self.batch_size:
            raise ValueError(f"DataLoader: drop_last=True with batch_size={self.batch_size} but the dataset "
                             f"has only {len(dataset)} examples: every batch would be dropped")
        if seed is None:
            seed = int(mg_random.generator().integers(0, 2 ** 63))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative int or None, got {seed!r}")
        self.seed = int(seed)
        self.transform = transform
        self.backend = backend
        self._epoch = 0        # epoch being (or last) iterated
        self._position = 0     # batches of that epoch already handed out
        self._next_epoch = 0   # what a fresh iter() starts
        self._resume = None    # (epoch, batch) to continue from after load_state_dict

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """Index of the epoch being iterated (or the last one iterated)."""
        return self._epoch

    def order(self, epoch: int) -> numpy.ndarray:
        """The example indices of ``epoch`` in the order they are served (host int64 array)."""
        n = len(self.dataset)
        if not self.shuffle:
            return numpy.arange(n, dtype=numpy.int64)
        return numpy.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def __iter__(self):
        if self._resume is not None:
            epoch, start = self._resume
            self._resume = None
        else:
            epoch, start = self._next_epoch, 0
        self._next_epoch = epoch + 1
        self._epoch, self._position = epoch, start
        return self._batches(epoch, start)

    def _pinned_copier(self):
        """The loader's PinnedCopier (made on the first GPU epoch, then reused: its buffers and stream)."""
        if getattr(self, "_copier", None) is None:
            self._copier = PinnedCopier()
        return self._copier

    def _fetch_batch(self, order, b):
        return _fetch(self.dataset, order[b * self.batch_size:(b + 1) * self.batch_size])

    def _batches(self, epoch, start):
        order = self.order(epoch)
        backend = self.backend or get_backend()
        copier = self._pinned_copier() if backend in ("cupy", "cuda", "gpu") else None
        upcoming = None                                # the next batch, its copy in flight
        for b in range(start, len(self)):
            if copier is None:
                arrays = [to_backend(a, backend) for a in self._fetch_batch(order, b)]  # one copy each
            else:
                arrays, ready = upcoming or copier.start(self._fetch_batch(order, b))
                upcoming = copier.start(self._fetch_batch(order, b + 1)) if b + 1 < len(self) else None
                copier.wait(ready)
            if self.transform is not None:
                rng = numpy.random.default_rng([self.seed, epoch, b])
                arrays[0] = self.transform(arrays[0], rng=rng)
            self._position = b + 1
            yield tuple(arrays)

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Seed and position (JSON-able): where an interrupted run continues."""
        return {"seed": self.seed, "epoch": self._epoch, "batch": self._position,
                "num_batches": len(self), "dataset_size": len(self.dataset), "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``: the next iter() serves the rest of that epoch (or the next epoch)."""
        for key in ("seed", "epoch", "batch"):
            if key not in state:
                raise KeyError(f"DataLoader.load_state_dict: missing {key!r} in {sorted(state)}")
        size = state.get("dataset_size", len(self.dataset))
        if size != len(self.dataset) or state.get("num_batches", len(self)) != len(self):
            raise ValueError(f"DataLoader.load_state_dict: state is for {size} examples in "
                             f"{state.get('num_batches')} batches, this loader has {len(self.dataset)} examples "
                             f"in {len(self)} batches")
        self.seed = int(state["seed"])
        epoch, batch = int(state["epoch"]), int(state["batch"])
        self._epoch, self._position = epoch, batch
        if batch >= len(self):
            self._next_epoch, self._resume = epoch + 1, None
        else:
            self._next_epoch, self._resume = epoch, (epoch, batch)

    def __repr__(self):
        return (f"DataLoader({type(self.dataset).__name__}, n={len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed}, batches={len(self)})")

