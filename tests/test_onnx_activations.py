"""ONNX export and import of SiLU ... Threshold (minigrad/onnx/activation_ops.py): the exported file equals
minigrad in ONNX Runtime (1e-4, float32) at opsets 13, 17 and 18, reads back (mg.onnx.load) as the same layer
with the same options, and the imported graph trains (gradients equal to the original's, float64); PyTorch's
own exports import; single ONNX ops and what the importer refuses; formulas whose intermediate values are
used elsewhere are not merged."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import run_ort, sample, single_node_model, torch_export, value_info  # noqa: E402

helper = onnx.helper

# name -> (layer factory, {opset: the ONNX op types that must appear}), options as attributes to read back
CASES = {
    "SiLU": (lambda: nn.SiLU(), {13: {"Sigmoid", "Mul"}}),
    "Mish": (lambda: nn.Mish(), {13: {"Softplus", "Tanh", "Mul"}, 18: {"Mish"}}),
    "Hardswish": (lambda: nn.Hardswish(), {13: {"HardSigmoid", "Mul"}, 14: {"HardSwish"}}),
    "Hardsigmoid": (lambda: nn.Hardsigmoid(), {13: {"HardSigmoid"}}),
    "ELU": (lambda: nn.ELU(0.7), {13: {"Elu"}}),
    "SELU": (lambda: nn.SELU(), {13: {"Selu"}}),
    "CELU": (lambda: nn.CELU(1.3), {13: {"Celu"}}),
    "Softplus": (lambda: nn.Softplus(), {13: {"Softplus"}}),
    "Softplus_beta": (lambda: nn.Softplus(2.0), {13: {"Mul", "Softplus", "Div"}}),
    "Softplus_threshold": (lambda: nn.Softplus(2.0, 0.5), {13: {"Greater", "Where", "Softplus", "Div"}}),
    "Softplus_threshold_beta1": (lambda: nn.Softplus(1.0, 1.0), {13: {"Greater", "Where", "Softplus"}}),
    "Softplus_no_threshold": (lambda: nn.Softplus(0.5, float("inf")), {13: {"Softplus", "Div"}}),
    "ReLU6": (lambda: nn.ReLU6(), {13: {"Clip"}}),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 0.25), {13: {"Clip"}}),
    "Softsign": (lambda: nn.Softsign(), {13: {"Softsign"}}),
    "Tanhshrink": (lambda: nn.Tanhshrink(), {13: {"Tanh", "Sub"}}),
    "Threshold": (lambda: nn.Threshold(0.1, 20.0), {13: {"LessOrEqual", "Where"}}),
    "PReLU": (lambda: nn.PReLU(init=-0.3), {13: {"PRelu"}}),
    "PReLU_3": (lambda: nn.PReLU(3), {13: {"PRelu"}}),
}
OPTIONS = ("alpha", "beta", "threshold", "min_val", "max_val", "value", "num_parameters")


def _model(name, dtype="float32"):
    mg.manual_seed(1)
    layer = CASES[name][0]()
    if isinstance(layer, nn.PReLU):
        layer.weight.data[...] = np.linspace(-0.5, 0.4, layer.num_parameters)   # distinct slopes per channel
    return nn.Sequential(nn.Conv2d(3, 3, 1), layer).to(dtype=dtype)


def _ops_for(name, opset):
    table = CASES[name][1]
    return table[max(o for o in table if o <= opset)]


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("name", sorted(CASES))
def test_export_runs_in_onnxruntime_and_reads_back_as_the_same_layer(name, opset, tmp_path):
    model = _model(name)
    x = sample((2, 3, 4, 5)) * 4
    proto = mg.onnx.export(model, x, tmp_path / "m.onnx", opset=opset)
    assert _ops_for(name, opset) <= {n.op_type for n in proto.graph.node}
    (got,) = run_ort(tmp_path / "m.onnx", sample((5, 3, 4, 5), seed=2) * 4)
    model.eval()
    expected = model(sample((5, 3, 4, 5), seed=2) * 4)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    graph = mg.onnx.load(tmp_path / "m.onnx")
    layers = [layer for _, layer, _ in graph.nodes]
    original = model[1]
    assert [type(layer) for layer in layers] == [nn.Conv2d, type(original)]
    for option in OPTIONS:   # (threshold=inf is written as PyTorch writes Softplus(beta): read back as threshold 20)
        wanted = 20.0 if name == "Softplus_no_threshold" and option == "threshold" else vars(original).get(option)
        assert vars(layers[1]).get(option) == wanted, option
    np.testing.assert_array_equal(graph.eval()(x), model(x))


@pytest.mark.parametrize("name", sorted(CASES))
def test_imported_graph_trains_like_the_original(name, tmp_path):
    """float64 (CELU: float32, ONNX's only Celu type): the re-imported graph's output, input gradient and every
    parameter gradient equal the model's."""
    dtype = "float32" if name == "CELU" else "float64"
    tol = {"rtol": 1e-6, "atol": 1e-6} if name == "CELU" else {"rtol": 1e-12, "atol": 1e-14}
    model = _model(name, dtype)
    x = sample((2, 3, 4, 5), seed=3, dtype=dtype) * 3
    mg.onnx.export(model, x, tmp_path / "m.onnx", opset=17)
    graph = mg.onnx.load(tmp_path / "m.onnx").train()
    grad = sample((2, 3, 4, 5), seed=4, dtype=dtype)
    np.testing.assert_allclose(graph(x), model.train()(x), **tol)
    np.testing.assert_allclose(graph.backward(grad), model.backward(grad), **tol)
    ours = dict(graph.named_parameters())
    assert set(ours) == {k for k, _ in model.named_parameters()}        # "1.weight": PReLU's slope by its name
    for key, param in model.named_parameters():
        np.testing.assert_allclose(ours[key].grad, param.grad, **tol)


def test_celu_in_float64_is_refused_naming_the_layer(tmp_path):
    with pytest.raises(mg.onnx.OnnxError, match=r"CELU '1' gets float64 input; ONNX's Celu takes float32 only"):
        mg.onnx.export(_model("CELU", "float64"), sample((2, 3, 4, 5), dtype="float64"), tmp_path / "m.onnx")


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 6)])
def test_prelu_per_channel_on_2d_and_3d_inputs(shape, tmp_path):
    layer = nn.PReLU(3)
    layer.weight.data[...] = [-0.2, 0.1, 0.5]
    model = nn.Sequential(layer)
    x = sample(shape) * 2
    proto = mg.onnx.export(model, x, tmp_path / "m.onnx")
    slope = next(t for t in proto.graph.initializer if t.name == "0.weight")
    assert list(slope.dims) == [3] + [1] * (len(shape) - 2)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    np.testing.assert_allclose(got, model(x), rtol=1e-6)
    graph = mg.onnx.load(tmp_path / "m.onnx")
    np.testing.assert_array_equal(graph(x), model(x))
    assert dict(graph.named_parameters())["0.weight"].shape == (3,)


def test_shared_prelu_on_inputs_of_two_ranks(tmp_path):
    """One PReLU(3) used on a 4-D and on a 2-D value: the slope initializer is written once, reshaped for one."""
    prelu = nn.PReLU(3)
    prelu.weight.data[...] = [-0.2, 0.1, 0.5]
    g = nn.Graph()
    x = g.input("x")
    h = g.add("act4d", prelu, x)
    h = g.add("flat", nn.Flatten(), g.add("pool", nn.AdaptiveAvgPool2d(1), h))
    g.output(g.add("act2d", prelu, g.add("neg", nn.Threshold(1e9, -1.0), h)))   # all below: -1 * ... < 0
    x_value = sample((2, 3, 4, 4))
    proto = mg.onnx.export(g, x_value, tmp_path / "g.onnx")
    assert [t.name for t in proto.graph.initializer].count("act4d.weight") == 1
    (got,) = run_ort(tmp_path / "g.onnx", x_value)
    np.testing.assert_allclose(got, g(x_value), rtol=1e-6)
    np.testing.assert_allclose(mg.onnx.load(tmp_path / "g.onnx")(x_value), g(x_value), rtol=1e-6)


# -- PyTorch's exports -------------------------------------------------------------------------------------
TORCH_CASES = {"SiLU": ("SiLU", ()), "Mish": ("Mish", ()), "Hardswish": ("Hardswish", ()),
               "Hardsigmoid": ("Hardsigmoid", ()), "ELU": ("ELU", (0.7,)), "SELU": ("SELU", ()),
               "CELU": ("CELU", (1.3,)), "Softplus": ("Softplus", ()), "Softplus_beta": ("Softplus", (2.0,)),
               "ReLU6": ("ReLU6", ()), "Hardtanh": ("Hardtanh", (-0.5, 0.25)), "Softsign": ("Softsign", ()),
               "Tanhshrink": ("Tanhshrink", ()), "PReLU": ("PReLU", ()), "PReLU_3": ("PReLU", (3,))}


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_exports_import_as_one_layer_and_train_like_torch(name, opset, tmp_path):
    """torch.onnx.export's file: one layer per activation, output equal to PyTorch's, and in float64 (the file's
    float32 weights on both sides) input and parameter gradients equal to PyTorch's."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cls, args = TORCH_CASES[name]
    activation = getattr(torch.nn, cls)(*args)
    if name.startswith("PReLU"):
        with torch.no_grad():
            activation.weight.copy_(torch.linspace(-0.5, 0.4, activation.num_parameters))
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), activation).eval()
    x = torch.randn(2, 3, 4, 5) * 3
    torch_export(module, x, tmp_path / "t.onnx", opset=opset)
    graph = mg.onnx.load(tmp_path / "t.onnx")
    assert [type(layer).__name__ for _, layer, _ in graph.nodes] == ["Conv2d", type(activation).__name__]
    np.testing.assert_allclose(graph.eval()(x.numpy()), module(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    module.double().train()
    graph.to(dtype="float64").train()
    x64 = x.double().requires_grad_(True)
    grad = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    y = module(x64)
    y.backward(grad)
    np.testing.assert_allclose(graph(x64.detach().numpy()), y.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(graph.backward(grad.numpy()), x64.grad.numpy(), rtol=1e-10, atol=1e-12)
    ours = dict(graph.named_parameters())
    assert set(ours) == {k for k, _ in module.named_parameters()}
    for key, param in module.named_parameters():
        np.testing.assert_allclose(ours[key].grad, param.grad.numpy(), rtol=1e-10, atol=1e-12)


# -- single ops, and what is refused -------------------------------------------------------------------------
def _one_node(op, attrs=None, constants=(), shape=("N", 3, 4)):
    inits = [onnx.numpy_helper.from_array(np.asarray(v, dtype="float32"), n) for n, v in constants]
    node = helper.make_node(op, ["x"] + [n for n, _ in constants], ["y"], name="act", **(attrs or {}))
    return single_node_model(node, [value_info("x", list(shape))], [value_info("y", list(shape))], inits)


@pytest.mark.parametrize("op,attrs,constants,layer,options", [
    ("Elu", {}, (), nn.ELU, {"alpha": 1.0}),
    ("Celu", {"alpha": 0.5}, (), nn.CELU, {"alpha": 0.5}),
    ("Selu", {}, (), nn.SELU, {}),
    ("HardSigmoid", {"alpha": 1 / 6}, (), nn.Hardsigmoid, {}),
    ("Softplus", {}, (), nn.Softplus, {"beta": 1.0, "threshold": 20.0}),
    ("Clip", {}, (("lo", 0.0), ("hi", 6.0)), nn.ReLU6, {}),
    ("Clip", {}, (("lo", -2.0), ("hi", 0.5)), nn.Hardtanh, {"min_val": -2.0, "max_val": 0.5}),
    ("Clip", {}, (("", None), ("hi", 0.5)), nn.Hardtanh, {"min_val": -np.inf, "max_val": 0.5}),
    ("PRelu", {}, (("slope", [[0.1], [0.2], [0.3]]),), nn.PReLU, {"num_parameters": 3}),
    ("PRelu", {}, (("slope", [0.1]),), nn.PReLU, {"num_parameters": 1}),
], ids=["Elu", "Celu", "Selu", "HardSigmoid", "Softplus", "Clip-relu6", "Clip", "Clip-max-only", "PRelu-C",
        "PRelu-1"])
def test_single_ops_import_and_equal_onnxruntime(op, attrs, constants, layer, options):
    consts = [(n, v) for n, v in constants if n]
    model = _one_node(op, attrs, consts)
    if constants and not constants[0][0]:                   # an omitted optional input: an empty name
        model.graph.node[0].input[1:] = ["", "hi"]
    graph = mg.onnx.load(model)
    (found,) = [lay for _, lay, _ in graph.nodes]
    assert type(found) is layer
    for key, value in options.items():
        assert getattr(found, key) == value, key
    x = sample((2, 3, 4)) * 4
    (expected,) = run_ort(model.SerializeToString(), x)
    np.testing.assert_allclose(graph(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,attrs,constants,match", [
    ("Selu", {"alpha": 1.5}, (), r"attribute 'alpha' = 1.5 is not supported \(only PyTorch's SELU"),
    ("HardSigmoid", {}, (), r"attribute 'alpha' = 0.2 is not supported \(only 1/6"),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.4}, (), r"attribute 'beta' = 0.4"),
    ("Celu", {"alpha": 0.0}, (), r"attribute 'alpha' = 0.0 is not supported \(not 0\)"),
    ("Clip", {}, (("lo", 1.0), ("hi", 1.0)), r"bounds min=1.0, max=1.0 are not supported"),
    ("Clip", {}, (("lo", [0.0, 1.0]), ("hi", 2.0)), r"its min of shape \(2,\) is not a single value"),
    ("PRelu", {}, (("slope", [0.1, 0.2, 0.3, 0.4]),), r"a slope of shape \(4,\) for an input of shape \[None, 3, 4\]"),
])
def test_refused_single_ops_name_node_and_attribute(op, attrs, constants, match):
    with pytest.raises(mg.onnx.OnnxError, match=rf"node 'act' \({op}\): .*{match}"):
        mg.onnx.load(_one_node(op, attrs, constants))


def test_a_prelu_slope_along_the_last_axis_is_refused():
    """(3,) against (N, 3, 3) broadcasts along the last axis in ONNX, not along the channels: refused."""
    with pytest.raises(mg.onnx.OnnxError, match=r"\(PRelu\): a slope of shape \(3,\) .*one per channel along "
                                                r"dimension 1"):
        mg.onnx.load(_one_node("PRelu", constants=(("slope", [0.1, 0.2, 0.3]),), shape=("N", 3, 3)))


def test_a_formula_whose_inner_value_is_used_elsewhere_stays_node_by_node():
    """x * sigmoid(x) where sigmoid(x) also feeds an Add: Sigmoid, Mul and Add layers, not a SiLU."""
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             helper.make_node("Mul", ["x", "s"], ["m"], name="mul"), helper.make_node("Add", ["m", "s"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3])], [value_info("y", ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    loaded = mg.onnx.load(model)
    assert [type(layer).__name__ for _, layer, _ in loaded.nodes] == ["Sigmoid", "Mul", "Add"]
    x = sample((2, 3))
    np.testing.assert_allclose(loaded(x), run_ort(model.SerializeToString(), x)[0], rtol=1e-6)


def test_threshold_greater_form_and_a_mismatched_formula():
    """Where(Greater(x, t), x, v) is a Threshold too; Mul(x, Sigmoid(z)) with z != x is no SiLU (and, Mul of
    two computed values, two layers)."""
    c = [onnx.numpy_helper.from_array(np.float32(v), n) for n, v in (("t", 0.5), ("v", -2.0))]
    nodes = [helper.make_node("Greater", ["x", "t"], ["above"]), helper.make_node("Where", ["above", "x", "v"], ["y"])]
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3])], [value_info("y", ["N", 3])], initializer=c)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (layer,) = [lay for _, lay, _ in mg.onnx.load(model).nodes]
    assert isinstance(layer, nn.Threshold) and (layer.threshold, layer.value) == (0.5, -2.0)
    nodes = [helper.make_node("Tanh", ["x"], ["z"]), helper.make_node("Sigmoid", ["z"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3])], [value_info("y", ["N", 3])])
    loaded = mg.onnx.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [type(lay).__name__ for _, lay, _ in loaded.nodes] == ["Tanh", "Sigmoid", "Mul"]


def test_export_and_import_on_each_backend(backend, xp, tmp_path):
    """A model on the active backend (CuPy under MINIGRAD_TEST_CUPY=sim) exports, runs in ONNX Runtime and
    reads back onto that backend with a trainable PReLU slope."""
    mg.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.PReLU(3), nn.SiLU(), nn.Softplus(2.0, 0.5), nn.Hardtanh(-1.0, 2.0))
    host = sample((2, 3, 4, 5)) * 3
    x = xp.asarray(host)
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    (got,) = run_ort(tmp_path / "m.onnx", host)
    expected = mg.backend.to_backend(model.eval()(x), "numpy")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    graph = mg.onnx.load(tmp_path / "m.onnx")
    y = graph(x)
    assert mg.backend.backend_of(y) == backend
    np.testing.assert_allclose(mg.backend.to_backend(y, "numpy"), expected, rtol=1e-6, atol=1e-6)
    graph.backward(xp.ones_like(y))
    assert mg.backend.backend_of(dict(graph.named_parameters())["1.weight"].grad) == backend
