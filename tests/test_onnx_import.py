"""mg.onnx.load: files written by torch.onnx.export, both exporters (output equal to ONNX Runtime, one training
step equal to PyTorch's), GELU's formula, Dropout, dynamo-style ReduceMean/Reshape. What it refuses:
tests/test_onnx_load_errors.py."""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")        # the test extra includes minigrad[onnx]
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import (assert_close, run_ort, sample, single_node_model, torch_export,  # noqa: E402
                                 value_info)


# -- files written by torch.onnx.export ----------------------------------------------------------------------

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
    torch_export(module, x32, tmp_path / "f32.onnx")
    graph = mg.onnx.load(tmp_path / "f32.onnx").eval()
    x_other = sample((3,) + shape[1:], seed=2)
    (expected,) = run_ort(tmp_path / "f32.onnx", x_other)
    assert_close(graph(x_other), expected)
    # float64: one training step (batch statistics, SGD) equals PyTorch's on the original module
    module = module.double()
    x64 = torch.randn(*shape, dtype=torch.float64)
    torch_export(module, x64, tmp_path / "f64.onnx")
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


@pytest.mark.parametrize("name", ["lenet5", "resnet_block"])
def test_torch_default_dynamo_exporter_files_import(name, tmp_path):
    """What torch.onnx.export writes by default (dynamo=True; onnxscript is in the test extra): weights in an
    external data file, BatchNorm folded into the convolutions, ReduceMean and Reshape(allowzero=1). The Graph
    equals ONNX Runtime (float32); LeNet-5 exported in float64 takes one SGD step equal to PyTorch's."""
    torch = pytest.importorskip("torch")
    models, torch_twins = _torch_models()
    build, shape = models[name]
    torch.manual_seed(0)
    module = torch_twins.randomize_batchnorm(build()).eval()
    double = name == "lenet5"
    if double:
        module = module.double()
    example = torch.randn(*shape, dtype=torch.float64 if double else torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(tmp_path / "d.onnx"), dynamo=True, verbose=False,
                          dynamic_shapes=({0: torch.export.Dim("N")},))
    assert (tmp_path / "d.onnx.data").exists()
    graph = mg.onnx.load(tmp_path / "d.onnx")
    x = sample((3,) + shape[1:], seed=12, dtype="float64" if double else "float32")
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    if not double:                                       # ONNX Runtime's CPU Conv runs float32 only
        (expected,) = run_ort(tmp_path / "d.onnx", x)
    assert_close(graph.eval()(x), expected, rtol=1e-10 if double else 1e-5)
    if not double:
        return
    grad = sample((3, 10), seed=13, dtype="float64")
    module.train()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    (module(torch.from_numpy(x)) * torch.from_numpy(grad)).sum().backward()
    opt.step()
    graph.train()(x)
    graph.backward(grad)
    mg.optim.SGD(graph.parameters(), lr=0.1).step()
    state = graph.state_dict()
    for key, value in module.state_dict().items():
        np.testing.assert_allclose(state[_mg_name(key)], value.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


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
    x = sample((3, 3, 8, 8), seed=4)
    for fold in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(2, 3, 8, 8),), str(tmp_path / "b.onnx"), dynamo=False,
                              input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}},
                              do_constant_folding=fold)
        graph = mg.onnx.load(tmp_path / "b.onnx").eval()
        (expected,) = run_ort(tmp_path / "b.onnx", x)
        assert_close(graph(x), expected)
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
    graph = helper.make_graph([mean, flat], "g", [value_info("x", ["N", 6, 5, 4])], [value_info("y", ["N", 6])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = sample((3, 6, 5, 4))
    (expected,) = run_ort(model.SerializeToString(), x)
    np.testing.assert_allclose(expected, x.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mg.onnx.load(model)(x), expected, rtol=1e-6, atol=1e-7)


def test_shared_linear_on_nd_input_reimports_shared_with_its_bias(tmp_path):
    """A Linear used twice on (N, L, F) input exports as Transpose + MatMul + Add per use; both uses come
    back as one layer (one weight, one bias), so training updates them together as in the original."""
    g = nn.Graph()
    x = g.input("x")
    shared = nn.Linear(6, 6)
    h = g.add("lin", shared, x)
    h = g.add("act", nn.Tanh(), h)
    g.output(g.add("lin_again", shared, h))
    mg.onnx.export(g, sample((2, 3, 6)), tmp_path / "g.onnx")
    graph = mg.onnx.load(tmp_path / "g.onnx")
    linears = [layer for _, layer, _ in graph.nodes if isinstance(layer, nn.Linear)]
    assert len(linears) == 2 and linears[0] is linears[1] and linears[0].bias is not None
    assert sorted(graph.state_dict()) == ["lin.bias", "lin.weight"]
    x = sample((4, 3, 6), seed=2)
    np.testing.assert_allclose(graph(x), g(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bias_shape", [(), (1,), (3,), (1, 3)])
@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_bias_shapes_per_output_feature_match_onnx_runtime(bias_shape, trans_b):
    """Gemm's C is broadcast to (N, O): (), (1,) and (O,), (1, O) give every row the same per-feature bias,
    which is a Linear's bias (an (O, 1) C, a bias per row, is refused: test_onnx_load_errors.py)."""
    weight = onnx.numpy_helper.from_array(sample((3, 4) if trans_b else (4, 3), seed=1), "w")
    bias = onnx.numpy_helper.from_array(sample(bias_shape, seed=2), "b")
    node = onnx.helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=trans_b)
    model = single_node_model(node, [value_info("x", ["N", 4])], [value_info("y", ["N", 3])], [weight, bias])
    x = sample((5, 4), seed=3)
    (expected,) = run_ort(model.SerializeToString(), x)
    assert_close(mg.onnx.load(model).eval()(x), expected)


@pytest.mark.parametrize("mode,pad_pads,conv_pads", [("constant", [0, 0, 1, 2, 0, 0, 1, 2], [1, 0, 1, 0]),
                                                     ("constant", [0, 0, 0, 0, 0, 0, 1, 1], [1, 1, 0, 0]),
                                                     ("reflect", [0, 0, 1, 2, 0, 0, 1, 2], [0, 0, 0, 0])])
def test_pad_before_conv_becomes_its_padding(mode, pad_pads, conv_pads):
    """A Pad with pads >= 0 right before a Conv: a constant (zero) Pad adds to the Conv's pads, a reflect Pad
    becomes padding_mode; the Graph equals ONNX Runtime (negative pads, a crop, are refused:
    test_onnx_load_errors.py)."""
    helper = onnx.helper
    inits = [onnx.numpy_helper.from_array(np.array(pad_pads, np.int64), "pads"),
             onnx.numpy_helper.from_array(sample((4, 3, 3, 3), seed=1), "w")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode=mode),
             helper.make_node("Conv", ["p", "w"], ["y"], name="conv", pads=conv_pads)]
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3, 8, 8])], [value_info("y", ["N", 4, None, None])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = sample((2, 3, 8, 8), seed=2)
    (expected,) = run_ort(model.SerializeToString(), x)
    assert_close(mg.onnx.load(model).eval()(x), expected)


# -- GELU below opset 20: its formula reads back as one GELU -------------------------------------------------

@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_formula_reimports_as_one_gelu_and_trains(approximate, tmp_path):
    """Below opset 20 a GELU is written as its formula (Erf or Tanh, Mul, Add, Div); load turns the formula
    back into one GELU layer: same output and same input and weight gradients (float64)."""
    mg.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 6, dtype="float64"), nn.GELU(approximate), nn.Linear(6, 3, dtype="float64"))
    x = sample((4, 5), seed=8, dtype="float64")
    proto = mg.onnx.export(model, x, tmp_path / "m.onnx", opset=17)
    ops = [n.op_type for n in proto.graph.node]
    assert "Gelu" not in ops and ("Erf" if approximate == "none" else "Tanh") in ops
    graph = mg.onnx.load(tmp_path / "m.onnx")
    layers = [layer for _, layer, _ in graph.nodes]
    assert [type(layer).__name__ for layer in layers] == ["Linear", "GELU", "Linear"]
    assert layers[1].approximate == approximate
    grad = sample((4, 3), seed=9, dtype="float64")
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
    outputs = [value_info("y", ["N", 3])] + ([value_info("t", ["N", 3])] if extra_output else [])
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3])], outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_gelu_formula_written_by_hand_reads_back_and_near_misses_are_refused():
    x = sample((4, 3), seed=10)
    for kappa, approximate in ((None, "none"), (0.044715, "tanh")):
        graph = mg.onnx.load(_gelu_formula_model(kappa=kappa))
        assert [(type(layer).__name__, layer.approximate) for _, layer, _ in graph.nodes] == [("GELU", approximate)]
        (expected,) = run_ort(_gelu_formula_model(kappa=kappa).SerializeToString(), x)
        assert_close(graph(x), expected)
    # a different constant, or an intermediate value used elsewhere: not a GELU, and refused (never guessed)
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'scaled' \(Div\): op Div is not supported.*GELU's formula"):
        mg.onnx.load(_gelu_formula_model(half=0.6))
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'scaled' \(Div\): op Div is not supported"):
        mg.onnx.load(_gelu_formula_model(extra_output=True))
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'kx3' \(Mul\): its input 'k' is a constant; a Mul with a "
                                                 r"constant is supported only .* inside GELU's formula"):
        mg.onnx.load(_gelu_formula_model(kappa=0.05))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_torch_exported_gelu_formula_imports_as_gelu(approximate, tmp_path):
    """PyTorch's TorchScript exporter writes GELU's formula below opset 20 too (Constant nodes, other operand
    order); it comes back as one GELU equal to ONNX Runtime's and PyTorch's output."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU(approximate=approximate),
                                 torch.nn.Linear(6, 2)).eval()
    torch_export(module, torch.zeros(2, 4), tmp_path / "t.onnx", opset=17)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "t.onnx")).graph.node]
    assert "Gelu" not in ops and ("Erf" if approximate == "none" else "Tanh") in ops
    graph = mg.onnx.load(tmp_path / "t.onnx").eval()
    assert [type(layer).__name__ for _, layer, _ in graph.nodes] == ["Linear", "GELU", "Linear"]
    x = sample((5, 4), seed=11)
    (expected,) = run_ort(tmp_path / "t.onnx", x)
    assert_close(graph(x), expected)
    with torch.no_grad():
        assert_close(graph(x), module(torch.from_numpy(x)).numpy())


# -- Dropout -------------------------------------------------------------------------------------------------

def test_dropout_node_reads_as_dropout_and_its_training_form_is_refused(tmp_path):
    """A Dropout node in inference form (no training_mode, or False) becomes nn.Dropout(ratio): the identity in
    eval mode like ONNX Runtime, dropping when trained; PyTorch's TrainingMode.TRAINING export is refused."""
    ratio = onnx.numpy_helper.from_array(np.array(0.25, np.float32), "ratio")
    node = onnx.helper.make_node("Dropout", ["x", "ratio"], ["y"], name="drop")
    model = single_node_model(node, [value_info("x", ["N", 64])], [value_info("y", ["N", 64])], [ratio])
    graph = mg.onnx.load(model)
    ((_, layer, _),) = graph.nodes
    assert type(layer) is nn.Dropout and layer.p == 0.25
    x = sample((8, 64)) + 5.0                                            # no zeros of its own
    (expected,) = run_ort(model.SerializeToString(), x)
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
