"""mg.save(dict, path) / mg.load(path): torch.save's common use (one dict with the model's, optimizer's and
scheduler's state dicts and plain values), without pickle, with the checkpoint's guarantees: every array
checked on load, a crafted header refused, a failed write leaving the old file."""
import errno
import math
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad.io import checkpoint as mg_io
from support.crafted_zip import rewrite_meta


def _trained(seed=0):
    mg.manual_seed(seed)
    model = mg.models.lenet5()
    opt = mg.optim.Adam(model.parameters(), lr=1e-3)
    sched = mg.optim.lr_scheduler.StepLR(opt, 2, gamma=0.5)
    loss = mg.nn.CrossEntropyLoss()
    x = np.random.default_rng(seed).standard_normal((4, 1, 28, 28)).astype("float32")
    for _ in range(2):
        opt.zero_grad()
        loss(model(x), np.arange(4))
        model.backward(loss.backward())
        opt.step()
        sched.step()
    return model, opt, sched, loss, x


def test_a_training_checkpoint_dict_round_trips_and_training_continues_identically(tmp_path):
    model, opt, sched, loss, x = _trained()
    path = tmp_path / "ckpt.npz"
    mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "epoch": 3, "best": float("nan")}, path)                    # torch.save's order
    obj = mg.load(path)
    assert list(obj) == ["model", "optimizer", "scheduler", "epoch", "best"]
    assert obj["epoch"] == 3 and math.isnan(obj["best"]) and isinstance(obj["model"], OrderedDict)
    twin, twin_opt, twin_sched, _, _ = _trained(seed=1)                 # other weights and state
    twin.load_state_dict(obj["model"])
    twin_opt.load_state_dict(obj["optimizer"])
    twin_sched.load_state_dict(obj["scheduler"])
    for m, o, s in ((model, opt, sched), (twin, twin_opt, twin_sched)):
        o.zero_grad()
        loss(m(x), np.arange(4))
        m.backward(loss.backward())
        o.step()
        s.step()
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    assert twin_sched.get_last_lr() == sched.get_last_lr()


def test_every_kind_of_value_comes_back_as_it_was(tmp_path):
    obj = {"ints": np.arange(5, dtype="int64"), "f32": np.ones((2, 3), "float32"), "scalar": np.float64(2.5),
           "zero_d": np.array(7.0), "empty": np.zeros((0, 4)), "nested": [1, (2.0, "three"), {"x": None}],
           5: "an int key", None: True, 2.5: False, "ordered": OrderedDict([("b", 1), ("a", 2)]),
           "inf": -math.inf, "text": "ü"}
    path = tmp_path / "obj.npz"
    mg.save(path, obj)                                                   # minigrad's order works too
    back = mg.load(path)
    assert list(back) == list(obj)
    for key in ("ints", "f32", "zero_d", "empty"):
        assert back[key].dtype == obj[key].dtype and back[key].shape == obj[key].shape
        np.testing.assert_array_equal(back[key], obj[key])
    assert back["scalar"] == 2.5 and back["nested"] == [1, (2.0, "three"), {"x": None}]
    assert isinstance(back["nested"][1], tuple) and back[5] == "an int key" and back[None] is True
    assert back[2.5] is False and list(back["ordered"]) == ["b", "a"] and isinstance(back["ordered"], OrderedDict)
    assert back["inf"] == -math.inf and back["text"] == "ü"
    assert mg.load(tmp_path / "obj.npz", backend="numpy")["f32"].dtype == np.float32


@pytest.mark.parametrize("value,words", [
    (lambda: mg.nn.Linear(2, 2), r"cannot store Linear at obj\['model'\] \(save its state_dict\(\) instead\)"),
    (lambda: mg.nn.Parameter(np.ones(2, "float32")), r"cannot store Parameter at obj\['model'\] \(save its "
                                                     r"\.data array instead\)"),
    (lambda: {1, 2}, r"cannot store set at obj\['model'\]"),
    (lambda: print, r"cannot store builtin_function_or_method"),
    (lambda: {(1, 2): 3}, r"obj\['model'\] has a key of type tuple"),
    (lambda: np.array([object()]), "dtype object"),
])
def test_what_cannot_be_stored_is_refused_naming_where(tmp_path, value, words):
    with pytest.raises(TypeError, match=words):
        mg.save({"model": value()}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_a_dict_with_optimizer_keywords_is_refused(tmp_path):
    model, opt, *_ = _trained()
    with pytest.raises(TypeError, match="a saved dict holds everything itself"):
        mg.save(tmp_path / "x.npz", {"model": model.state_dict(), "epoch": 1}, opt)


def test_load_into_names_the_right_call_for_a_saved_dict(tmp_path):
    model, *_ = _trained()
    mg.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "x.npz")
    with pytest.raises(mg.CheckpointError, match=r"saved from a dict .* obj = mg.load\(path\); "
                                                 r"model.load_state_dict\(obj\['model'\]\)"):
        mg.load_into(tmp_path / "x.npz", model)


@pytest.mark.parametrize("change,words", [
    (lambda meta: meta["tree"]["items"][0][1].update(index=1), "used twice|not one of its"),
    (lambda meta: meta["tree"]["items"][0][1].update(index=7), "not one of its 2 arrays"),
    (lambda meta: meta["tree"]["items"].pop(1), "uses 1 of its 2 arrays"),
    (lambda meta: meta["tree"]["items"][1][1].update(t="array", index=True), "not one of its"),
    (lambda meta: meta["tree"].update(t="pickle"), "unknown kind 'pickle'"),
    (lambda meta: meta["tree"]["items"].append(["k", {"t": "value", "value": {"a": 1}}]), "value of an unknown kind"),
    (lambda meta: meta["tree"].update(items=[[["list", "key"], {"t": "value", "value": 1}]]), "malformed dict entry"),
])
def test_a_crafted_structure_is_refused(tmp_path, change, words):
    path, crafted = tmp_path / "good.npz", tmp_path / "crafted.npz"
    mg.save({"a": np.ones(3), "b": np.zeros(2), "epoch": 1}, path)
    rewrite_meta(path, crafted, change)
    with pytest.raises(mg.CheckpointError, match=words):
        mg.load(crafted)


def test_a_deeply_nested_crafted_structure_is_refused(tmp_path):
    path, crafted = tmp_path / "good.npz", tmp_path / "crafted.npz"
    mg.save({"a": 1}, path)

    def deepen(meta):
        node = {"t": "value", "value": 1}
        for _ in range(100):
            node = {"t": "list", "items": [node]}
        meta["tree"] = node
    rewrite_meta(path, crafted, deepen)
    with pytest.raises(mg.CheckpointError, match="malformed"):
        mg.load(crafted)


def test_a_flat_state_dict_stays_a_model_checkpoint(tmp_path):
    """name -> array only: a state dict, saved as a model checkpoint (mg.load_into and
    model.load_state_dict(mg.load(path)) work), as before; anything else in the dict makes it a saved object."""
    model, *_ = _trained()
    mg.save(model.state_dict(), tmp_path / "sd.npz")
    assert isinstance(mg.load(tmp_path / "sd.npz"), mg.io.Checkpoint)
    mg.load_into(tmp_path / "sd.npz", model)


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    mg.save({"epoch": 1, "w": np.ones(3)}, path)
    good = path.read_bytes()

    def disk_full(handle, arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mg_io, "_write_archive", disk_full)
    with pytest.raises(OSError):
        mg.save({"epoch": 2, "w": np.zeros(3)}, path)
    assert path.read_bytes() == good
    monkeypatch.undo()
    assert mg.load(path)["epoch"] == 1
