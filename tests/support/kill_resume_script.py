"""A tiny training run for tests/test_kill_resume.py: an MLP on 2-D blobs, 3 epochs of 8 steps,
a checkpoint after every step (``checkpoint_every=1``), SGD with momentum and a StepLR schedule.

    python kill_resume_script.py OUT [--resume] [--delay SECONDS]

``--delay`` sleeps after every step so a test can SIGKILL the process at a random point; it does
not change what is computed. Writes the final weights and optimizer state to OUT/final.npz.
"""
import argparse
import os
import time

import numpy as np

import minigrad as mg

EPOCHS, STEPS_PER_EPOCH = 3, 8


class Sleep(mg.train.Callback):
    def __init__(self, seconds):
        self.seconds = seconds

    def on_step_end(self, state):
        time.sleep(self.seconds)


def blobs(n=256, seed=0):
    """Two linearly separable classes: float32 x (n, 2), int64 y (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, 2)) * 0.5 + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype(np.float32), y.astype(np.int64)


def build(seed=0):
    """(model, loss, optimizer, scheduler, loader), all from one seed."""
    mg.manual_seed(seed)
    model = mg.models.mlp(2, (16, 8), 2)
    loader = mg.data.DataLoader(mg.data.ArrayDataset(*blobs()), batch_size=32, shuffle=True)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = mg.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return model, mg.nn.CrossEntropyLoss(), optimizer, scheduler, loader


def run(out, resume=False, delay=0.0, callbacks=()):
    model, loss, optimizer, scheduler, loader = build()
    assert len(loader) == STEPS_PER_EPOCH
    callbacks = list(callbacks) + ([Sleep(delay)] if delay else [])
    mg.train.fit(model, loss, optimizer, loader, EPOCHS, scheduler=scheduler, callbacks=callbacks,
                 checkpoint_dir=out, checkpoint_every=1, resume=resume, progress=False, log_every=2)
    mg.save(os.path.join(out, "final.npz"), model, optimizer, scheduler=scheduler)
    return model, optimizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    run(args.out, resume=args.resume, delay=args.delay)


if __name__ == "__main__":
    main()
