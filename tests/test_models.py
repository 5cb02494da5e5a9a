"""mg.models: shapes, parameter counts, state-dict names equal to the PyTorch twins', structure,
initialisation, summaries and a backward pass through each model."""
import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
from support import torch_twins  # noqa: E402  (tests/support/torch_twins.py)


def _names(model):
    """State-dict keys, sorted: minigrad lists parameters before buffers, torch interleaves them per module."""
    return sorted(model.state_dict())


def test_lenet5_shapes_params_and_names():
    model = mg.models.lenet5()
    twin = torch_twins.lenet5()
    assert _names(model) == sorted(twin.state_dict())
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters()) == 61706
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype("float32")
    y = model(x)
    assert y.shape == (2, 10) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and dx.dtype == np.float32
    rows = model.summary((1, 1, 28, 28), verbose=False).rows
    assert [r[3] for r in rows] == [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10),
                                    (1, 16, 10, 10), (1, 16, 5, 5), (1, 400), (1, 120), (1, 120), (1, 84),
                                    (1, 84), (1, 10)]
    assert mg.models.lenet5(num_classes=7)(x).shape == (2, 7)


@pytest.mark.parametrize("hidden", [(256,), (64, 32), 16, ()])
def test_mlp(hidden):
    model = mg.models.mlp(in_features=12, hidden=hidden, num_classes=3)
    twin = torch_twins.mlp(12, (hidden,) if isinstance(hidden, int) else hidden, 3)
    assert _names(model) == sorted(twin.state_dict())
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    assert type(model[0]).__name__ == "Flatten"
    y = model(np.zeros((5, 3, 4), "float32"))
    assert y.shape == (5, 3)
    assert model.backward(np.ones_like(y)).shape == (5, 3, 4)


def test_mlp_defaults():
    model = mg.models.mlp()
    assert model.num_parameters() == 784 * 256 + 256 + 256 * 10 + 10
    assert model(np.zeros((2, 1, 28, 28), "float32")).shape == (2, 10)


def test_vgg_small_shapes_params_names_and_modes():
    model = mg.models.vgg_small(dropout=0.3)
    twin = torch_twins.vgg_small(dropout=0.3)
    assert _names(model) == sorted(twin.state_dict())
    assert {"features.0.weight", "features.1.weight", "features.1.bias", "features.1.running_mean",
            "features.1.running_var", "features.1.num_batches_tracked", "classifier.5.bias"} < set(_names(model))
    assert model.num_parameters() == sum(p.numel() for p in twin.parameters())
    assert [layer.p for layer in model.modules() if type(layer).__name__ == "Dropout"] == [0.3, 0.3]
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype("float32")
    y = model(x)
    assert y.shape == (2, 10)
    assert model.backward(np.ones_like(y)).shape == x.shape
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))   # eval: no dropout, running statistics
    assert model.summary((1, 3, 32, 32), verbose=False).rows[-1][3] == (1, 10)
    one_channel = mg.models.vgg_small(num_classes=4, in_channels=1)
    assert one_channel(np.zeros((1, 1, 32, 32), "float32")).shape == (1, 4)


def test_resnet20_structure_params_and_names():
    model = mg.models.resnet20()
    twin = torch_twins.ResNet20()
    assert isinstance(model, mg.nn.Graph)
    assert _names(model) == sorted(twin.state_dict())
    n_params = sum(p.numel() for p in twin.parameters())
    assert model.num_parameters() == n_params
    assert 0.26e6 < n_params < 0.28e6          # "0.27M" in He et al., table 6 (+ 2 projection shortcuts)
    assert [name for name, _, _ in model.nodes] == ["conv1", "bn1", "relu", "layer1", "layer2", "layer3",
                                                   "avgpool", "flatten", "fc"]
    block = model["layer2"][0]
    assert isinstance(block, mg.nn.Graph)
    assert [(name, inputs) for name, _, inputs in block.nodes][-3:] == [
        ("downsample", ("x",)), ("add", ("bn2", "downsample")), ("relu2", ("add",))]
    assert [(name, inputs) for name, _, inputs in model["layer1"][1].nodes][-2] == ("add", ("bn2", "x"))
    projections = [name for name in _names(model) if "downsample" in name and name.endswith("0.weight")]
    assert projections == ["layer2.0.downsample.0.weight", "layer3.0.downsample.0.weight"]
    assert model["conv1"].label == "Conv2d 'conv1'"
    assert model["layer3"][2]["conv2"].label == "Conv2d 'layer3.2.conv2'"


def test_resnet20_forward_backward_and_summary():
    model = mg.models.resnet20(num_classes=5)
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype("float32")
    y = model(x)
    assert y.shape == (2, 5) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and all(p.grad.any() for p in model.parameters())
    result = model.summary((1, 3, 32, 32), verbose=False)
    shapes = {name: shape for _, name, _, shape, _ in result.rows}
    assert shapes["layer1"] == (1, 16, 32, 32) and shapes["layer2"] == (1, 32, 16, 16)
    assert shapes["layer3"] == (1, 64, 8, 8) and shapes["layer2.0.downsample"] == (1, 32, 16, 16)
    assert shapes["avgpool"] == (1, 64, 1, 1) and shapes["fc"] == (1, 5)
    assert result.total_params == model.num_parameters()


def test_resnet20_he_initialisation():
    mg.manual_seed(0)
    model = mg.models.resnet20()
    weight = model["layer3"][1]["conv1"].weight.data          # fan_out = 64 * 3 * 3
    assert weight.dtype == np.float32
    assert abs(weight.std() - np.sqrt(2 / 576)) < 0.1 * np.sqrt(2 / 576)
    mg.manual_seed(0)
    again = mg.models.resnet20()
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_models_float64_and_repr():
    model = mg.models.lenet5(dtype="float64")
    assert model.dtype == np.float64
    assert model(np.zeros((1, 1, 28, 28))).dtype == np.float64
    assert "(11): Linear(in_features=84, out_features=10, bias=True)" in repr(model)
    text = repr(mg.models.resnet20())
    assert "(layer1): Sequential(" in text and "(add): Add() <- bn2, x" in text and "<- flatten" in text


@pytest.mark.parametrize("name", ["lenet5", "vgg_small", "resnet20"])
def test_models_run_on_every_backend(name, backend, xp):
    """Each model on NumPy and (when available) CuPy: same output and input gradient."""
    shape = (2, 1, 28, 28) if name == "lenet5" else (2, 3, 32, 32)
    mg.manual_seed(1)
    reference = getattr(mg.models, name)().to("numpy")
    mg.manual_seed(1)
    moved = getattr(mg.models, name)().to(backend)
    reference.eval()
    moved.eval()
    x = np.random.default_rng(3).standard_normal(shape).astype("float32")
    y_ref, y = reference(x), moved(xp.asarray(x))
    assert mg.backend.backend_of(y) == backend
    np.testing.assert_allclose(mg.backend.to_backend(y, "numpy"), y_ref, rtol=1e-4, atol=1e-5)
    dx_ref, dx = reference.backward(np.ones_like(y_ref)), moved.backward(xp.ones_like(y))
    np.testing.assert_allclose(mg.backend.to_backend(dx, "numpy"), dx_ref, rtol=1e-4, atol=1e-5)
