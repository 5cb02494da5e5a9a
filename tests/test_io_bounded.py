"""Bounded checkpoint loading: a crafted few-MB file whose member inflates to 2 GiB is refused before the
data is inflated (peak memory of the loading process measured in a child process), loading costs about
the size of what is loaded, and a crafted training state (negative epoch, step past the schedule) is
refused before a resume."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad.io import checkpoint as mg_io
from minigrad.io import checkpoint_read
from support import crafted_zip

GIB = 1 << 30
MIB = 1 << 20

# Loads each file given on the command line and prints, per file, the error and the peak RSS so far.
_LOADER = r"""
import json, resource, sys
import minigrad as mg
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # Linux: KiB
results = {"baseline": peak(), "files": []}
for spec in sys.argv[1:]:
    path, _, into = spec.partition("::")
    try:
        if into:
            model = mg.nn.Sequential(mg.nn.Linear(4, 3), mg.nn.ReLU(), mg.nn.Linear(3, 2))
            mg.load_into(path, model)
        else:
            mg.load(path)
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    results["files"].append({"path": path, "error": error, "peak": peak()})
print(json.dumps(results))
"""


def _load_in_child(*specs):
    done = subprocess.run([sys.executable, "-c", _LOADER, *map(str, specs)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MINIGRAD_MALLOC_TUNING": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Linear(4, 3), mg.nn.ReLU(), mg.nn.Linear(3, 2))
    path = tmp_path_factory.mktemp("bounded") / "ckpt.npz"
    mg.save(path, model, epoch=1)
    return path


def _read_meta(path):
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(archive["__meta__"].tobytes().decode())


def _meta_members(meta):
    """The __meta__ and __meta_crc32__ members (stored) for an edited header."""
    data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    crc = np.array([checkpoint_read.crc32_of(data)], dtype=np.uint64)
    members = []
    for name, array in (("__meta__.npy", data), ("__meta_crc32__.npy", crc)):
        payload = crafted_zip.npy_header(array.dtype, array.shape) + array.tobytes()
        members.append((name, payload, zipfile.crc32(payload), len(payload), zipfile.ZIP_STORED))
    return members


def _bomb(path, source, header_dtype, header_shape, meta=None):
    """Copy of `source` whose 'model/0.weight' member is a .npy header followed by 2 GiB of zeros, deflated."""
    data, crc, size = crafted_zip.deflated(crafted_zip.npy_header(header_dtype, header_shape), 2 * GIB)
    skip = {"model/0.weight.npy"} | ({"__meta__.npy", "__meta_crc32__.npy"} if meta else set())
    members = crafted_zip.stored_members(source, skip=skip) + (_meta_members(meta) if meta else [])
    members.append(("model/0.weight.npy", data, crc, size, zipfile.ZIP_DEFLATED))
    crafted_zip.write_zip(path, members)
    assert path.stat().st_size < 4 * MIB
    return path


@pytest.fixture(scope="module")
def bombs(checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    declared = (2 * GIB // 4,)       # float32 elements filling the 2 GiB
    meta = _read_meta(checkpoint)
    meta["arrays"]["model/0.weight"].update(shape=list(declared))       # consistent header, huge weight
    return {
        # the member's header says 3x4 as the checkpoint's header does, but 2 GiB of data follow it
        "trailing": _bomb(folder / "trailing.npz", checkpoint, "<f4", (3, 4)),
        # the member's header declares 2 GiB, the checkpoint's header 3x4
        "header": _bomb(folder / "header.npz", checkpoint, "<f4", declared),
        # both headers declare 2 GiB (CRCs repaired): the model's 3x4 weight refuses it
        "consistent": _bomb(folder / "consistent.npz", checkpoint, "<f4", declared, meta=meta),
    }


def test_a_member_inflating_to_2_gib_is_refused_with_a_small_peak_memory(bombs):
    result = _load_in_child(bombs["trailing"], bombs["header"], f"{bombs['consistent']}::into")
    baseline = result["baseline"]
    trailing, header, consistent = result["files"]
    assert "CheckpointError" in trailing["error"] and "more data than the 48 bytes" in trailing["error"]
    assert "CheckpointError" in header["error"] and "array 'model/0.weight' has dtype <f4 and shape [536870912] " \
        "but the header says <f4 and [3, 4]" in header["error"]
    assert "CheckpointError" in consistent["error"] and "'0.weight' has shape (536870912,) in the checkpoint but " \
        "(3, 4) in Sequential" in consistent["error"]
    # numpy.load would inflate the whole member first: +2 GiB; here only headers and 1 MiB chunks are read
    assert consistent["peak"] - baseline < 64 * MIB, (baseline, result["files"])


def test_loading_costs_about_the_size_of_what_is_loaded(tmp_path):
    big = tmp_path / "big.npz"
    mg.save(big, {"w": np.ones(64 * MIB // 4, dtype=np.float32)})
    result = _load_in_child(big)
    assert result["files"][0]["error"] is None
    assert result["files"][0]["peak"] - result["baseline"] < 64 * MIB * 1.25 + 16 * MIB


def test_a_small_checkpoint_still_loads_and_round_trips(checkpoint):
    ckpt = mg.load(checkpoint)
    assert list(ckpt["model"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert ckpt["metadata"] == {"epoch": 1}


def test_an_oversized_header_is_refused(checkpoint, tmp_path):
    header = crafted_zip.npy_header("|u1", (mg_io.META_LIMIT + 1,))
    data, crc, size = crafted_zip.deflated(header, 0)
    members = crafted_zip.stored_members(checkpoint, skip={"__meta__.npy"})
    members.append(("__meta__.npy", data, crc, size, zipfile.ZIP_DEFLATED))
    bad = tmp_path / "meta.npz"
    crafted_zip.write_zip(bad, members)
    with pytest.raises(mg.CheckpointError, match=r"the checkpoint header is \|u1 of shape \[268435457\], expected "
                                                 r"at most 268435456 bytes"):
        mg.load(bad)


# -- the training state --------------------------------------------------------------------------------

def _train_run(tmp_path, scheduler=None):
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Linear(4, 3))
    optimizer = mg.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    data = mg.data.ArrayDataset(rng.standard_normal((32, 4)).astype("float32"), rng.integers(0, 3, 32))
    loader = mg.data.DataLoader(data, batch_size=8, shuffle=True, seed=1)
    sched = scheduler(optimizer) if scheduler else None
    return model, optimizer, loader, sched


def _resume(tmp_path, scheduler=None, epochs=2):
    model, optimizer, loader, sched = _train_run(tmp_path, scheduler)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(mg.CheckpointError) as info:
        mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, epochs=epochs, scheduler=sched,
                     progress=False, checkpoint_dir=tmp_path / "run", resume=True)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))   # nothing loaded
    return str(info.value)


@pytest.mark.parametrize("change, words", [
    (lambda ts: ts.update(epoch=-1), "epoch -1 (expected an int >= 0)"),
    (lambda ts: ts.update(step=-3), "step -3 (expected an int >= 0)"),
    (lambda ts: ts.update(step=40), "step 40 is not within epoch 2 (4 batches per epoch: expected step == 4)"),
    (lambda ts: ts.update(epoch=True), "epoch True (expected an int >= 0)"),
    (lambda ts: ts.update(records="x"), "history records (expected a list of dicts)"),
    (lambda ts: ts.update(epoch_seconds=float("nan")), "epoch_seconds nan"),
])
def test_a_crafted_training_state_is_refused(tmp_path, change, words):
    model, optimizer, loader, _ = _train_run(tmp_path)
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, epochs=1, progress=False,
                 checkpoint_dir=tmp_path / "good")
    good = tmp_path / "good" / mg.train.CHECKPOINT_NAME
    mg.train.read_train_state(good)                               # the real one is sound
    (tmp_path / "run").mkdir()
    crafted_zip.rewrite_meta(good, tmp_path / "run" / mg.train.CHECKPOINT_NAME,
                             lambda meta: change(meta["metadata"]["train_state"]))
    message = _resume(tmp_path)
    assert "the training state in this checkpoint is invalid" in message and words in message, message


def test_a_step_beyond_the_schedule_is_refused(tmp_path):
    def one_cycle(optimizer):
        return mg.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=4)

    model, optimizer, loader, sched = _train_run(tmp_path, one_cycle)
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, epochs=1, scheduler=sched, progress=False,
                 checkpoint_dir=tmp_path / "good")
    (tmp_path / "run").mkdir()

    def change(meta):
        meta["scheduler"]["state"]["total_steps"] = 3             # its own schedule ends before step 4
    crafted_zip.rewrite_meta(tmp_path / "good" / mg.train.CHECKPOINT_NAME, tmp_path / "run" / mg.train.CHECKPOINT_NAME,
                             change)
    message = _resume(tmp_path, one_cycle, epochs=1)
    assert "step 4 is beyond the learning-rate schedule (total_steps 3)" in message, message
