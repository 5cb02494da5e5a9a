"""mg.save / mg.load / mg.load_into: bitwise round trips, backend choice, atomic writes, and refusal of
truncated, corrupted, foreign, wrong-version and mismatched files (leaving the model untouched)."""
import errno
import json
import os
import zipfile

import numpy as np
import pytest

import minigrad as mg
from minigrad.io import checkpoint as mg_io
from minigrad import optim
from support import crafted_zip
from support.strict_backend import StrictArray, assert_strict, strict_layer, to_strict


class Counter(mg.nn.Layer):
    """Identity with an integer 0-d buffer, like BatchNorm's num_batches_tracked."""

    def __init__(self):
        super().__init__()
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        self.register_buffer("running_mean", np.zeros(3, dtype=np.float32))

    def forward(self, x):
        self._cache = True
        return x

    def backward(self, grad_out):
        self.take_cache()
        return grad_out


def _model(in_features=3, dtype="float32"):
    return mg.nn.Sequential(mg.nn.Linear(in_features, 3, dtype=dtype), Counter(), mg.nn.Linear(3, 2, dtype=dtype))


def _train(model, opt, rng, steps=2, sched=None):
    dtype = model.dtype
    for _ in range(steps):
        x = rng.standard_normal((4, model[0].in_features)).astype(dtype)
        if isinstance(model[0].weight.data, StrictArray):
            x = to_strict(x)
        opt.zero_grad()
        y = model(x)
        model.backward(y)
        opt.step()
        if sched is not None:
            sched.step()


def _host_state(model):
    return {k: np.array(mg.backend.to_backend(v, "numpy")) for k, v in model.state_dict().items()}


def _assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture
def trained(tmp_path, rng):
    model = _model()
    model[1].num_batches_tracked[...] = 7
    model[1].running_mean[...] = [1.5, -2.0, 3.25]
    opt = optim.Adam([{"params": model[0].parameters(), "lr": 0.01}, {"params": model[2].parameters()}],
                     amsgrad=True, weight_decay=0.1)
    sched = optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3])
    _train(model, opt, rng, sched=sched)
    path = tmp_path / "ckpt.npz"
    mg.save(path, model, opt, scheduler=sched, epoch=3, name="run-1", nested={"a": [1, 2.5, None]},
            score=np.float32(0.5))
    return model, opt, sched, path


def test_round_trip_is_bitwise(trained):
    model, opt, sched, path = trained
    ckpt = mg.load(path)
    _assert_same_state(dict(ckpt["model"]), _host_state(model))
    assert list(ckpt["model"]) == list(model.state_dict())
    assert ckpt["metadata"] == {"epoch": 3, "name": "run-1", "nested": {"a": [1, 2.5, None]}, "score": 0.5}
    assert ckpt["optimizer_type"] == "Adam" and ckpt["scheduler_type"] == "MultiStepLR"
    assert ckpt["version"] == 1 and ckpt.path == str(path)
    saved = opt.state_dict()
    assert ckpt["optimizer"]["param_groups"] == saved["param_groups"]
    assert set(ckpt["optimizer"]["state"]) == set(saved["state"])
    for index, entry in saved["state"].items():
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert ckpt["optimizer"]["state"][index][key].dtype == value.dtype
                np.testing.assert_array_equal(ckpt["optimizer"]["state"][index][key], value)
            else:
                assert ckpt["optimizer"]["state"][index][key] == value
    assert ckpt["scheduler"] == json.loads(json.dumps(sched.state_dict()))
    assert "Checkpoint(" in repr(ckpt)


def test_load_into_then_training_continues_identically(trained, rng):
    model, opt, sched, path = trained
    clone = _model()
    clone_opt = optim.Adam([{"params": clone[0].parameters()}, {"params": clone[2].parameters()}], lr=5.0)
    clone_sched = optim.lr_scheduler.MultiStepLR(clone_opt, milestones=[1, 3])
    mg.manual_seed(99)
    mg.load_into(path, clone, clone_opt, scheduler=clone_sched)
    _assert_same_state(_host_state(clone), _host_state(model))
    seed = int(rng.integers(1 << 30))
    _train(model, opt, np.random.default_rng(seed), steps=3, sched=sched)
    _train(clone, clone_opt, np.random.default_rng(seed), steps=3, sched=clone_sched)
    _assert_same_state(_host_state(clone), _host_state(model))
    assert clone_sched.get_last_lr() == sched.get_last_lr()


def test_rng_state_is_saved_and_restored_on_request(tmp_path):
    mg.manual_seed(5)
    path = tmp_path / "w.npz"
    mg.save(path, _model())
    expected = mg.random.generator().random(3)
    mg.manual_seed(6)
    mg.load_into(path, _model())                               # default: the global RNG is left alone
    assert not np.array_equal(mg.random.generator().random(3), expected)
    mg.load_into(path, _model(), restore_rng=True)
    np.testing.assert_array_equal(mg.random.generator().random(3), expected)


def test_saving_leaves_the_model_where_it_lives(tmp_path, rng):
    model = strict_layer(_model())
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model, opt, rng)
    before = {k: v for k, v in model.state_dict().items()}
    mg.save(tmp_path / "s.npz", model, opt)
    for key, value in model.state_dict().items():
        assert value is before[key]
        assert_strict(value, f"model entry {key} after save")
    for state in opt.state.values():
        assert_strict(state["momentum_buffer"], "optimizer state after save")
    ckpt = mg.load(tmp_path / "s.npz", backend="numpy")
    assert all(type(v) is np.ndarray for v in ckpt["model"].values())


def test_load_onto_the_chosen_backend(trained):
    model, opt, sched, path = trained
    ckpt = mg.load(path, backend="strict")
    for key, value in ckpt["model"].items():
        assert_strict(value, f"loaded {key}")
    strict_model = strict_layer(_model())
    strict_opt = optim.Adam([{"params": strict_model[0].parameters()}, {"params": strict_model[2].parameters()}])
    mg.load_into(path, strict_model, strict_opt)
    for value in strict_model.state_dict().values():
        assert_strict(value, "model after load_into")
    for state in strict_opt.state.values():
        assert_strict(state["exp_avg"], "optimizer state after load_into")
    numpy_model = _model()
    mg.load_into(path, numpy_model, backend="strict")          # load, then move
    assert_strict(numpy_model[0].weight.data, "model moved by load_into(backend=...)")
    _assert_same_state(_host_state(numpy_model), _host_state(model))


@pytest.mark.gpu
def test_load_onto_cupy(trained):
    if not mg.backend.cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    model, opt, sched, path = trained
    ckpt = mg.load(path, backend="cupy")
    assert all(mg.backend.backend_of(v) == "cupy" for v in ckpt["model"].values())
    gpu_model = _model().to("cupy")
    mg.load_into(path, gpu_model)
    _assert_same_state(_host_state(gpu_model), _host_state(model))


def test_state_dict_can_be_saved_directly(tmp_path):
    state = {"w": np.arange(6.0).reshape(2, 3), "n": np.array(3)}
    mg.save(tmp_path / "d.npz", state)
    loaded = mg.load(tmp_path / "d.npz")["model"]
    _assert_same_state(dict(loaded), state)
    assert mg.load(tmp_path / "d.npz")["optimizer"] is None


def test_torch_save_argument_order_is_accepted(tmp_path):
    """mg.save(model.state_dict(), path) and mg.save(model, path), as torch.save is called, then
    model.load_state_dict(mg.load(path)) as a PyTorch user writes it: the same weights come back."""
    model = _model()
    for obj in (model.state_dict(), model):
        path = tmp_path / "weights.npz"
        assert mg.save(obj, path) == str(path)
        other = _model()
        other.load_state_dict(mg.load(path))
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(other.state_dict()[key], value)


def test_save_without_a_path_shows_the_right_call(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match=r"expected a file path .* got Sequential; call mg.save\(path, model\)"):
        mg.save(model, model)
    with pytest.raises(TypeError, match=r"got OrderedDict; call mg.save\(path, model\)"):
        mg.save(model.state_dict(), None)


# -- atomic writes ---------------------------------------------------------------------------------------

def _leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith(".tmp")]


@pytest.mark.parametrize("failure", ["disk full mid-write", "interrupt mid-write", "rename fails", "fsync fails"])
def test_failed_write_keeps_the_old_file(trained, monkeypatch, failure):
    model, opt, sched, path = trained
    good = path.read_bytes()
    model[0].weight.data[...] = 0.0

    def partial_write(handle, arrays):
        handle.write(b"PK\x03\x04 half an archive")
        if failure == "interrupt mid-write":
            raise KeyboardInterrupt
        raise OSError(errno.ENOSPC, "No space left on device")

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    if failure in ("disk full mid-write", "interrupt mid-write"):
        monkeypatch.setattr(mg_io, "_write_archive", partial_write)
    elif failure == "rename fails":
        monkeypatch.setattr(mg_io.os, "replace", broken)
    else:
        monkeypatch.setattr(mg_io.os, "fsync", broken)
    with pytest.raises((OSError, KeyboardInterrupt)):
        mg.save(path, model, opt)
    assert path.read_bytes() == good
    assert _leftovers(path.parent) == []
    monkeypatch.undo()
    assert mg.load(path)["metadata"]["epoch"] == 3


def test_unencodable_metadata_writes_nothing(tmp_path):
    path = tmp_path / "m.npz"
    with pytest.raises(TypeError, match="mg.save: cannot store object in checkpoint metadata"):
        mg.save(path, _model(), note=object())
    assert not path.exists() and _leftovers(tmp_path) == []


def test_object_arrays_are_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="dtype object, which cannot be saved without pickle"):
        mg.save(tmp_path / "o.npz", {"w": np.array([None, 1], dtype=object)})


# -- refusing bad files ----------------------------------------------------------------------------------

def _refused(path, *words):
    with pytest.raises(mg.CheckpointError) as info:
        mg.load(path)
    for word in words:
        assert word in str(info.value)
    return info.value


def test_truncated_files_are_refused(trained, tmp_path):
    model, opt, sched, path = trained
    data = path.read_bytes()
    offsets = sorted({0, 1, 4, 30, 100, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 22,
                      len(data) - 1} | set(np.random.default_rng(3).integers(1, len(data), 15).tolist()))
    bad = tmp_path / "bad.npz"
    for offset in offsets:
        bad.write_bytes(data[:offset])
        _refused(bad, str(bad))
        target = _model()
        before = _host_state(target)
        with pytest.raises(mg.CheckpointError):
            mg.load_into(bad, target)
        _assert_same_state(_host_state(target), before)


def _array_offset(data, array):
    offset = data.find(np.ascontiguousarray(array).tobytes())
    assert offset > 0
    return offset


def test_flipped_byte_in_array_data_is_refused(trained, tmp_path):
    model, opt, sched, path = trained
    data = bytearray(path.read_bytes())
    offset = _array_offset(bytes(data), model[2].weight.data)
    data[offset + 5] ^= 0x10
    bad = tmp_path / "flip.npz"
    bad.write_bytes(bytes(data))
    _refused(bad, "corrupted")


def test_tampered_array_with_repaired_zip_crc_is_caught_by_our_checksum(trained, tmp_path):
    """Rewrite one array through zipfile (valid zip CRC) without updating our header: our CRC32 catches it."""
    model, opt, sched, path = trained
    bad = tmp_path / "tampered.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "model/2.bias.npy":
                payload = payload[:-1] + bytes([payload[-1] ^ 1])
            dst.writestr(info, payload)
    _refused(bad, "array 'model/2.bias' failed its CRC32 check")


def test_random_byte_flips_are_refused_or_harmless(trained, tmp_path):
    """A flip anywhere either gets refused or (zip fields the reader ignores) loads the exact same data."""
    model, opt, sched, path = trained
    data = path.read_bytes()
    reference = mg.load(path)
    rng = np.random.default_rng(11)
    bad = tmp_path / "flip.npz"
    refused = 0
    for offset in rng.integers(0, len(data), 40):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        try:
            ckpt = mg.load(bad)
        except mg.CheckpointError:
            refused += 1
            continue
        _assert_same_state(dict(ckpt["model"]), dict(reference["model"]))
        assert ckpt["metadata"] == reference["metadata"]
    assert refused > 20


def test_wrong_version_and_format_are_refused(trained, tmp_path):
    model, opt, sched, path = trained
    newer = tmp_path / "v2.npz"
    crafted_zip.rewrite_meta(path, newer, lambda m: m.update(version=2))
    _refused(newer, "format version 2 is not supported", "reads version 1", "newer minigrad")
    target = _model()
    before = _host_state(target)
    with pytest.raises(mg.CheckpointError):
        mg.load_into(newer, target)
    _assert_same_state(_host_state(target), before)
    other = tmp_path / "fmt.npz"
    crafted_zip.rewrite_meta(path, other, lambda m: m.update(format="something-else"))
    _refused(other, "not a minigrad checkpoint", "something-else")


def test_edited_header_without_crc_update_is_refused(trained, tmp_path):
    model, opt, sched, path = trained
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["__meta__"] = np.frombuffer(arrays["__meta__"].tobytes().replace(b'"epoch": 3', b'"epoch": 4'),
                                       dtype=np.uint8)
    bad = tmp_path / "meta.npz"
    np.savez(bad, **arrays)
    _refused(bad, "header failed its CRC32 check")


def test_foreign_files_are_refused(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    _refused(plain, "not a minigrad checkpoint", "numpy.savez")
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    _refused(npy, "single .npy array")
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a checkpoint")
    _refused(text, "cannot read the checkpoint")
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, __meta__=np.array([{"a": 1}], dtype=object))
    _refused(pickled, "cannot read the checkpoint", "pickle")
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "missing.npz")


def test_extra_or_missing_arrays_are_refused(trained, tmp_path):
    model, opt, sched, path = trained
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    extra = tmp_path / "extra.npz"
    np.savez(extra, **arrays, **{"model/sneaky": np.zeros(2)})
    _refused(extra, "unlisted arrays ['model/sneaky']")
    del arrays["model/0.bias"]
    missing = tmp_path / "missing.npz"
    np.savez(missing, **arrays)
    _refused(missing, "missing arrays ['model/0.bias']")


# -- mismatches: the model (and optimizer) stay untouched ------------------------------------------------

def test_other_architecture_is_refused_and_model_untouched(trained):
    model, opt, sched, path = trained
    wider = _model(in_features=4)
    before = _host_state(wider)
    with pytest.raises(mg.CheckpointError, match=r"'0.weight' has shape \(3, 3\) in the checkpoint but \(3, 4\) "
                                                 r"in Sequential; the model was not changed"):
        mg.load_into(path, wider)
    _assert_same_state(_host_state(wider), before)
    other = mg.nn.Sequential(mg.nn.Linear(3, 2))
    before = _host_state(other)
    with pytest.raises(mg.CheckpointError, match=r"another architecture.*missing keys \[\].*unexpected keys "
                                                 r"\['1.num_batches_tracked', '1.running_mean', '2.weight', '2.bias'\]"):
        mg.load_into(path, other)
    _assert_same_state(_host_state(other), before)


def test_optimizer_mismatch_leaves_model_and_optimizer_untouched(trained, tmp_path):
    model, opt, sched, path = trained
    target = _model()
    before = _host_state(target)
    sgd = optim.SGD(target.parameters(), lr=0.1)
    with pytest.raises(mg.CheckpointError, match="holds Adam state but the optimizer is SGD"):
        mg.load_into(path, target, sgd)
    one_group = optim.Adam(target.parameters(), lr=0.5)
    with pytest.raises(mg.CheckpointError, match="optimizer state does not fit.*2 parameter groups"):
        mg.load_into(path, target, one_group)
    assert one_group.state == {} and one_group.param_groups[0]["lr"] == 0.5
    wrong_sched = optim.lr_scheduler.StepLR(one_group, step_size=2)
    with pytest.raises(mg.CheckpointError, match="holds MultiStepLR state but the scheduler is StepLR"):
        mg.load_into(path, target, scheduler=wrong_sched)
    _assert_same_state(_host_state(target), before)
    weights_only = tmp_path / "weights.npz"
    mg.save(weights_only, model)
    with pytest.raises(mg.CheckpointError, match="holds no optimizer state"):
        mg.load_into(weights_only, target, optim.Adam(target.parameters()))
    _assert_same_state(_host_state(target), before)


def test_float_into_integer_buffer_is_refused(tmp_path):
    model = _model()
    state = {k: np.array(v) for k, v in model.state_dict().items()}
    state["1.num_batches_tracked"] = np.array(1.5)
    path = tmp_path / "f.npz"
    mg.save(path, state)
    before = _host_state(model)
    with pytest.raises(mg.CheckpointError, match="'1.num_batches_tracked' has dtype float64 in the checkpoint but "
                                                 "int64"):
        mg.load_into(path, model)
    _assert_same_state(_host_state(model), before)
