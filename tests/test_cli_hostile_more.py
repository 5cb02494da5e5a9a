"""More hostile inputs at the command line (after tests/test_cli_hostile.py, same rule): each ends with exit
status 2 and exactly one line on stderr, ``minigrad CMD: error: ...`` naming the flag, file or value and what
to do, and no traceback.

Absurd thread counts, `bench --json` into a directory that cannot take the file, a directory in the place of
a run's output file with --overwrite, malformed training states and loader positions in a checkpoint on
--resume, a rerun after a run refused by the memory guard, and a non-finite test loss after training. The
training runs use tiny noise IDX files under --data-root, so they need no installed MNIST.
"""
import os

import pytest

import minigrad as mg
from test_cli_hostile import one_line_error, run

TINY = ["--limit-train", "64", "--limit-test", "32", "--batch-size", "32", "--epochs", "1", "--progress", "off"]


# -- thread counts -----------------------------------------------------------------------------------------
def test_an_absurd_thread_count_is_refused():
    huge = "99999999999999999999999"
    one_line_error(run("info", MINIGRAD_NUM_THREADS=huge), "info", "MINIGRAD_NUM_THREADS", repr(huge), "4096")
    one_line_error(run("info", MINIGRAD_NUM_THREADS="4097"), "info", "MINIGRAD_NUM_THREADS", "4096")
    assert run("info", MINIGRAD_NUM_THREADS="4096").returncode == 0
    one_line_error(run("bench", "--quick", "--no-torch", "--threads", "5000"), "bench", "--threads", "5000")
    before = mg.get_num_threads()
    with pytest.raises(ValueError, match="4096"):
        mg.set_num_threads(10 ** 20)
    assert mg.get_num_threads() == before


# -- minigrad bench --json ---------------------------------------------------------------------------------
BENCH = ["bench", "--quick", "--no-torch", "--cases", "pool", "--repeat", "1"]


def test_bench_json_into_a_missing_or_wrong_directory_is_refused_before_running(tmp_path):
    (tmp_path / "file").write_text("x")
    for path, words in ((tmp_path / "nodir" / "x.json", ["does not exist"]), (tmp_path, ["is a directory"]),
                        (tmp_path / "file" / "x.json", ["not a directory"])):
        result = run(*BENCH, "--json", str(path))
        one_line_error(result, "bench", "--json", str(path), *words)
        assert "round" not in result.stderr and result.stdout == ""      # refused before the benchmark ran
    one_line_error(run(*BENCH, "--markdown", str(tmp_path / "nodir" / "x.md")), "bench", "--markdown")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_bench_json_that_cannot_be_written_at_the_end_is_one_line():
    result = run(*BENCH, "--json", "/dev/full")
    lines = [line for line in result.stderr.splitlines() if "round" not in line and "warning" not in line]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("minigrad bench: error: --json /dev/full: cannot write"), lines


# -- the run directory -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["metrics.json", "history.jsonl", "curves.png", "checkpoint.npz"])
@pytest.mark.parametrize("mode", ["--overwrite", "--resume", None])
def test_a_directory_in_the_place_of_an_output_file_is_refused_and_kept(tmp_path, name, mode):
    blocker = tmp_path / "run" / name
    (blocker / "inside").mkdir(parents=True)
    result = run("train", *TINY, "--out", str(tmp_path / "run"), *([mode] if mode else []))
    one_line_error(result, "train", str(blocker), "is a directory", "--out")
    assert (blocker / "inside").is_dir()                      # a user's directory is never removed


# -- a run refused at its first step -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Tiny MNIST IDX files of noise (64 train / 32 test images)."""
    from test_cli_hostile import idx_directory
    return str(idx_directory(tmp_path_factory.mktemp("idx") / "mnist"))


def test_the_rerun_a_memory_refusal_recommends_works(tmp_path, data_root):
    out = tmp_path / "runs" / "r"
    first = run("train", *TINY, "--batch-size", "64", "--data-root", data_root, "--out", str(out),
                MINIGRAD_MAX_BYTES="2M")
    one_line_error(first, "train", "MINIGRAD_MAX_BYTES", "--batch-size")
    assert not (tmp_path / "runs").exists()                 # nothing is left of a run that never started
    again = run("train", *TINY, "--batch-size", "8", "--data-root", data_root, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "history.jsonl").stat().st_size > 0


def test_an_empty_history_alone_is_not_a_run_but_any_record_is(tmp_path, data_root):
    out = tmp_path / "r"
    out.mkdir()
    (out / "history.jsonl").write_text("")                 # left by a run killed before its first record
    result = run("train", *TINY, "--data-root", data_root, "--out", str(out))
    assert result.returncode == 0, result.stderr
    (out / "checkpoint.npz").unlink()
    (out / "metrics.json").unlink()
    records = (out / "history.jsonl").read_text()
    assert records                                          # a real run's history: refused, kept
    one_line_error(run("train", *TINY, "--data-root", data_root, "--out", str(out)), "train",
                   "already holds a run (history.jsonl)")
    assert (out / "history.jsonl").read_text() == records


# -- malformed training states on --resume -----------------------------------------------------------------
@pytest.fixture(scope="module")
def resumable(tmp_path_factory, data_root):
    """A finished one-epoch run over 32 of the 64 training images, and its checkpoint's contents."""
    out = tmp_path_factory.mktemp("resumable") / "run"
    result = run("train", *TINY, "--limit-train", "32", "--data-root", data_root, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, mg.load(out / "checkpoint.npz")


def resume_with(resumable, tmp_path, data_root, **metadata):
    """--resume --epochs 2 on a copy of the run whose checkpoint's metadata is changed by ``metadata``."""
    import shutil
    source, ckpt = resumable
    out = tmp_path / "run"
    shutil.copytree(source, out)
    meta = {**ckpt["metadata"], **metadata}
    mg.save(out / "checkpoint.npz", ckpt["model"], **{k: v for k, v in meta.items() if v is not ...})
    return run("train", "--resume", "--epochs", "2", "--out", str(out), "--data-root", data_root,
               "--progress", "off"), str(out / "checkpoint.npz")


def loader(resumable, **changes):
    return {**resumable[1]["metadata"]["train_state"], "train_loader": {
        **resumable[1]["metadata"]["train_state"]["train_loader"], **changes}}


@pytest.mark.parametrize("state, words", [
    (..., ["no training state"]),
    (None, ["no training state"]),
    ("x", ["training state of type str"]),
    ([], ["training state of type list"]),
    ({}, ["format None"]),
    (lambda r: {**r[1]["metadata"]["train_state"], "format": 99}, ["format 99", "(expected 1)"]),
    (lambda r: {**r[1]["metadata"]["train_state"], "train_loader": {"seed": "x"}}, ["train_loader seed 'x'"]),
    (lambda r: {**r[1]["metadata"]["train_state"], "train_loader": [1]}, ["train_loader [1]", "mapping"]),
    (lambda r: loader(r, batch=-1), ["train_loader batch -1"]),
    (lambda r: loader(r, num_batches=0), ["train_loader num_batches 0"]),
    (lambda r: loader(r, dataset_size=33), ["33 training images", "32 images", "--data-root"]),
    (lambda r: loader(r, num_batches=2, batch=2), ["2 batches per epoch"]),
])
def test_a_malformed_training_state_on_resume_is_one_line(resumable, tmp_path, data_root, state, words):
    result, checkpoint = resume_with(resumable, tmp_path, data_root,
                                     train_state=state(resumable) if callable(state) else state)
    one_line_error(result, "train", checkpoint, *words)


def test_a_run_configuration_whose_limit_does_not_fit_the_data_on_resume(resumable, tmp_path, data_root):
    config = {**resumable[1]["metadata"]["run_config"], "limit_train": 10 ** 12}
    result, checkpoint = resume_with(resumable, tmp_path, data_root, run_config=config)
    one_line_error(result, "train", checkpoint, "limit_train 1000000000000", "32 training images", "64 images")


# -- a test loss that is not finite after training ---------------------------------------------------------
def test_a_nonfinite_test_loss_after_a_single_step_is_one_line(tmp_path, data_root):
    result = run("train", *TINY, "--batch-size", "64", "--lr", "1e30", "--data-root", data_root,
                 "--out", str(tmp_path / "run"))
    line = one_line_error(result, "train", "test loss became non-finite", "epoch 1 (step 1)", "--lr 1e+29",
                          "--overwrite")                    # no NumPy RuntimeWarning lines (one_line_error)
    assert "no checkpoint was written before the divergence" in line
    assert not (tmp_path / "run" / "metrics.json").exists()
