"""ONNX export and import of GroupNorm, InstanceNorm2d and LocalResponseNorm (minigrad/onnx/norm_ops.py).

Each exported file runs in ONNX Runtime with minigrad's output (1e-4 relative), reads back with mg.onnx.load as
the same layer kind with the same output, and the re-imported graph trains like the original (the same gradients);
PyTorch's TorchScript exports of GroupNorm (its Reshape / InstanceNormalization formula) and InstanceNorm2d import
and train like the torch module in float64. What has no exact reading is refused with OnnxError naming the node.
"""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import run_ort, sample, single_node_model, torch_export, value_info  # noqa: E402


def _randomized(model, seed=3):
    rng = np.random.default_rng(seed)
    for param in model.parameters():
        param.data[...] = rng.uniform(0.5, 1.5, param.shape).astype(param.dtype)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf[...] = rng.standard_normal(buf.shape)
        elif name.endswith("running_var"):
            buf[...] = rng.uniform(0.5, 2.0, buf.shape)
    return model


CASES = {   # name: (layer, example shape, opset, the ONNX ops written, the layer read back)
    "instance_norm": (lambda: nn.InstanceNorm2d(3), (2, 3, 5, 6), 17, ["InstanceNormalization"], nn.InstanceNorm2d),
    "instance_norm_affine": (lambda: nn.InstanceNorm2d(3, affine=True), (2, 3, 5, 6), 17,
                             ["InstanceNormalization"], nn.InstanceNorm2d),
    "instance_norm_no_bias": (lambda: nn.InstanceNorm2d(3, affine=True, bias=False), (2, 3, 4, 4), 13,
                              ["InstanceNormalization"], nn.InstanceNorm2d),
    "instance_norm_running_stats": (lambda: nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                    (2, 3, 5, 6), 17, ["BatchNormalization"], nn.BatchNorm2d),
    "group_norm_formula": (lambda: nn.GroupNorm(3, 6), (2, 6, 5, 4), 17,
                           ["Reshape", "InstanceNormalization", "Shape", "Reshape", "Unsqueeze", "Mul", "Unsqueeze",
                            "Add"], nn.GroupNorm),
    "group_norm_formula_2d": (lambda: nn.GroupNorm(2, 6), (3, 6), 21,
                              ["Reshape", "InstanceNormalization", "Shape", "Reshape", "Mul", "Add"], nn.GroupNorm),
    "group_norm_formula_no_bias_3d": (lambda: nn.GroupNorm(6, 6, bias=False), (2, 6, 5), 17,
                                      ["Reshape", "InstanceNormalization", "Shape", "Reshape", "Unsqueeze", "Mul"],
                                      nn.GroupNorm),
    "group_norm_formula_no_affine": (lambda: nn.GroupNorm(1, 6, affine=False), (2, 6, 3, 3), 19,
                                     ["Reshape", "InstanceNormalization", "Shape", "Reshape"], nn.GroupNorm),
    "group_norm_op": (lambda: nn.GroupNorm(3, 6), (2, 6, 5, 4), 21, ["GroupNormalization"], nn.GroupNorm),
    "group_norm_op_no_affine_5d": (lambda: nn.GroupNorm(2, 4, affine=False), (2, 4, 3, 2, 2), 21,
                                   ["GroupNormalization"], nn.GroupNorm),
    "lrn_3": (lambda: nn.LocalResponseNorm(3, 0.5, 0.7, 1.5), (2, 6, 5, 4), 17, ["LRN"], nn.LocalResponseNorm),
    "lrn_1": (lambda: nn.LocalResponseNorm(1, 2.0, 0.5, 1.0), (2, 6, 5, 4), 17, ["LRN"], nn.LocalResponseNorm),
    "lrn_2_formula": (lambda: nn.LocalResponseNorm(2, 0.5, 0.7, 1.5), (2, 6, 5, 4), 17,
                      ["Mul", "Conv", "Add", "Pow", "Div"], nn.LocalResponseNorm),
    "lrn_5_formula_3d": (lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0), (2, 6, 7), 17,
                         ["Mul", "Conv", "Add", "Pow", "Div"], nn.LocalResponseNorm),
    "lrn_4_formula_5d": (lambda: nn.LocalResponseNorm(4, 3.0, 1.25, 0.5), (2, 6, 3, 2, 2), 17,
                         ["Mul", "Conv", "Add", "Pow", "Div"], nn.LocalResponseNorm),
    "lrn_9_formula_wide_3d": (lambda: nn.LocalResponseNorm(9, 0.3, 0.75, 2.0), (2, 4, 5), 17,
                              ["Mul", "Conv", "Add", "Pow", "Div"], nn.LocalResponseNorm),
    "lrn_10_formula_wide": (lambda: nn.LocalResponseNorm(10, 0.3, 0.75, 2.0), (2, 4, 3, 3), 17,
                            ["Mul", "Conv", "Add", "Pow", "Div"], nn.LocalResponseNorm),
    "lrn_9_wide": (lambda: nn.LocalResponseNorm(9, 0.3, 0.75, 2.0), (2, 4, 3, 3), 17, ["LRN"], nn.LocalResponseNorm),
}


def _close(actual, expected, rtol):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) <= rtol * max(float(np.abs(expected).max()), 1e-30)


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_runs_in_onnxruntime_and_reads_back(name, tmp_path):
    build, shape, opset, ops, kind = CASES[name]
    mg.manual_seed(0)
    model = _randomized(nn.Sequential(nn.Conv2d(shape[1], shape[1], 1), build()) if len(shape) == 4 else
                        nn.Sequential(build()))
    proto = mg.onnx.export(model, sample(shape), tmp_path / "m.onnx", opset=opset)
    written = [n.op_type for n in proto.graph.node]
    assert written[len(written) - len(ops):] == ops
    x = sample((3,) + shape[1:], seed=1)
    model.eval()
    with mg.nn.no_grad():
        expected = model(x)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    _close(got, expected, 1e-4)
    graph = mg.onnx.load(tmp_path / "m.onnx")
    assert type(graph.nodes[-1][1]) is kind and len([1 for _, layer, _ in graph.nodes if type(layer) is kind]) == 1
    with mg.nn.no_grad():
        _close(graph.eval()(x), expected, 1e-6)
    if kind is type(build()):                                       # the re-imported graph trains like the model
        model.train()
        graph.train()
        dy = sample(expected.shape, seed=2)
        model(x)
        graph(x)
        _close(graph.backward(dy), model.backward(dy), 1e-5)
        _same_gradients(graph, model, 1e-5)


def _same_gradients(graph, model, rtol):
    """Every parameter of ``model`` has its copy in ``graph`` (the same values), with the same gradient."""
    copies = list(graph.parameters())
    assert len(copies) == len(model.parameters())
    for param in model.parameters():
        twin = next(p for p in copies if p.shape == param.shape and np.array_equal(p.data, param.data))
        _close(twin.grad, param.grad, rtol)


def test_instance_norm_with_running_statistics_reads_back_as_batch_norm(tmp_path):
    """Eval mode normalises with the running statistics: BatchNormalization, re-imported as a BatchNorm2d with
    them as buffers (equal in eval; PyTorch's exporter refuses this module)."""
    model = _randomized(nn.InstanceNorm2d(3, momentum=None, track_running_stats=True))
    mg.onnx.export(model, sample((2, 3, 4, 4)), tmp_path / "m.onnx")
    graph = mg.onnx.load(tmp_path / "m.onnx")
    layer = graph.nodes[-1][1]
    np.testing.assert_array_equal(layer.running_mean, model.running_mean)
    np.testing.assert_array_equal(layer.running_var, model.running_var)


def _torch_float64_round_trip(module, shape, opset, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = module.double()
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, dtype=torch.float64))
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    torch_export(module, x.detach(), tmp_path / "t.onnx", opset=opset)
    graph = mg.onnx.load(tmp_path / "t.onnx")
    module.train()
    graph.train()
    y_torch = module(x)
    dy = torch.randn(y_torch.shape, dtype=torch.float64)
    y_torch.backward(dy)
    y = graph(x.detach().numpy())
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(graph.backward(dy.numpy()), x.grad.numpy(), rtol=1e-9, atol=1e-11)
    copies = list(graph.parameters())
    assert len(copies) == len(list(module.parameters()))          # no parameter for torch's constants 1.0 and 0.0
    for param in module.parameters():
        twin = next(p for p in copies if p.shape == tuple(param.shape) and np.array_equal(p.data, param.detach().numpy()))
        np.testing.assert_allclose(twin.grad, param.grad.numpy(), rtol=1e-9, atol=1e-11)
    return graph


@pytest.mark.parametrize("opset", [17, 21])
@pytest.mark.parametrize("options,shape", [({}, (2, 6, 4, 3)), ({"affine": False}, (2, 6, 5)),
                                           ({"bias": False}, (3, 6))], ids=["affine_4d", "no_affine_3d", "no_bias_2d"])
def test_torch_exported_group_norm_reads_back_as_one_group_norm_and_trains(options, shape, opset, tmp_path):
    torch = pytest.importorskip("torch")
    graph = _torch_float64_round_trip(torch.nn.GroupNorm(3, 6, **options), shape, opset, tmp_path)
    assert [type(layer) for _, layer, _ in graph.nodes] == [nn.GroupNorm]


@pytest.mark.parametrize("options", [{}, {"affine": True}], ids=["plain", "affine"])
def test_torch_exported_instance_norm_reads_back_and_trains(options, tmp_path):
    torch = pytest.importorskip("torch")
    graph = _torch_float64_round_trip(torch.nn.InstanceNorm2d(3, **options), (2, 3, 4, 5), 17, tmp_path)
    assert [type(layer) for _, layer, _ in graph.nodes] == [nn.InstanceNorm2d]


def _refused(node, shape, initializers=(), opset=17):
    out = node.output[0]
    return single_node_model(node, [value_info("x", shape)], [value_info(out, shape)], initializers, opset=opset)


def test_what_has_no_exact_reading_is_refused_naming_the_node(tmp_path):
    lrn = onnx.helper.make_node("LRN", ["x"], ["y"], name="lrn", size=2)
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'lrn' \(LRN\): attribute 'size' = 2 is not supported"):
        mg.onnx.load(_refused(lrn, [2, 4, 3, 3]))
    ones, zeros = (onnx.numpy_helper.from_array(np.full(4, v, "float32"), n) for n, v in (("s", 1.0), ("b", 0.0)))
    inorm = onnx.helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="in")
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'in' \(InstanceNormalization\): input of shape \[2, 4, 5\] "
                                                r"is not supported \(only 4-D"):
        mg.onnx.load(_refused(inorm, [2, 4, 5], [ones, zeros]))
    with pytest.raises(mg.onnx.OnnxError, match=r"InstanceNorm2d gets an input of shape \(3, 4, 4\); ONNX needs"):
        mg.onnx.export(nn.InstanceNorm2d(3), sample((3, 4, 4)), tmp_path / "m.onnx")
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_export(torch.nn.LocalResponseNorm(3), torch.randn(2, 4, 3, 3), tmp_path / "lrn.onnx")
    with pytest.raises(mg.onnx.OnnxError):                 # PyTorch's own LRN formula (Pad, AveragePool in an If)
        mg.onnx.load(tmp_path / "lrn.onnx")


def test_group_norm_formula_with_other_constants_is_refused(tmp_path):
    """The formula with a scale other than ones inside is no GroupNorm: refused, never read as a different one."""
    model = nn.GroupNorm(2, 4)
    proto = mg.onnx.export(model, sample((2, 4, 3, 3)), tmp_path / "m.onnx")
    scale = next(i for i in proto.graph.initializer if i.name.endswith("group_scale"))
    scale.CopyFrom(onnx.numpy_helper.from_array(np.array([1.0, 2.0], "float32"), scale.name))
    with pytest.raises(mg.onnx.OnnxError, match=r"its scale and bias must be ones and zeros, one per group \(2\)"):
        mg.onnx.load(proto)


def test_lrn_formula_reads_back_its_options_and_refuses_another_band(tmp_path):
    proto = mg.onnx.export(nn.LocalResponseNorm(4, 0.3, 0.75, 2.0), sample((2, 6, 5)), tmp_path / "m.onnx")
    layer = mg.onnx.load(proto).nodes[-1][1]
    assert (layer.size, layer.alpha, layer.beta, layer.k) == (4, 0.3, 0.75, 2.0)
    band = next(i for i in proto.graph.initializer if i.name.endswith(".band"))
    values = onnx.numpy_helper.to_array(band).copy()
    values[0, 3] = values[0, 0]                               # a window PyTorch's LRN never has
    band.CopyFrom(onnx.numpy_helper.from_array(values, band.name))
    with pytest.raises(mg.onnx.OnnxError, match=r"\(Conv\): its weight is not LocalResponseNorm's window"):
        mg.onnx.load(proto)


def test_group_norm_export_below_opset_21_on_a_shared_layer_and_a_graph_output(tmp_path):
    """One GroupNorm used twice: each use is one formula, read back as one GroupNorm each, both equal."""
    g = nn.Graph()
    x = g.input("x")
    norm = _randomized(nn.GroupNorm(2, 4))
    a = g.add("a", norm, x)
    g.output(g.add("b", norm, g.add("t", nn.Tanh(), a)), a)
    mg.onnx.export(g, sample((2, 4, 3, 3)), tmp_path / "g.onnx")
    graph = mg.onnx.load(tmp_path / "g.onnx").eval()
    x = sample((3, 4, 3, 3), seed=4)
    with mg.nn.no_grad():
        for ours, expected in zip(graph(x), g.eval()(x)):
            _close(ours, expected, 1e-6)
    assert [type(layer) for _, layer, _ in graph.nodes].count(nn.GroupNorm) == 2
