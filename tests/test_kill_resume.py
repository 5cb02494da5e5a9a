"""Training state survives crashes and bad files.

- A run killed with SIGKILL at a random point (several seeds; each after at least one step
  checkpoint, sometimes in the middle of writing one) resumes to bitwise identical final
  weights, optimizer and scheduler state as an uninterrupted run.
- A training checkpoint truncated at random byte offsets is always refused by ``fit(resume=...)``
  with mg.CheckpointError, and the model and optimizer are left untouched.
- A checkpoint write that fails inside ``fit`` (disk full at the rename) leaves the previous good
  checkpoint in place, and resuming from it still ends identical to an uninterrupted run.
  (mg.save's own atomic-write cases, disk full / interrupt / rename / fsync failures, are in test_io.py.)

The run (tests/support/kill_resume_script.py) is an MLP on 2-D blobs: 3 epochs of 8 steps, a checkpoint
after every step, SGD with momentum, StepLR, a shuffling DataLoader.
"""
import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from support import kill_resume_script as script

HERE = Path(__file__).resolve().parent
TOTAL_STEPS = script.EPOCHS * script.STEPS_PER_EPOCH
DELAY = 0.05                                   # seconds slept after each step of the killed run


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """final.npz of an uninterrupted run (in this process: the same code, the same numbers)."""
    out = tmp_path_factory.mktemp("reference")
    script.run(str(out))
    return mg.load(out / "final.npz")


def assert_same_final_state(a, b, what):
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), f"{what}: '{key}' differs"
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for index, entry in a["optimizer"]["state"].items():
        for name, value in entry.items():
            assert np.array_equal(value, b["optimizer"]["state"][index][name]), f"{what}: optimizer {index}.{name}"
    assert a["scheduler"] == b["scheduler"], what


def step_of(checkpoint):
    return mg.train.read_train_state(checkpoint)["step"] if checkpoint.exists() else 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_a_random_point_then_resume_is_bitwise_identical(tmp_path, reference, seed):
    rng = random.Random(seed)
    kill_after = rng.randint(1, TOTAL_STEPS - 4)          # at least one step checkpoint exists
    extra_wait = rng.uniform(0.0, DELAY)                  # lands anywhere in a step, or in a checkpoint write
    out = tmp_path / "run"
    checkpoint = out / "checkpoint.npz"
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    proc = subprocess.Popen([sys.executable, str(HERE / "support" / "kill_resume_script.py"), str(out), "--delay", str(DELAY)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while step_of(checkpoint) < kill_after:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        time.sleep(extra_wait)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_at = step_of(checkpoint)
    assert kill_after <= killed_at < TOTAL_STEPS, "the run was not cut short"
    assert not (out / "final.npz").exists()

    script.run(str(out), resume=True)                     # resume in this process from the last checkpoint
    assert_same_final_state(reference, mg.load(out / "final.npz"), f"seed {seed}, killed at step {killed_at}")


def snapshot(model, optimizer):
    return ({k: v.copy() for k, v in model.state_dict().items()},
            {i: {n: np.array(v, copy=True) for n, v in entry.items()}
             for i, entry in optimizer.state_dict()["state"].items()})


def test_truncated_training_checkpoint_is_always_refused(tmp_path):
    out = tmp_path / "run"
    script.run(str(out))
    data = (out / "checkpoint.npz").read_bytes()
    offsets = np.random.default_rng(8).choice(np.arange(1, len(data)), size=30, replace=False).tolist() + [0]
    model, loss, optimizer, scheduler, loader = script.build(seed=5)
    model(np.zeros((2, 2), np.float32))
    optimizer.step()                                       # some optimizer state to protect
    before = snapshot(model, optimizer)
    bad = tmp_path / "truncated.npz"
    for offset in offsets:
        bad.write_bytes(data[:offset])
        with pytest.raises(mg.CheckpointError, match=str(bad)):
            mg.train.fit(model, loss, optimizer, loader, script.EPOCHS, scheduler=scheduler, resume=bad,
                         progress=False)
        after = snapshot(model, optimizer)
        for key, value in before[0].items():
            assert np.array_equal(after[0][key], value), f"'{key}' changed by a refused file (cut at {offset})"
        for index, entry in before[1].items():
            for name, value in entry.items():
                assert np.array_equal(after[1][index][name], value)
    assert mg.train.read_train_state(out / "checkpoint.npz")["step"] == TOTAL_STEPS   # the good file still loads


class DiskFullAtStep(mg.train.Callback):
    """Makes every os.replace fail with ENOSPC once the run reaches `step` (a full disk)."""

    def __init__(self, monkeypatch, step):
        self.monkeypatch, self.step = monkeypatch, step

    def on_step_end(self, state):
        if state.step == self.step:
            def disk_full(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device")
            self.monkeypatch.setattr(mg.io.checkpoint.os, "replace", disk_full)


def test_failed_checkpoint_write_in_fit_keeps_the_last_good_one(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):
        script.run(str(out), callbacks=[DiskFullAtStep(monkeypatch, 11)])
    monkeypatch.undo()
    assert mg.train.read_train_state(out / "checkpoint.npz")["step"] == 10     # the last good checkpoint
    assert [name for name in os.listdir(out) if name.endswith(".tmp")] == []
    script.run(str(out), resume=True)
    assert_same_final_state(reference, mg.load(out / "final.npz"), "resumed after a failed checkpoint write")


def test_refused_resume_changes_nothing_not_even_the_loader(tmp_path):
    """A checkpoint of another architecture: CheckpointError, and model, optimizer and loader keep their state."""
    out = tmp_path / "run"
    script.run(str(out))
    mg.manual_seed(3)
    model = mg.models.mlp(2, (4,), 2)                      # not the (16, 8) MLP the checkpoint holds
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = mg.data.DataLoader(mg.data.ArrayDataset(*script.blobs()), batch_size=32, shuffle=True)
    before, loader_before = snapshot(model, optimizer), loader.state_dict()
    with pytest.raises(mg.CheckpointError, match="another architecture"):
        mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, script.EPOCHS,
                     resume=out / "checkpoint.npz", progress=False)
    assert loader.state_dict() == loader_before
    after = snapshot(model, optimizer)
    for key, value in before[0].items():
        assert np.array_equal(after[0][key], value)
