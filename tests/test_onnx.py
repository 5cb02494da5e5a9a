"""mg.onnx: export to ONNX (checker, ONNX Runtime equal to minigrad), import ONNX files (ours and
torch.onnx.export's) as trainable Graphs, and clear errors for what cannot be expressed."""
import sys

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
    for layer in model.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.track_running_stats:
            c = layer.num_features
            layer.running_mean[...] = 0.1 * rng.standard_normal(c)
            layer.running_var[...] = 0.5 + rng.random(c)
            if layer.weight is not None:
                layer.weight.data[...] = 0.5 + rng.random(c)
            if layer.bias is not None:
                layer.bias.data[...] = 0.1 * rng.standard_normal(c)
    return model


def _run_ort(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
