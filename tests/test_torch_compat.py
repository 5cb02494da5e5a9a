"""mg.torch_compat: PyTorch state dicts <-> minigrad state dicts; a model trained in one runs in the other."""
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import optim
from minigrad.torch_compat import from_torch_state_dict, to_torch_state_dict
from support.strict_backend import strict_layer

torch = pytest.importorskip("torch")


def _pair(dtype="float64"):
    model = mg.nn.Sequential(mg.nn.Conv2d(2, 3, 3, padding=1, dtype=dtype), mg.nn.ReLU(), mg.nn.Flatten(),
                             mg.nn.Linear(3 * 5 * 5, 4, dtype=dtype))
    t_model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(3 * 5 * 5, 4)).to(getattr(torch, dtype))
    return model, t_model


def test_torch_weights_load_into_minigrad_and_give_the_same_output(rng):
    model, t_model = _pair()
    converted = from_torch_state_dict(t_model.state_dict())
    assert list(converted) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert all(type(v) is np.ndarray for v in converted.values())
    model.load_state_dict(converted)
    x = rng.standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(model(x), t_model(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_minigrad_trained_weights_load_into_torch(rng):
    model, t_model = _pair()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):                                     # train a little in minigrad
        opt.zero_grad()
        y = model(rng.standard_normal((2, 2, 5, 5)))
        model.backward(y)
        opt.step()
    exported = to_torch_state_dict(model)
    assert all(isinstance(v, torch.Tensor) for v in exported.values())
    t_model.load_state_dict(exported)
    x = rng.standard_normal((2, 2, 5, 5))
    np.testing.assert_allclose(t_model(torch.tensor(x)).detach().numpy(), model(x), rtol=1e-10, atol=1e-12)
    exported["0.weight"].zero_()                           # tensors are copies, not views of the model
    assert model[0].weight.data.any()


def test_round_trip_through_a_checkpoint_file(tmp_path, rng):
    model, t_model = _pair("float32")
    mg.save(tmp_path / "w.npz", from_torch_state_dict(t_model.state_dict()))
    mg.load_into(tmp_path / "w.npz", model)
    for key, value in to_torch_state_dict(model).items():
        assert torch.equal(value, t_model.state_dict()[key])


def test_batchnorm_buffers_and_num_batches_tracked():
    bn = torch.nn.BatchNorm2d(3)
    bn.train()
    bn(torch.randn(4, 3, 2, 2))
    bn(torch.randn(4, 3, 2, 2))
    converted = from_torch_state_dict(bn.state_dict(), dtype="float32")
    assert set(converted) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert converted["num_batches_tracked"].dtype == np.int64 and converted["num_batches_tracked"].shape == ()
    assert int(converted["num_batches_tracked"]) == 2
    assert converted["running_var"].dtype == np.float32
    back = to_torch_state_dict(converted)
    assert back["num_batches_tracked"].dtype == torch.int64 and back["num_batches_tracked"].shape == ()
    fresh = torch.nn.BatchNorm2d(3)
    fresh.load_state_dict(back)
    assert int(fresh.num_batches_tracked) == 2
    np.testing.assert_allclose(fresh.running_mean.numpy(), bn.running_mean.numpy(), rtol=1e-6)


def test_dtype_key_map_and_bfloat16():
    sd = {"features.conv.weight": torch.ones(2, 2, dtype=torch.float64), "head.bias": torch.zeros(2),
          "half": torch.ones(3, dtype=torch.bfloat16), "skip.me": torch.zeros(1)}
    renamed = from_torch_state_dict(sd, dtype="float32",
                                    key_map=lambda k: None if k.startswith("skip") else k.replace("features.", ""))
    assert list(renamed) == ["conv.weight", "head.bias", "half"]
    assert all(v.dtype == np.float32 for v in renamed.values())
    back = to_torch_state_dict(renamed, key_map={"conv.weight": "features.conv.weight"})
    assert list(back) == ["features.conv.weight", "head.bias", "half"]


def test_strict_backend_model_exports():
    model = strict_layer(mg.nn.Linear(3, 2, dtype="float64"))
    exported = to_torch_state_dict(model)
    np.testing.assert_array_equal(exported["weight"].numpy(), np.asarray(model.weight.data))


def test_errors(monkeypatch):
    with pytest.raises(TypeError, match="from_torch_state_dict: expected a mapping name -> tensor"):
        from_torch_state_dict(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="entry 'w' is a str, not a tensor"):
        from_torch_state_dict({"w": "nope"})
    with pytest.raises(ValueError, match="two entries map to the name 'x'"):
        from_torch_state_dict({"a": torch.zeros(1), "b": torch.zeros(1)}, key_map=lambda k: "x")
    with pytest.raises(TypeError, match="to_torch_state_dict: expected a minigrad Layer or a state dict"):
        to_torch_state_dict([1, 2])
    monkeypatch.setitem(sys.modules, "torch", None)       # PyTorch not installed
    with pytest.raises(ImportError, match="to_torch_state_dict needs PyTorch.*pip install torch"):
        to_torch_state_dict({"w": np.zeros(2)})
