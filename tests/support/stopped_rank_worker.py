"""Run by tests/test_distributed.py under ``mpirun -np N``: one rank stops itself, the others must end the job.

    mpirun -np N python tests/support/stopped_rank_worker.py OUT_DIR STOP_RANK TIMEOUT

Every rank writes its PID to OUT_DIR/pid{rank} and trains a small data-parallel model; at step 3 rank
STOP_RANK sends itself SIGSTOP (as a debugger, Ctrl-Z or a frozen machine would). The live ranks wait
in the next gradient all-reduce, which must end the job after TIMEOUT seconds naming STOP_RANK.
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np

import minigrad as mg
from minigrad import distributed as dist


def main(out, stop_rank, timeout):
    dist.init()
    dist.set_timeout(timeout)
    rank = dist.rank()
    with open(os.path.join(out, f"pid{rank}"), "w") as handle:
        handle.write(str(os.getpid()))
    mg.manual_seed(0)
    model = dist.DataParallel(mg.nn.Sequential(mg.nn.Linear(4, 8), mg.nn.ReLU(), mg.nn.Linear(8, 2)))
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1)
    x = np.random.default_rng(rank).standard_normal((16, 4)).astype(np.float32)
    for step in range(1, 100_000):
        if step == 3 and rank == stop_rank:
            print(f"rank {rank}: stopping", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
        optimizer.zero_grad()
        out = model(x)
        model.backward(out / out.size)
        optimizer.step()
    print(f"rank {rank}: finished without noticing", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
