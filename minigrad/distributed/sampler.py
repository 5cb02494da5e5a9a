"""Sharding the data over processes: each rank sees a disjoint 1/world of every epoch.

Like PyTorch's DistributedSampler: every rank computes the same epoch order (the same
permutation ``mg.data.DataLoader`` uses, ``default_rng([seed, epoch]).permutation(n)``),
pads it by wrapping around (or drops the tail with ``drop_last``) to a multiple of the world
size, and takes every ``world``-th index starting at its rank::

    order = [o0, o1, o2, o3, o4, o5, ...]     rank 0: o0, o2, o4, ...   rank 1: o1, o3, o5, ...

So the b-th batch of size B/world on every rank together is exactly the b-th batch of size B
that one process would see: data-parallel SGD with per-process batch B/world takes the same
steps as one process with batch B.
"""
from __future__ import annotations

import numbers

import numpy

from ..runtime import random as mg_random
from ..data.loader import DataLoader
from . import comm

__all__ = ["shard_indices", "DistributedDataLoader"]


def _check_rank(rank, world, where):
    for name, value, low in (("world_size", world, 1), ("rank", rank, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    if rank >= world:
        raise ValueError(f"{where}: rank={rank} is out of range for world_size={world}")


def shard_indices(n: int, rank: int, world_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                  drop_last: bool = False) -> numpy.ndarray:
    """Indices (host int64) of ``rank``'s shard of ``n`` examples in ``epoch``.

    Every shard has the same length: ``ceil(n / world)`` (the order wraps around to pad), or
    ``n // world`` with ``drop_last`` (the last ``n % world`` of the order are skipped).
    """
    _check_rank(rank, world_size, "shard_indices")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"shard_indices: n must be a positive int, got {n!r}")
    if drop_last and n < world_size:
        raise ValueError(f"shard_indices: drop_last=True with {n} examples and world_size={world_size}: "
                         "every shard would be empty")
    order = (numpy.random.default_rng([int(seed), int(epoch)]).permutation(n) if shuffle
             else numpy.arange(n, dtype=numpy.int64))
    if drop_last:
        order = order[:n - n % world_size]
    elif n % world_size:
        pad = world_size - n % world_size
        order = numpy.concatenate([order, numpy.resize(order, pad)])  # wrap around: (n,) -> (n + pad,)
    return order[rank::world_size]


class DistributedDataLoader(DataLoader):
    """A ``mg.data.DataLoader`` that serves only this rank's shard of every epoch.

    Same arguments as DataLoader plus ``rank`` and ``world_size`` (default: from
    ``mg.distributed``). ``batch_size`` is the per-process batch (global batch / world size).
    With ``seed=None`` rank 0 draws the seed and broadcasts it (all ranks must agree on the
    order, or shards would overlap). ``len(loader)`` is the number of batches per epoch on
    each rank (equal on every rank). Random transforms get a different stream on each rank.
    ``state_dict``/``load_state_dict`` resume mid-epoch as DataLoader does.
    """

    def __init__(self, dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, transform=None, backend: str | None = None, *,
                 rank: int | None = None, world_size: int | None = None):
        self.rank = comm.rank() if rank is None else rank
        self.world_size = comm.world_size() if world_size is None else world_size
        _check_rank(self.rank, self.world_size, "DistributedDataLoader")
        if seed is None:
            seed = comm.broadcast_object(int(mg_random.generator().integers(0, 2 ** 63)))
        if transform is not None and callable(transform) and self.world_size > 1:
            transform = _RankTransform(transform, self.rank)
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         transform=transform, backend=backend)
        if drop_last and self._shard_size() < self.batch_size:
            raise ValueError(f"DistributedDataLoader: drop_last=True with batch_size={self.batch_size} but each "
                             f"of the {self.world_size} shards has only {self._shard_size()} examples")

    def _shard_size(self) -> int:
        n = len(self.dataset)
        return n // self.world_size if self.drop_last else -(-n // self.world_size)

    def __len__(self):
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> numpy.ndarray:
        """This rank's example indices for ``epoch``, in the order they are served."""
        return shard_indices(len(self.dataset), self.rank, self.world_size, self.shuffle, self.seed, epoch,
                             self.drop_last)

    def __repr__(self):
        return super().__repr__().replace("DataLoader(", "DistributedDataLoader(", 1)[:-1] + \
            f", rank={self.rank}, world_size={self.world_size})"


class _RankTransform:
    """Wraps a random transform so each rank draws its own stream for the same batch index."""

    def __init__(self, transform, rank):
        self.transform, self.rank = transform, rank

    def __call__(self, x, rng):
        seed = int(rng.integers(0, 2 ** 63))
        return self.transform(x, rng=numpy.random.default_rng([seed, self.rank]))
