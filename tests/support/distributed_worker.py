"""Run by tests/test_distributed.py under ``mpirun -np 2`` (and alone): collectives + data-parallel SGD.

    mpirun -np 2 python tests/support/distributed_worker.py OUT_DIR

Each rank writes OUT_DIR/rank{r}_{dtype}.npz (final weights, comm counters) and rank 0 writes
OUT_DIR/checkpoint_{dtype}.npz; OUT_DIR/collectives_rank{r}.txt says "ok" when the collective
checks passed. ``train(dtype, distributed=False)`` is the single-process reference the test runs.
"""
from __future__ import annotations

import os
import sys

import numpy as np

import minigrad as mg

GLOBAL_BATCH = 8
N_EXAMPLES = 48
EPOCHS = 2          # 12 SGD steps
BUCKET_MB = 1e-4    # ~100 bytes: several buckets, so bucketing is exercised


def data(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_EXAMPLES, 1, 6, 6)).astype(dtype)
    labels = rng.integers(0, 3, N_EXAMPLES)
    return mg.data.ArrayDataset(x, labels)


def build_model(dtype, seed):
    mg.manual_seed(seed)
    model = mg.nn.Sequential(mg.nn.Conv2d(1, 2, 3), mg.nn.ReLU(), mg.nn.Flatten(), mg.nn.Linear(2 * 4 * 4, 3))
    return model.to(dtype=dtype)


def train(dtype, distributed: bool):
    """SGD with momentum; distributed: DataParallel + DistributedDataLoader with batch GLOBAL_BATCH/world."""
    if distributed:
        from minigrad import distributed as dist
        world, rank = dist.world_size(), dist.rank()
        # Each rank initialises differently on purpose: DataParallel must broadcast rank 0's weights.
        model = dist.DataParallel(build_model(dtype, seed=100 + rank), bucket_mb=BUCKET_MB)
        loader = dist.DistributedDataLoader(data(dtype), batch_size=GLOBAL_BATCH // world, shuffle=True, seed=7)
    else:
        model = build_model(dtype, seed=100)
        loader = mg.data.DataLoader(data(dtype), batch_size=GLOBAL_BATCH, shuffle=True, seed=7)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = mg.nn.CrossEntropyLoss()  # mean over this process's batch: the rank average is the global mean
    for _ in range(EPOCHS):
        for x, labels in loader:
            optimizer.zero_grad()
            loss(model(x), labels)
            model.backward(loss.backward())
            optimizer.step()
    return model


def check_collectives(dist):
    world, rank = dist.world_size(), dist.rank()
    a = np.arange(6, dtype=np.float64).reshape(2, 3) * (rank + 1)
    expected_sum = np.arange(6, dtype=np.float64).reshape(2, 3) * sum(range(1, world + 1))
    np.testing.assert_allclose(dist.all_reduce(a.copy(), op="sum"), expected_sum)
    np.testing.assert_allclose(dist.all_reduce(a.copy()), expected_sum / world)
    np.testing.assert_array_equal(dist.all_reduce(np.array([rank], dtype=np.int64), op="max"), [world - 1])
    np.testing.assert_array_equal(dist.all_reduce(np.array([rank], dtype=np.int64), op="min"), [0])
    strided = np.ones((4, 4), dtype=np.float32)[:, ::2] * (rank + 1)  # non-contiguous: reduced copy returned
    np.testing.assert_allclose(dist.all_reduce(strided, op="sum"), np.full((4, 2), sum(range(1, world + 1))))
    b = np.full(3, float(rank))
    np.testing.assert_array_equal(dist.broadcast(b, root=world - 1), np.full(3, float(world - 1)))
    assert dist.broadcast_object({"rank": rank}) == {"rank": 0}
    assert dist.all_gather_object(rank) == list(range(world))
    dist.barrier()


def check_replica_mismatch(dist):
    """A rank wrapping a different model fails on every rank (instead of hanging in an all-reduce)."""
    try:
        dist.DataParallel(mg.nn.Linear(2, 2 + dist.rank()))
    except ValueError as exc:
        assert "wrap different models" in str(exc) and "weight" in str(exc), exc
        return
    raise AssertionError("DataParallel accepted different models on different ranks")


def main(out_dir):
    from minigrad import distributed as dist
    dist.init()
    rank = dist.rank()
    check_collectives(dist)
    if dist.world_size() > 1:
        check_replica_mismatch(dist)
    with open(os.path.join(out_dir, f"collectives_rank{rank}.txt"), "w") as f:
        f.write(f"ok world={dist.world_size()}\n")
    for dtype in ("float64", "float32"):
        model = train(dtype, distributed=True)
        state = {k: np.asarray(v) for k, v in model.state_dict().items()}
        np.savez(os.path.join(out_dir, f"rank{rank}_{dtype}.npz"), comm_calls=model.comm_calls,
                 comm_seconds=model.comm_seconds, n_buckets=len(model.buckets()), **state)
        if dist.is_main():  # checkpoints: rank 0 only
            np.savez(os.path.join(out_dir, f"checkpoint_{dtype}.npz"), **state)


if __name__ == "__main__":
    main(sys.argv[1])
