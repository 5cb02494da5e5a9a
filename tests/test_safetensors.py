"""mg.io.save_safetensors / load_safetensors: files the safetensors package's PyTorch and NumPy loaders read,
and files they write, with equal outputs on both sides."""
import sys

import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
from support import torch_twins  # noqa: E402  (needs torch)

st_torch = pytest.importorskip("safetensors.torch")   # part of the test extra (minigrad[onnx])
import safetensors  # noqa: E402
import safetensors.numpy as st_numpy  # noqa: E402


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_minigrad_lenet_loads_into_torch_sequential(tmp_path):
    mg.manual_seed(1)
    model = mg.models.lenet5(dtype="float64")
    path = mg.io.save_safetensors(model, tmp_path / "lenet.safetensors")
    twin = torch_twins.lenet5().double()
    twin.load_state_dict(st_torch.load_file(path))            # strict: every name and shape matches
    x = _x((4, 1, 28, 28))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-10, atol=1e-12)


def test_torch_lenet_loads_into_minigrad(tmp_path):
    torch.manual_seed(2)
    twin = torch_twins.lenet5().double()
    st_torch.save_file(twin.state_dict(), str(tmp_path / "torch.safetensors"))
    state = mg.io.load_safetensors(tmp_path / "torch.safetensors")
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model = mg.models.lenet5(dtype="float64")
    model.load_state_dict(state)
    x = _x((3, 1, 28, 28), seed=3)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-10, atol=1e-12)


def test_batchnorm_buffers_round_trip_with_torch(tmp_path):
    """Running statistics and the 0-d int64 num_batches_tracked keep dtype and shape both ways."""
    twin = torch_twins.vgg_small().eval()
    torch_twins.randomize_batchnorm(twin)
    st_torch.save_file(twin.state_dict(), str(tmp_path / "vgg.safetensors"))
    model = mg.models.vgg_small().eval()
    model.load_state_dict(mg.io.load_safetensors(tmp_path / "vgg.safetensors"))
    x = _x((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-5)
    mg.io.save_safetensors(model, tmp_path / "back.safetensors")
    back = st_torch.load_file(str(tmp_path / "back.safetensors"))
    assert back["features.1.num_batches_tracked"].shape == torch.Size([])
    assert back["features.1.num_batches_tracked"].dtype == torch.int64
    for name, value in twin.state_dict().items():
        assert torch.equal(back[name], value), name


def test_numpy_loader_and_order_and_metadata(tmp_path):
    model = mg.models.mlp(hidden=(8, 4))
    path = mg.io.save_safetensors(model.state_dict(), tmp_path / "m.safetensors", metadata={"epoch": "3"})
    plain = st_numpy.load_file(str(path))
    loaded = mg.io.load_safetensors(path)
    assert set(plain) == set(loaded) == set(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(plain[name], value)
        np.testing.assert_array_equal(loaded[name], value)
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() == {"epoch": "3"}


def test_truncated_file_raises_clear_error(tmp_path):
    path = mg.io.save_safetensors(mg.models.mlp(hidden=(8,)), tmp_path / "m.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(mg.io.SafetensorsError, match="truncated, corrupted or not a safetensors file"):
        mg.io.load_safetensors(path)
    open(path, "wb").write(b"not a safetensors file at all")
    with pytest.raises(mg.io.SafetensorsError, match="m.safetensors"):
        mg.io.load_safetensors(path)


def test_every_truncation_of_a_file_is_refused_clearly(tmp_path):
    """Each prefix of a file (cut anywhere, empty included) raises SafetensorsError naming the file."""
    path = mg.io.save_safetensors(mg.models.mlp(hidden=(4,), in_features=6, num_classes=3), tmp_path / "m.st")
    data = open(path, "rb").read()
    cut_path = tmp_path / "cut.st"
    for cut in range(len(data)):
        cut_path.write_bytes(data[:cut])
        with pytest.raises(mg.io.SafetensorsError, match=r"cut.st: cannot read .*truncated"):
            mg.io.load_safetensors(cut_path)


def test_bfloat16_file_is_refused_naming_the_tensor_and_dtype(tmp_path):
    """NumPy has no bfloat16: the error says so (it used to call the file truncated or corrupted)."""
    st_torch.save_file({"a": torch.ones(2), "w": torch.ones(2, dtype=torch.bfloat16)}, str(tmp_path / "bf.st"))
    with pytest.raises(mg.io.SafetensorsError, match=r"bf.st: tensor 'w' has dtype BF16, which NumPy cannot hold"):
        mg.io.load_safetensors(tmp_path / "bf.st")
    st_torch.save_file({"h": torch.ones(2, dtype=torch.float16), "i": torch.ones(2, dtype=torch.int32),
                        "b": torch.ones(2, dtype=torch.bool)}, str(tmp_path / "ok.st"))
    state = mg.io.load_safetensors(tmp_path / "ok.st")
    assert {k: str(v.dtype) for k, v in state.items()} == {"h": "float16", "i": "int32", "b": "bool"}


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(TypeError, match="entry 'w' is a list"):
        mg.io.save_safetensors({"w": [1.0, 2.0]}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata must be a dict of str -> str"):
        mg.io.save_safetensors({"w": np.zeros(2)}, tmp_path / "x.safetensors", metadata={"epoch": 3})
    assert not (tmp_path / "x.safetensors").exists()


def test_missing_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)    # import fails as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[onnx\]"'):
        mg.io.save_safetensors({"w": np.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ImportError, match=r"mg.io.load_safetensors needs the 'safetensors' package"):
        mg.io.load_safetensors(tmp_path / "x.safetensors")
