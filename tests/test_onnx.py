"""mg.onnx: export to ONNX (checker, ONNX Runtime equal to minigrad), import ONNX files (ours and
torch.onnx.export's) as trainable Graphs, and clear errors for what cannot be expressed."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")        # the test extra includes minigrad[onnx]
ort = pytest.importorskip("onnxruntime")

RTOL = 1e-5


def _x(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _randomize_bn(model, seed=5):
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones make eval mode an identity)."""
    rng = np.random.default_rng(seed)

    def fill(array, values):
        array[...] = mg.backend.to_backend(values.astype(array.dtype), mg.backend.backend_of(array))

    for layer in model.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.track_running_stats:
            c = layer.num_features
            fill(layer.running_mean, 0.1 * rng.standard_normal(c))
            fill(layer.running_var, 0.5 + rng.random(c))
            if layer.weight is not None:
                fill(layer.weight.data, 0.5 + rng.random(c))
            if layer.bias is not None:
                fill(layer.bias.data, 0.1 * rng.standard_normal(c))
    return model


def _run_ort(path, *inputs):
    session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def _assert_close(actual, expected, rtol=RTOL):
    """Relative to the output's scale: max |a - e| <= rtol * max |e|."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-30)
    assert float(np.abs(actual - expected).max()) <= rtol * scale


def _shared_concat_graph():
    """A Graph with a layer used at two nodes (shared weights) and a Concat of two branches."""
    g = nn.Graph()
    x = g.input("x")
    shared = nn.Conv2d(4, 4, 3, padding=1)
    h = g.add("stem", nn.Conv2d(3, 4, 3, padding=1), x)
    a = g.add("branch_a", shared, h)
    a = g.add("relu_a", nn.ReLU(), a)
    b = g.add("branch_b", shared, a)                       # the same layer again
    c = g.add("cat", nn.Concat(dim=1), a, b)
    c = g.add("bn", nn.BatchNorm2d(8), c)
    s = g.add("sum", nn.Add(), c, g.add("cat_skip", nn.Concat(), h, h))
    s = g.add("pool", nn.AdaptiveAvgPool2d(1), s)
    s = g.add("flat", nn.Flatten(), s)
    g.output(g.add("fc", nn.Linear(8, 5), s))
    return g


MODELS = {
    "lenet5": (mg.models.lenet5, (2, 1, 28, 28)),
    "mlp": (lambda: mg.models.mlp(hidden=(32, 16)), (2, 1, 28, 28)),
    "vgg_small": (mg.models.vgg_small, (2, 3, 32, 32)),
    "resnet20": (mg.models.resnet20, (2, 3, 32, 32)),
    "basic_block": (lambda: mg.models.basic_block(4, 8, stride=2), (2, 4, 8, 8)),
    "shared_concat_graph": (_shared_concat_graph, (2, 3, 8, 8)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_models_export_run_in_onnxruntime(name, tmp_path):
    build, shape = MODELS[name]
    mg.manual_seed(0)
    model = _randomize_bn(build())
    model.train()
    proto = mg.onnx.export(model, _x(shape), tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    assert all(layer.training for layer in model.modules())          # modes restored
    names = {init.name for init in proto.graph.initializer}
    assert {k for k in model.state_dict() if not k.endswith("num_batches_tracked")} <= names
    x = _x((3,) + shape[1:], seed=1)                                  # another batch size: N is symbolic
    model.eval()
    expected = model(x)
    (got,) = _run_ort(tmp_path / "m.onnx", x)
    _assert_close(got, expected)


def test_shared_layer_written_once(tmp_path):
    proto = mg.onnx.export(_shared_concat_graph(), _x((2, 3, 8, 8)), tmp_path / "g.onnx")
    names = [init.name for init in proto.graph.initializer]
    assert names.count("branch_a.weight") == 1 and not any(n.startswith("branch_b") for n in names)
    convs = [n for n in proto.graph.node if n.op_type == "Conv" and "branch_a.weight" in n.input]
    assert len(convs) == 2


def _layer_cases():
    img = (2, 3, 9, 9)
    return [
        ("conv_stride_pad", lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), img, 17),
        ("conv_groups_dilation", lambda: nn.Sequential(nn.Conv2d(3, 4, 1),
                                                       nn.Conv2d(4, 6, 3, groups=2, dilation=2, padding=2)), img, 17),
        ("conv_same_asymmetric", lambda: nn.Conv2d(3, 4, 4, padding="same"), img, 17),
        ("conv_reflect", lambda: nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="reflect"), img, 17),
        ("conv_replicate", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate", bias=False), img, 17),
        ("conv_circular_opset19", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), img, 19),
        ("conv_transpose", lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), img, 17),
        ("conv_transpose_groups", lambda: nn.ConvTranspose2d(3, 6, 3, groups=3, dilation=2, bias=False), img, 17),
        ("linear_2d", lambda: nn.Sequential(nn.Flatten(), nn.Linear(243, 5)), img, 17),
        ("linear_nd", lambda: nn.Linear(9, 5), img, 17),
        ("linear_nd_no_bias", lambda: nn.Linear(9, 5, bias=False), img, 17),
        ("activations", lambda: nn.Sequential(nn.ReLU(), nn.LeakyReLU(0.2), nn.Sigmoid(), nn.Tanh()), img, 17),
        ("gelu_erf_formula", lambda: nn.GELU(), img, 17),
        ("gelu_tanh_formula", lambda: nn.GELU("tanh"), img, 17),
        ("gelu_op_opset20", lambda: nn.Sequential(nn.GELU(), nn.GELU("tanh")), img, 20),
        ("softmax_logsoftmax", lambda: nn.Sequential(nn.Softmax(dim=1), nn.LogSoftmax(dim=-1), nn.Softmax()), img, 17),
        ("maxpool_ceil", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), img, 17),
        ("maxpool_dilation", lambda: nn.MaxPool2d(2, 1, dilation=2), img, 17),
        ("avgpool_ceil_exclude_pad", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), img, 17),
        ("avgpool_ceil_include_pad", lambda: nn.AvgPool2d(2, 2, 1, ceil_mode=True), (2, 3, 8, 8), 17),
        ("avgpool_pad", lambda: nn.AvgPool2d(3, 2, 1), img, 17),
        ("global_avgpool", lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), img, 17),
        ("batchnorm2d", lambda: nn.BatchNorm2d(3), img, 17),
        ("batchnorm1d", lambda: nn.Sequential(nn.Flatten(), nn.Linear(243, 6), nn.BatchNorm1d(6)), img, 17),
        ("batchnorm_no_affine", lambda: nn.BatchNorm2d(3, affine=False), img, 17),
        ("layernorm", lambda: nn.LayerNorm((9, 9)), img, 17),
        ("layernorm_no_bias", lambda: nn.LayerNorm(9, bias=False), img, 17),
        ("flatten_dropout_identity", lambda: nn.Sequential(nn.Flatten(2), nn.Dropout(0.3), nn.Identity()), img, 17),
        ("mul", lambda: _two_branch(nn.Mul()), img, 17),
        ("add_three_inputs_as_sum", lambda: _two_branch(nn.Add()), img, 17),
    ]


def _two_branch(merge):
    g = nn.Graph()
    x = g.input("x")
    g.output(g.add("merge", merge, g.add("a", nn.Tanh(), x), g.add("b", nn.Sigmoid(), x), x))
    return g


LAYER_CASES = _layer_cases()


@pytest.mark.parametrize("name,build,shape,opset", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_export_matches_onnxruntime(name, build, shape, opset, tmp_path):
    mg.manual_seed(3)
    model = _randomize_bn(build())
    mg.onnx.export(model, _x(shape), tmp_path / "m.onnx", opset=opset)
    x = _x((3,) + shape[1:], seed=1)
    model.eval()
    expected = model(x)
    (got,) = _run_ort(tmp_path / "m.onnx", x)
    _assert_close(got, expected)


@pytest.mark.parametrize("build,opset,match", [
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.MSELoss()), 17, r"MSELoss '1'.*has no ONNX equivalent"),
    (lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular"), 17, r"Conv2d.*circular.*opset 19"),
    (lambda: nn.AvgPool2d(2, divisor_override=3), 17, r"AvgPool2d.*divisor_override=3"),
    (lambda: nn.BatchNorm2d(3, track_running_stats=False), 17, r"BatchNorm2d.*track_running_stats=False"),
    (lambda: nn.AdaptiveAvgPool2d(2), 17, r"AdaptiveAvgPool2d.*output_size \(2, 2\)"),
    (lambda: nn.MaxPool2d(2, return_indices=True), 17, r"MaxPool2d.*return_indices"),
    (lambda: nn.LayerNorm(9), 13, r"LayerNorm.*opset 17; got opset=13"),
    (lambda: nn.ReLU(), 12, r"opset must be an int in \[13, 21\], got 12"),
])
def test_unexportable_layers_raise_clear_errors(build, opset, match, tmp_path):
    with pytest.raises(mg.onnx.OnnxError, match=match):
        mg.onnx.export(build(), _x((2, 3, 9, 9)), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"mg.onnx.export: expected a minigrad Layer .*got dict"):
        mg.onnx.export({"w": np.zeros(2)}, _x((2, 3)), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"example input 0 must be a floating NumPy/CuPy array"):
        mg.onnx.export(nn.ReLU(), [[1.0, 2.0]], tmp_path / "m.onnx")


def test_subclass_with_own_forward_is_not_exported_as_its_base(tmp_path):
    class Doubled(nn.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(mg.onnx.OnnxError, match="Doubled"):
        mg.onnx.export(nn.Sequential(Doubled()), _x((2, 3)), tmp_path / "m.onnx")


def test_export_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "minigrad\[onnx\]"'):
        mg.onnx.export(nn.ReLU(), _x((2, 3)), tmp_path / "m.onnx")


_WITHOUT_EXTRA = textwrap.dedent("""
    import sys
    for name in ("onnx", "onnxruntime", "safetensors", "safetensors.numpy", "safetensors.torch"):
        sys.modules[name] = None                       # importing it fails, as if not installed
    import numpy as np
    import minigrad as mg
    from minigrad.cli import main
    calls = {"mg.onnx.export": lambda: mg.onnx.export(mg.nn.ReLU(), np.zeros((1, 2), "float32"), "m.onnx"),
             "mg.onnx.load": lambda: mg.onnx.load("m.onnx"),
             "mg.io.save_safetensors": lambda: mg.io.save_safetensors({"w": np.zeros(2)}, "w.st"),
             "mg.io.load_safetensors": lambda: mg.io.load_safetensors("w.st")}
    for what, call in calls.items():
        try:
            call()
            print(what, "| no error")
        except ImportError as exc:
            print(what, "|", exc)
    mg.save("c.npz", mg.models.lenet5(), run_config={"model": "lenet5"})
    print("status", main(["export", "c.npz", "--onnx", "m.onnx"]))
""")


def test_without_the_extra_minigrad_imports_and_each_function_names_the_extra(tmp_path):
    """A fresh interpreter without onnx, onnxruntime and safetensors: ``import minigrad`` works, and export,
    load, both safetensors functions and ``minigrad export`` fail with ``pip install "minigrad[onnx]"``."""
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" | ", 1) for line in done.stdout.splitlines() if " | " in line)
    assert sorted(lines) == ["mg.io.load_safetensors", "mg.io.save_safetensors", "mg.onnx.export", "mg.onnx.load"]
    for what, message in lines.items():
        assert message.startswith(f"{what} needs the '") and message.endswith('pip install "minigrad[onnx]"'), message
    assert "status 2" in done.stdout.splitlines()
    assert done.stderr.startswith("minigrad export: error: mg.onnx.export needs the 'onnx' package")
    assert done.stderr.count("\n") == 1 and 'pip install "minigrad[onnx]"' in done.stderr
    assert not (tmp_path / "m.onnx").exists()


# -- import ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_models_reimport_as_graph_with_same_outputs(name, tmp_path):
    build, shape = MODELS[name]
    mg.manual_seed(0)
    model = _randomize_bn(build())
    mg.onnx.export(model, _x(shape), tmp_path / "m.onnx")
    graph = mg.onnx.load(tmp_path / "m.onnx")
    assert isinstance(graph, nn.Graph)
    x = _x((3,) + shape[1:], seed=1)
    model.eval()
    graph.eval()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-6, atol=1e-6)
    expected = {k.rsplit(".", 1)[0].replace(".", "_") + "." + k.rsplit(".", 1)[1]
                for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert expected <= set(graph.state_dict())                     # names from the ONNX (state-dict) names


def test_reimported_shared_layer_stays_shared(tmp_path):
    mg.onnx.export(_shared_concat_graph(), _x((2, 3, 8, 8)), tmp_path / "g.onnx")
    graph = mg.onnx.load(tmp_path / "g.onnx")
    layers = [layer for _, layer, _ in graph.nodes if isinstance(layer, nn.Conv2d)]
    assert len(layers) == 3 and len({id(layer) for layer in layers}) == 2


@pytest.mark.parametrize("name", [c[0] for c in LAYER_CASES])
def test_layer_cases_reimport(name, tmp_path):
    _, build, shape, opset = next(c for c in LAYER_CASES if c[0] == name)
    mg.manual_seed(3)
    model = _randomize_bn(build())
    mg.onnx.export(model, _x(shape), tmp_path / "m.onnx", opset=opset)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    x = _x((3,) + shape[1:], seed=1)
    model.eval()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-6, atol=1e-6)


# -- files written by torch.onnx.export ------------------------------------------------------------------

def _torch_models():
    import torch
    from torch import nn as tnn
    from support import torch_twins

    class Block(tnn.Module):
        """A ResNet-style block with BatchNorm, a projection shortcut and x.view(x.size(0), -1)."""
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(3, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8)
            self.conv2, self.bn2 = tnn.Conv2d(8, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8)
            self.down = tnn.Sequential(tnn.Conv2d(3, 8, 1, stride=1, bias=False), tnn.BatchNorm2d(8))
            self.fc = tnn.Linear(8, 4)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = torch.relu(self.bn2(self.conv2(h)) + self.down(x))
            h = tnn.functional.adaptive_avg_pool2d(h, 1)
            return self.fc(h.view(h.size(0), -1))

    def vgg():
        return tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(8, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(16 * 4 * 4, 10), tnn.LogSoftmax(dim=1))

    return {"lenet5": (torch_twins.lenet5, (4, 1, 28, 28)), "resnet_block": (Block, (4, 3, 8, 8)),
            "vgg_stack": (vgg, (4, 3, 16, 16))}, torch_twins


def _torch_export(module, x, path, opset=None):
    """The TorchScript exporter; ``opset`` None is its default (20 in PyTorch 2.9 and later)."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=False,
                          opset_version=opset)


def _mg_name(torch_name):
    """torch 'layer.0.conv1.weight' -> the imported Graph's 'layer_0_conv1.weight'."""
    owner, leaf = torch_name.rsplit(".", 1)
    return owner.replace(".", "_") + "." + leaf


@pytest.mark.parametrize("name", ["lenet5", "resnet_block", "vgg_stack"])
def test_torch_exported_models_import_run_and_train_like_torch(name, tmp_path):
    torch = pytest.importorskip("torch")
    models, torch_twins = _torch_models()
    build, shape = models[name]
    torch.manual_seed(0)
    module = torch_twins.randomize_batchnorm(build()).eval()
    # float32: ONNX Runtime's output against the imported Graph's
    x32 = torch.randn(*shape)
    _torch_export(module, x32, tmp_path / "f32.onnx")
    graph = mg.onnx.load(tmp_path / "f32.onnx").eval()
    x_other = _x((3,) + shape[1:], seed=2)
    (expected,) = _run_ort(tmp_path / "f32.onnx", x_other)
    _assert_close(graph(x_other), expected)
    # float64: one training step (batch statistics, SGD) equals PyTorch's on the original module
    module = module.double()
    x64 = torch.randn(*shape, dtype=torch.float64)
    _torch_export(module, x64, tmp_path / "f64.onnx")
    graph = mg.onnx.load(tmp_path / "f64.onnx")
    has_dropout = any(isinstance(m, torch.nn.Dropout) for m in module.modules())
    with torch.no_grad():
        weights = torch.randn(*module(x64).shape, dtype=torch.float64)   # dL/dy (eval: no statistics move)
    module.train()
    graph.train()
    if has_dropout:                                      # the same step without randomness on either side
        for m in module.modules():
            if isinstance(m, torch.nn.Dropout):
                m.eval()
        for _, layer, _ in graph.nodes:
            if isinstance(layer, nn.Dropout):
                layer.eval()
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    (module(x64) * weights).sum().backward()
    opt.step()
    mg_opt = mg.optim.SGD(graph.parameters(), lr=0.1, momentum=0.9)
    y = graph(x64.numpy())
    graph.backward(weights.numpy())
    mg_opt.step()
    state = graph.state_dict()
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        np.testing.assert_allclose(state[_mg_name(key)], value.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)
    assert y.dtype == np.float64


# -- errors ------------------------------------------------------------------------------------------------

def _single_node_model(node, inputs, outputs, initializers=(), opset=17):
    helper = onnx.helper
    graph = helper.make_graph([node], "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name, shape):
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def test_unsupported_op_names_node_and_op():
    node = onnx.helper.make_node("Cos", ["x"], ["y"], name="my_cos")
    model = _single_node_model(node, [_info("x", [2, 3])], [_info("y", [2, 3])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'my_cos' \(Cos\): op Cos is not supported"):
        mg.onnx.load(model)


def test_unsupported_attribute_names_node_op_and_attribute():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv_same", auto_pad="SAME_LOWER")
    model = _single_node_model(node, [_info("x", [1, 3, 8, 8])], [_info("y", [1, 4, 8, 8])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'conv_same' \(Conv\): attribute 'auto_pad' = 'SAME_LOWER'"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], storage_order=1)
    model = _single_node_model(node, [_info("x", [1, 3, 8, 8])], [_info("y", [1, 3, 7, 7])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'pool' \(MaxPool\): attribute 'storage_order' = 1"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=2.0)
    weight = onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    model = _single_node_model(node, [_info("x", [1, 3])], [_info("y", [1, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'fc' \(Gemm\): attribute 'alpha' = 2.0"):
        mg.onnx.load(model)


def test_unsupported_patterns_are_refused_not_guessed():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[0, 0, 1, 2], strides=[2, 2])
    model = _single_node_model(node, [_info("x", [1, 3, 8, 8])], [_info("y", [1, 4, 4, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'c' \(Conv\): attribute 'pads' = \[0, 0, 1, 2\]"):
        mg.onnx.load(model)
    shape = onnx.numpy_helper.from_array(np.array([2, 3, 2], np.int64), "s")
    node = onnx.helper.make_node("Reshape", ["x", "s"], ["y"], name="r")
    model = _single_node_model(node, [_info("x", [2, 6])], [_info("y", [2, 3, 2])], [shape])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'r' \(Reshape\).*not a flatten"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("Conv", ["x", "x"], ["y"], name="dyn")
    model = _single_node_model(node, [_info("x", [1, 1, 3, 3])], [_info("y", [1, 1, 1, 1])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'dyn' \(Conv\): its weight \('x'\) is computed at run time"):
        mg.onnx.load(model)


def test_truncated_or_foreign_file_raises_clear_error(tmp_path):
    mg.onnx.export(mg.models.lenet5(), _x((1, 1, 28, 28)), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    for cut in (len(data) // 2, 100, 7):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(mg.onnx.OnnxError, match=r"cut.onnx: .*(truncated|corrupted)"):
            mg.onnx.load(tmp_path / "cut.onnx")
    (tmp_path / "text.onnx").write_bytes(b"this is not a model")
    with pytest.raises(mg.onnx.OnnxError, match=r"text.onnx"):
        mg.onnx.load(tmp_path / "text.onnx")


def test_load_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'mg.onnx.load needs the \'onnx\' package.*minigrad\[onnx\]'):
        mg.onnx.load(tmp_path / "m.onnx")


# -- minigrad export -------------------------------------------------------------------------------------

def test_cli_export_writes_onnx_and_safetensors(tmp_path, capsys):
    from minigrad.cli import main
    mg.manual_seed(4)
    model = mg.models.lenet5()
    run = tmp_path / "run"
    run.mkdir()
    mg.save(run / "checkpoint.npz", model, run_config={"model": "lenet5"})
    assert main(["export", str(run), "--onnx", str(tmp_path / "l.onnx"),
                 "--safetensors", str(tmp_path / "l.safetensors")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "l.safetensors"), str(tmp_path / "l.onnx")]
    x = _x((5, 1, 28, 28))
    model.eval()
    (got,) = _run_ort(tmp_path / "l.onnx", x)
    _assert_close(got, model(x))
    weights = mg.io.load_safetensors(tmp_path / "l.safetensors")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], value)


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    from minigrad.cli import main
    assert main(["export", str(tmp_path / "missing.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    mg.save(tmp_path / "plain.npz", mg.models.mlp(hidden=(8,)))
    assert main(["export", str(tmp_path / "plain.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "no run configuration" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "plain.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minigrad export: error: nothing to write") and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def test_torch_branches_with_avgpool_concat_matmul_add_softmax(tmp_path):
    """AveragePool, MaxPool, Concat, GlobalAveragePool, Flatten, MatMul + Add (a bias) and Softmax from
    torch.onnx.export, with BatchNorm kept and folded into the Conv (PyTorch's default); then a training step."""
    torch = pytest.importorskip("torch")
    from torch import nn as tnn

    class Branches(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = tnn.Conv2d(3, 6, 3, padding=1), tnn.BatchNorm2d(6)
            self.w = tnn.Parameter(0.3 * torch.randn(18, 5))
            self.b = tnn.Parameter(0.1 * torch.randn(5))

        def forward(self, x):
            h = torch.relu(self.bn(self.conv(x)))
            a = tnn.functional.avg_pool2d(h, 3, 1, 1, count_include_pad=False)
            m = tnn.functional.max_pool2d(h, 3, 1, 1)
            g = torch.flatten(tnn.functional.adaptive_avg_pool2d(torch.cat([a, m, h], 1), 1), 1)
            return torch.softmax(torch.matmul(g, self.w) + self.b, dim=1)

    torch.manual_seed(1)
    module = Branches().eval()
    x = _x((3, 3, 8, 8), seed=4)
    for fold in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(2, 3, 8, 8),), str(tmp_path / "b.onnx"), dynamo=False,
                              input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}},
                              do_constant_folding=fold)
        graph = mg.onnx.load(tmp_path / "b.onnx").eval()
        (expected,) = _run_ort(tmp_path / "b.onnx", x)
        _assert_close(graph(x), expected)
        ops = {n.op_type for n in onnx.load(str(tmp_path / "b.onnx")).graph.node}
        assert ("BatchNormalization" in ops) == (not fold)
    # the unfolded file, float64: one SGD step in train mode equals PyTorch's
    module = module.double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, 3, 8, 8, dtype=torch.float64),), str(tmp_path / "b64.onnx"),
                          dynamo=False, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}},
                          do_constant_folding=False)
    graph = mg.onnx.load(tmp_path / "b64.onnx").train()
    x64 = x.astype(np.float64)
    grad = np.random.default_rng(5).standard_normal((3, 5))
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=0.5)
    (module(torch.from_numpy(x64)) * torch.from_numpy(grad)).sum().backward()
    opt.step()
    graph(x64)
    graph.backward(grad)
    mg.optim.SGD(graph.parameters(), lr=0.5).step()
    state = graph.state_dict()
    np.testing.assert_allclose(state["w.weight"], module.w.detach().numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(state["w.bias"], module.b.detach().numpy(), rtol=1e-10, atol=1e-12)
    for key in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        np.testing.assert_allclose(state[key], module.state_dict()[key].numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def test_export_import_and_safetensors_on_each_backend(backend, tmp_path):
    mg.manual_seed(0)
    model = _randomize_bn(mg.models.vgg_small(num_classes=4, config=(8, "M", 16, "M")))   # on the active backend
    host = _x((2, 3, 32, 32))
    x = mg.backend.to_backend(host, backend)
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    model.eval()
    expected = mg.backend.to_backend(model(x), "numpy")
    (got,) = _run_ort(tmp_path / "m.onnx", host)
    _assert_close(got, expected)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    assert {mg.backend.backend_of(a) for a in graph.state_dict().values()} == {backend}
    np.testing.assert_allclose(mg.backend.to_backend(graph(x), "numpy"), expected, rtol=1e-6, atol=1e-6)
    mg.io.save_safetensors(model, tmp_path / "m.safetensors")
    state = mg.io.load_safetensors(tmp_path / "m.safetensors", backend=backend)
    assert {mg.backend.backend_of(a) for a in state.values()} == {backend}


def test_shared_linear_on_nd_input_reimports_shared_with_its_bias(tmp_path):
    """A Linear used twice on (N, L, F) input exports as Transpose + MatMul + Add per use; both uses come
    back as one layer (one weight, one bias), so training updates them together as in the original."""
    g = nn.Graph()
    x = g.input("x")
    shared = nn.Linear(6, 6)
    h = g.add("lin", shared, x)
    h = g.add("act", nn.Tanh(), h)
    g.output(g.add("lin_again", shared, h))
    mg.onnx.export(g, _x((2, 3, 6)), tmp_path / "g.onnx")
    graph = mg.onnx.load(tmp_path / "g.onnx")
    linears = [layer for _, layer, _ in graph.nodes if isinstance(layer, nn.Linear)]
    assert len(linears) == 2 and linears[0] is linears[1] and linears[0].bias is not None
    assert sorted(graph.state_dict()) == ["lin.bias", "lin.weight"]
    x = _x((4, 3, 6), seed=2)
    np.testing.assert_allclose(graph(x), g(x), rtol=1e-6, atol=1e-6)


def test_kernel_shape_and_bias_shape_mismatches_are_refused():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="k", kernel_shape=[5, 5])
    model = _single_node_model(node, [_info("x", [1, 3, 8, 8])], [_info("y", [1, 4, 4, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'k' \(Conv\): attribute 'kernel_shape' = \[5, 5\] does not "
                                                 r"match the weight"):
        mg.onnx.load(model)
    helper = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 5), np.float32), "w")
    b = onnx.numpy_helper.from_array(np.ones((5, 1), np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["y"],
                                                                                       name="plus")]
    graph = helper.make_graph(nodes, "g", [_info("x", [5, 4])], [_info("y", [5, 5])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'plus' \(Add\): adding the constant 'b' of shape \(5, 1\)"):
        mg.onnx.load(model)


@pytest.mark.parametrize("opset,keepdims", [(17, 1), (18, 0)])
def test_reduce_mean_over_hw_and_reshape_allowzero(opset, keepdims, tmp_path):
    """What torch.onnx.export's newer (dynamo) exporter writes for x.mean((2, 3), keepdim=True) and
    x.view(N, -1): ReduceMean (axes as attribute before opset 18, as input from 18) and Reshape(allowzero=1)."""
    helper = onnx.helper
    inits = [onnx.numpy_helper.from_array(np.array([-1, 6], np.int64), "shape")]
    if opset >= 18:
        inits.append(onnx.numpy_helper.from_array(np.array([-2, -1], np.int64), "axes"))
        mean = helper.make_node("ReduceMean", ["x", "axes"], ["m"], name="mean", keepdims=keepdims)
    else:
        mean = helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[2, 3], keepdims=keepdims)
    flat = helper.make_node("Reshape", ["m", "shape"], ["y"], name="view", allowzero=1)
    graph = helper.make_graph([mean, flat], "g", [_info("x", ["N", 6, 5, 4])], [_info("y", ["N", 6])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = _x((3, 6, 5, 4))
    (expected,) = _run_ort(model.SerializeToString(), x)
    np.testing.assert_allclose(expected, x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mg.onnx.load(model)(x), expected, rtol=1e-6, atol=1e-7)


def test_reduce_mean_elsewhere_and_allowzero_with_zero_are_refused():
    helper = onnx.helper
    node = helper.make_node("ReduceMean", ["x"], ["y"], name="channel_mean", axes=[1], keepdims=1)
    model = _single_node_model(node, [_info("x", [2, 3, 4, 4])], [_info("y", [2, 1, 4, 4])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'channel_mean' \(ReduceMean\): attribute 'axes' = \[1\]"):
        mg.onnx.load(model)
    shape = onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "s")
    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="r", allowzero=1)
    model = _single_node_model(node, [_info("x", [2, 3, 4, 4])], [_info("y", [0, 96])], [shape])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'r' \(Reshape\): attribute 'allowzero' = 1"):
        mg.onnx.load(model)


@pytest.mark.parametrize("opset", [13, 17, 19, 21])
def test_each_supported_opset_gets_its_ir_version_and_runs(opset, tmp_path):
    model = mg.models.lenet5()
    proto = mg.onnx.export(model, _x((1, 1, 28, 28)), tmp_path / "m.onnx", opset=opset)
    assert proto.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    x = _x((2, 1, 28, 28), seed=6)
    model.eval()
    (got,) = _run_ort(tmp_path / "m.onnx", x)
    _assert_close(got, model(x))
    np.testing.assert_allclose(mg.onnx.load(tmp_path / "m.onnx").eval()(x), model(x), rtol=1e-6, atol=1e-6)


# -- GELU below opset 20: its formula reads back as one GELU ---------------------------------------------

@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_formula_reimports_as_one_gelu_and_trains(approximate, tmp_path):
    """Below opset 20 a GELU is written as its formula (Erf or Tanh, Mul, Add, Div); load turns the formula
    back into one GELU layer: same output and same input and weight gradients (float64)."""
    mg.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 6, dtype="float64"), nn.GELU(approximate), nn.Linear(6, 3, dtype="float64"))
    x = _x((4, 5), seed=8, dtype="float64")
    proto = mg.onnx.export(model, x, tmp_path / "m.onnx", opset=17)
    ops = [n.op_type for n in proto.graph.node]
    assert "Gelu" not in ops and ("Erf" if approximate == "none" else "Tanh") in ops
    graph = mg.onnx.load(tmp_path / "m.onnx")
    layers = [layer for _, layer, _ in graph.nodes]
    assert [type(layer).__name__ for layer in layers] == ["Linear", "GELU", "Linear"]
    assert layers[1].approximate == approximate
    grad = _x((4, 3), seed=9, dtype="float64")
    for net in (model, graph):
        net.zero_grad()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-12, atol=1e-14)
    dx_graph, dx_model = graph.backward(grad), model.backward(grad)
    np.testing.assert_allclose(dx_graph, dx_model, rtol=1e-12, atol=1e-14)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(dict(graph.named_parameters())[name].grad, param.grad, rtol=1e-12, atol=1e-14)


def _gelu_formula_model(half=0.5, extra_output=False, kappa=None):
    """GELU's formula written by hand: the erf form, or the tanh form when ``kappa`` is given."""
    helper, inits, nodes = onnx.helper, [], []

    def const(name, value):
        inits.append(onnx.numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def node(op, inputs, out):
        nodes.append(helper.make_node(op, inputs, [out], name=out))
        return out

    if kappa is None:
        t = node("Erf", [node("Div", ["x", const("sqrt2", np.sqrt(2.0))], "scaled")], "t")
    else:
        cube = node("Mul", [node("Mul", ["x", "x"], "x2"), "x"], "x3")
        inner = node("Add", ["x", node("Mul", [cube, const("k", kappa)], "kx3")], "u")
        t = node("Tanh", [node("Mul", [inner, const("c", np.sqrt(2 / np.pi))], "cu")], "t")
    node("Mul", [node("Mul", ["x", node("Add", [t, const("one", 1.0)], "one_plus")], "x_times"),
                 const("half", half)], "y")
    outputs = [_info("y", ["N", 3])] + ([_info("t", ["N", 3])] if extra_output else [])
    graph = helper.make_graph(nodes, "g", [_info("x", ["N", 3])], outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_gelu_formula_written_by_hand_reads_back_and_near_misses_are_refused():
    x = _x((4, 3), seed=10)
    for kappa, approximate in ((None, "none"), (0.044715, "tanh")):
        graph = mg.onnx.load(_gelu_formula_model(kappa=kappa))
        assert [(type(layer).__name__, layer.approximate) for _, layer, _ in graph.nodes] == [("GELU", approximate)]
        (expected,) = _run_ort(_gelu_formula_model(kappa=kappa).SerializeToString(), x)
        _assert_close(graph(x), expected)
    # a different constant, or an intermediate value used elsewhere: not a GELU, and refused (never guessed)
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'scaled' \(Div\): op Div is not supported.*GELU's formula"):
        mg.onnx.load(_gelu_formula_model(half=0.6))
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'scaled' \(Div\): op Div is not supported"):
        mg.onnx.load(_gelu_formula_model(extra_output=True))
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'kx3' \(Mul\)"):
        mg.onnx.load(_gelu_formula_model(kappa=0.05))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_torch_exported_gelu_formula_imports_as_gelu(approximate, tmp_path):
    """PyTorch's TorchScript exporter writes GELU's formula below opset 20 too (Constant nodes, other operand
    order); it comes back as one GELU equal to ONNX Runtime's and PyTorch's output."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(approximate=approximate),
                                 torch.nn.Linear(6, 2)).eval()
    _torch_export(module, torch.zeros(2, 4), tmp_path / "t.onnx", opset=17)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "t.onnx")).graph.node]
    assert "Gelu" not in ops and ("Erf" if approximate == "none" else "Tanh") in ops
    graph = mg.onnx.load(tmp_path / "t.onnx").eval()
    assert [type(layer).__name__ for _, layer, _ in graph.nodes] == ["Linear", "GELU", "Linear"]
    x = _x((5, 4), seed=11)
    (expected,) = _run_ort(tmp_path / "t.onnx", x)
    _assert_close(graph(x), expected)
    with torch.no_grad():
        _assert_close(graph(x), module(torch.from_numpy(x)).numpy())


def test_every_truncation_of_a_file_is_refused_clearly(tmp_path):
    """Each prefix of an exported file (cut anywhere, empty included) raises OnnxError saying the file may be
    truncated; none loads as a smaller graph and none escapes as a protobuf or checker traceback."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    mg.onnx.export(model, _x((1, 1, 4, 4)), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    assert isinstance(mg.onnx.load(data), nn.Graph)
    for cut in range(len(data)):
        with pytest.raises(mg.onnx.OnnxError, match=r"mg.onnx.load: bytes: .*truncated"):
            mg.onnx.load(data[:cut])


def test_dropout_node_reads_as_dropout_and_its_training_form_is_refused(tmp_path):
    """A Dropout node in inference form (no training_mode, or False) becomes nn.Dropout(ratio): the identity in
    eval mode like ONNX Runtime, dropping when trained; PyTorch's TrainingMode.TRAINING export is refused."""
    ratio = onnx.numpy_helper.from_array(np.array(0.25, np.float32), "ratio")
    node = onnx.helper.make_node("Dropout", ["x", "ratio"], ["y"], name="drop")
    model = _single_node_model(node, [_info("x", ["N", 64])], [_info("y", ["N", 64])], [ratio])
    graph = mg.onnx.load(model)
    ((_, layer, _),) = graph.nodes
    assert type(layer) is nn.Dropout and layer.p == 0.25
    x = _x((8, 64)) + 5.0                                            # no zeros of its own
    (expected,) = _run_ort(model.SerializeToString(), x)
    np.testing.assert_array_equal(graph.eval()(x), expected)
    np.testing.assert_array_equal(expected, x)
    y = graph.train()(x)
    dropped = y == 0
    assert 0.1 < dropped.mean() < 0.4                                 # about p = 0.25 of 512 values
    np.testing.assert_allclose(y[~dropped], x[~dropped] / 0.75, rtol=1e-6)
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Dropout(0.3)).train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, 8),), str(tmp_path / "d.onnx"), dynamo=False, opset_version=17,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    with pytest.raises(mg.onnx.OnnxError, match=r"\(Dropout\): attribute 'training_mode' = True is not supported "
                                                 r"\(inference form only\)"):
        mg.onnx.load(tmp_path / "d.onnx")

