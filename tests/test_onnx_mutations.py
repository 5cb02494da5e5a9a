"""mg.onnx.load keeps both its promises on files nobody meant to write: a file that onnx.checker accepts either
loads and computes what ONNX Runtime computes, or raises OnnxError naming the node; nothing else.

``test_mutated_files_load_exactly_or_raise_onnx_error`` mutates ten models (six written by mg.onnx.export, three by
PyTorch's TorchScript exporter, one by its dynamo exporter where onnxscript is installed) structurally, seeded, and
checks every mutant that onnx.checker accepts (and that every file it refuses raises OnnxError). Five of them hold
the layers of issue 25: the added activations, GroupNorm / InstanceNorm2d / LocalResponseNorm (single ops and
formulas), Upsample, PixelShuffle / PixelUnshuffle, the pad layers, AdaptiveMaxPool2d, LPPool, Conv1d and the 1-d
pools, and Embedding (an integer input). The regression
tests after it hold the cases an adversarial probe found (issue 29, part 4); each fails on the code before it.
"""
import os
import random
import time
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")        # the test extra includes minigrad[onnx]
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import (assert_close, randomize_bn, run_ort, sample, single_node_model,  # noqa: E402
                                 torch_export, value_info)

MUTANTS = 4000         # in all, over the base models (400 each; 444 without the dynamo one); every one checked
TOLERANCE = 1e-4       # relative to the output's scale
EMBEDDING_ROWS = 10    # the embedding model's table; its input holds indices below it
ort.set_default_logger_severity(4)


# -- the base models ------------------------------------------------------------------------------------------

def _minigrad_model(tmp_path):
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.GELU(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 2 * 2, 5))
    randomize_bn(model).eval()
    mg.onnx.export(model, sample((1, 3, 8, 8)), tmp_path / "mg.onnx")
    return onnx.load(str(tmp_path / "mg.onnx"))


def _minigrad_model_2(tmp_path):
    """Pad (reflect) -> Conv, ConvTranspose, LayerNorm, Dropout, Softmax: the other ops mg.onnx.export writes."""
    mg.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.LeakyReLU(0.1),
                          nn.ConvTranspose2d(4, 4, 2, stride=2), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.LayerNorm(4), nn.Dropout(0.2), nn.Linear(4, 3), nn.Tanh(), nn.Softmax(dim=1)).eval()
    mg.onnx.export(model, sample((1, 3, 8, 8)), tmp_path / "mg2.onnx")
    return onnx.load(str(tmp_path / "mg2.onnx"))


def _minigrad_new_layers(tmp_path):
    """Issue 25's 2-D layers at opset 17: SiLU, GroupNorm and Mish as formulas, the other activations, PReLU,
    InstanceNorm2d, LRN, nearest Upsample, reflect and constant pads, AdaptiveMaxPool2d, LPPool2d."""
    mg.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.SiLU(), nn.GroupNorm(2, 4), nn.Hardswish(),
                          nn.ReflectionPad2d(1), nn.Conv2d(4, 4, 3), nn.PReLU(4), nn.InstanceNorm2d(4, affine=True),
                          nn.LocalResponseNorm(3), nn.Upsample(scale_factor=2, mode="nearest"),
                          nn.ConstantPad2d(1, 0.5), nn.AdaptiveMaxPool2d(9), nn.ELU(0.5), nn.LPPool2d(2, 3, 3),
                          nn.Softplus(), nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.Mish()).eval()
    mg.onnx.export(model, sample((1, 3, 8, 8)), tmp_path / "mg_new.onnx")
    return onnx.load(str(tmp_path / "mg_new.onnx"))


def _minigrad_new_layers_2(tmp_path):
    """Issue 25's 2-D layers at opset 21: GroupNormalization, Mish and HardSigmoid as single ops, PixelShuffle,
    bilinear Upsample, LRN of even size (its formula), a circular pad, PixelUnshuffle (Reshape -> Transpose ->
    Reshape), the Softsign / Tanhshrink / Threshold / Softplus(beta) formulas, SELU, CELU, Dropout2d."""
    mg.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.PixelShuffle(2),
                          nn.Upsample(scale_factor=0.5, mode="bilinear"), nn.Hardtanh(-0.5, 0.5),
                          nn.LocalResponseNorm(2), nn.Conv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Hardsigmoid(),
                          nn.CircularPad2d(1), nn.PixelUnshuffle(2), nn.Tanhshrink(), nn.Softsign(),
                          nn.Threshold(0.1, -1.0), nn.SELU(), nn.Softplus(beta=2.0), nn.Mish(), nn.Dropout2d(0.3),
                          nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 3), nn.CELU(0.7)).eval()
    mg.onnx.export(model, sample((1, 3, 8, 8)), tmp_path / "mg_new2.onnx", opset=21)
    return onnx.load(str(tmp_path / "mg_new2.onnx"))


def _minigrad_1d(tmp_path):
    """Conv1d (zero and reflect padding), MaxPool1d, AvgPool1d, LPPool1d, AdaptiveMaxPool1d on (N, C, L)."""
    mg.manual_seed(4)
    model = nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),
                          nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect"), nn.AvgPool1d(2), nn.LPPool1d(2, 2),
                          nn.Conv1d(4, 6, 1), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    mg.onnx.export(model, sample((1, 3, 16)), tmp_path / "mg_1d.onnx")
    return onnx.load(str(tmp_path / "mg_1d.onnx"))


def _minigrad_embedding(tmp_path):
    """Embedding (Gather from a constant table by the integer input) -> Flatten -> Linear."""
    mg.manual_seed(5)
    model = nn.Sequential(nn.Embedding(EMBEDDING_ROWS, 4), nn.Flatten(), nn.Linear(4 * 5, 3)).eval()
    indices = np.random.default_rng(0).integers(0, EMBEDDING_ROWS, (1, 5)).astype("int64")
    mg.onnx.export(model, indices, tmp_path / "mg_embedding.onnx")
    return onnx.load(str(tmp_path / "mg_embedding.onnx"))


def _torch_new_layers(tmp_path):
    """Issue 25's layers as PyTorch's TorchScript exporter writes them (its GroupNorm and activation formulas)."""
    import torch
    from torch import nn as tnn
    F = torch.nn.functional

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.amax = tnn.Conv2d(3, 4, 3, padding=1), tnn.AdaptiveMaxPool2d(4)
            self.gn = tnn.GroupNorm(2, 4)
            self.conv2, self.prelu = tnn.Conv2d(4, 8, 3, padding=1), tnn.PReLU(8)
            self.shuffle, self.inorm = tnn.PixelShuffle(2), tnn.InstanceNorm2d(2, affine=True)
            self.up = tnn.Upsample(scale_factor=2, mode="nearest")
            self.down = tnn.Upsample(scale_factor=0.5, mode="bilinear")
            self.pool, self.fc = tnn.MaxPool2d(2), tnn.Linear(2 * 4 * 4, 5)

        def forward(self, x):
            h = F.hardswish(self.gn(self.amax(F.silu(self.conv(x)))))     # (N, 4, 4, 4)
            h = self.shuffle(self.prelu(self.conv2(h)))                   # (N, 2, 8, 8)
            h = F.relu6(self.down(self.up(F.elu(self.inorm(h)))))         # 16 x 16 -> 8 x 8
            h = F.mish(F.softplus(self.pool(h)))                          # (N, 2, 4, 4)
            return F.hardtanh(self.fc(h.flatten(1)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.prelu.weight.copy_(torch.linspace(-0.5, 0.4, 8))
    torch_export(net.eval(), torch.randn(2, 3, 8, 8), tmp_path / "torch_new.onnx", opset=17)
    return onnx.load(str(tmp_path / "torch_new.onnx"))


def _torch_module():
    import torch
    from torch import nn as tnn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = tnn.Conv2d(3, 4, 3, padding=1), tnn.BatchNorm2d(4)
            self.pool, self.avg = tnn.MaxPool2d(2), tnn.AvgPool2d(2)
            self.fc, self.act, self.act2 = tnn.Linear(4 * 2 * 2, 5), tnn.GELU(), tnn.GELU(approximate="tanh")

        def forward(self, x):
            h = self.avg(self.pool(torch.relu(self.bn(self.conv(x)))))
            return self.act2(self.act(self.fc(h.view(h.size(0), -1))))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.1, 0.1)
        net.bn.running_var.uniform_(0.5, 1.5)
    return net.eval(), torch.randn(2, 3, 8, 8)


def _torch_model_2(tmp_path):
    """Concat, two-input Add and Mul, ReduceMean, LayerNorm, Softmax: PyTorch's forms."""
    import torch
    from torch import nn as tnn

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = tnn.Conv2d(3, 4, 3), tnn.Conv2d(3, 4, 3, bias=False)
            self.norm, self.fc = tnn.LayerNorm(8), tnn.Linear(8, 6)

        def forward(self, x):
            a, b = self.a(x), self.b(x)
            h = torch.cat([a, b * torch.sigmoid(a)], dim=1) + torch.cat([b, a], dim=1)
            h = torch.nn.functional.leaky_relu(h).mean(dim=(2, 3))
            return torch.softmax(self.fc(self.norm(h)), dim=-1)

    torch.manual_seed(0)
    torch_export(Net().eval(), torch.randn(2, 3, 6, 6), tmp_path / "torch2.onnx", opset=17)
    return onnx.load(str(tmp_path / "torch2.onnx"))


def _torch_model(tmp_path):
    net, x = _torch_module()
    torch_export(net, x, tmp_path / "torch.onnx", opset=17)
    return onnx.load(str(tmp_path / "torch.onnx"))


def _dynamo_model(tmp_path, opset=18):
    """PyTorch's default exporter (onnxscript); None where it cannot run here."""
    import logging
    import torch
    net, x = _torch_module()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as sink:
            warnings.simplefilter("ignore")
            import contextlib
            with contextlib.redirect_stdout(sink):
                torch.onnx.export(net, (x,), str(tmp_path / "dynamo.onnx"), dynamo=True, opset_version=opset,
                                  dynamic_shapes=({0: torch.export.Dim("N")},), external_data=False)
    except Exception:       # onnxscript missing or the exporter unable to run offline
        return None
    finally:
        logging.disable(logging.NOTSET)
    return onnx.load(str(tmp_path / "dynamo.onnx"))


@pytest.fixture(scope="module")
def base_models(tmp_path_factory):
    pytest.importorskip("torch")
    tmp_path = tmp_path_factory.mktemp("bases")
    models = {"minigrad": _minigrad_model(tmp_path), "minigrad_2": _minigrad_model_2(tmp_path),
              "torchscript": _torch_model(tmp_path), "torchscript_2": _torch_model_2(tmp_path),
              "minigrad_new": _minigrad_new_layers(tmp_path), "minigrad_new_2": _minigrad_new_layers_2(tmp_path),
              "minigrad_1d": _minigrad_1d(tmp_path), "minigrad_embedding": _minigrad_embedding(tmp_path),
              "torchscript_new": _torch_new_layers(tmp_path)}
    dynamo = _dynamo_model(tmp_path)
    if dynamo is not None:
        models["dynamo"] = dynamo
    return models


# -- mutations ------------------------------------------------------------------------------------------------

SUPPORTED_OPS = ["Conv", "Relu", "MaxPool", "AveragePool", "BatchNormalization", "Gemm", "MatMul", "Add", "Mul",
                 "Flatten", "Reshape", "Identity", "Sigmoid", "Tanh", "Concat", "Softmax", "LogSoftmax", "Gelu",
                 "GlobalAveragePool", "ReduceMean", "Dropout", "LeakyRelu", "Pad", "Sum", "Erf", "Div", "Transpose",
                 "Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "ConvTranspose", "LayerNormalization", "Pow",
                 # issue 25's
                 "Elu", "Celu", "Selu", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Softplus", "Clip", "PRelu",
                 "InstanceNormalization", "GroupNormalization", "LRN", "LpPool", "GlobalMaxPool", "Resize",
                 "DepthToSpace", "SpaceToDepth", "Where", "LessOrEqual", "Greater", "Sub", "Abs", "Slice"]
STRINGS = {"mode": [b"nearest", b"linear", b"cubic", b"constant", b"reflect", b"edge", b"wrap", b"CRD", b"DCR"],
           "coordinate_transformation_mode": [b"half_pixel", b"pytorch_half_pixel", b"align_corners", b"asymmetric",
                                              b"tf_half_pixel_for_nn", b"tf_crop_and_resize"],
           "nearest_mode": [b"round_prefer_floor", b"round_prefer_ceil", b"floor", b"ceil"],
           "auto_pad": [b"VALID", b"SAME_UPPER", b"SAME_LOWER", b"NOTSET"]}
A = onnx.AttributeProto


def _values(model):
    graph = model.graph
    return ([i.name for i in graph.input] + [i.name for i in graph.initializer]
            + [o for n in graph.node for o in n.output])


def _mutate(model, rng):
    """One structural change of ``model`` in place -> a description of it."""
    graph, nodes = model.graph, model.graph.node
    kind = rng.choice(["bits", "dims", "drop_attr", "attr_type", "attr_ints", "attr_float", "op_type", "opset",
                       "input", "value_info", "dtype", "auto_pad", "truncate", "attr_ints", "bits", "dims",
                       "swap_inputs", "copy_tensor", "attr_ints", "const_values", "attr_str"])
    node = rng.choice(list(nodes)) if len(nodes) else None
    if kind == "swap_inputs" and node is not None and len(node.input) >= 2:
        i, j = rng.sample(range(len(node.input)), 2)
        node.input[i], node.input[j] = node.input[j], node.input[i]
        return f"swapped inputs {i} and {j} of {node.name} ({node.op_type})"
    tensors = list(graph.initializer) + [a.t for n in nodes for a in n.attribute if a.type == A.TENSOR]
    if kind == "copy_tensor" and len(tensors) >= 2:
        a, b = rng.sample(tensors, 2)
        name = a.name
        a.CopyFrom(b)
        a.name = name
        return f"tensor {name} <- the data of {b.name}"
    if kind == "const_values" and tensors:
        t = rng.choice(tensors)
        try:
            array = onnx.numpy_helper.to_array(t).copy()
        except Exception:      # an earlier mutation already broke it
            array = np.zeros(0)
        if array.size:
            array.reshape(-1)[rng.randrange(array.size)] = rng.choice([0, -1, 1, 2, 3, -2, 10])
            t.CopyFrom(onnx.numpy_helper.from_array(array, t.name))
            return f"a value of {t.name} -> {array.reshape(-1)[:8].tolist()}"
    if kind in ("bits", "dims", "dtype") and len(graph.initializer):
        init = rng.choice(list(graph.initializer))
        if kind == "bits" and init.raw_data:
            data = bytearray(init.raw_data)
            index = rng.randrange(len(data) * 8)
            data[index // 8] ^= 1 << (index % 8)
            init.raw_data = bytes(data)
            return f"bit {index} of initializer {init.name}"
        if kind == "dims" and len(init.dims):
            i = rng.randrange(len(init.dims))
            choice = rng.choice(["change", "drop", "add"])
            if choice == "change":
                init.dims[i] = max(0, init.dims[i] + rng.choice([-1, 1, 2]))
            elif choice == "drop":
                del init.dims[i]
            else:
                init.dims.append(rng.choice([1, 2]))
            return f"dims of {init.name} ({choice}) -> {list(init.dims)}"
        if kind == "dtype":
            init.data_type = rng.choice([onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT64,
                                         onnx.TensorProto.INT32, onnx.TensorProto.INT8])
            return f"data_type of {init.name} -> {init.data_type}"
    if kind == "attr_str" and node is not None:
        strings = [a for a in node.attribute if a.type == A.STRING]
        if strings:
            attr = rng.choice(strings)
            attr.s = rng.choice(STRINGS.get(attr.name, [b"", b"x"]))
            return f"{attr.name} of {node.name} ({node.op_type}) -> {attr.s!r}"
    if kind in ("drop_attr", "attr_type", "attr_ints", "attr_float", "auto_pad") and node is not None:
        if kind == "auto_pad" and node.op_type in ("Conv", "MaxPool", "AveragePool", "ConvTranspose", "LpPool"):
            value = rng.choice([b"VALID", b"SAME_UPPER", b"SAME_LOWER", b"NOTSET"])
            for a in list(node.attribute):
                if a.name == "auto_pad":
                    node.attribute.remove(a)
            node.attribute.append(onnx.helper.make_attribute("auto_pad", value))
            return f"auto_pad of {node.name} -> {value}"
        if len(node.attribute):
            attr = rng.choice(list(node.attribute))
            if kind == "drop_attr":
                node.attribute.remove(attr)
                return f"dropped {attr.name} of {node.name} ({node.op_type})"
            if kind == "attr_type":
                new = (onnx.helper.make_attribute(attr.name, 1) if attr.type != A.INT else
                       onnx.helper.make_attribute(attr.name, [1, 1]))
                node.attribute.remove(attr)
                node.attribute.append(new)
                return f"type of {attr.name} of {node.name} -> {new.type}"
            if kind == "attr_ints" and attr.type in (A.INT, A.INTS):
                if attr.type == A.INT:
                    attr.i = rng.choice([-2, -1, 0, 1, 2, 3, 4, 7])
                    return f"{attr.name} of {node.name} ({node.op_type}) -> {attr.i}"
                choice = rng.choice(["change", "drop", "add"])
                if choice == "change" and len(attr.ints):
                    attr.ints[rng.randrange(len(attr.ints))] = rng.choice([-1, 0, 1, 2, 3, 5])
                elif choice == "drop" and len(attr.ints):
                    del attr.ints[rng.randrange(len(attr.ints))]
                else:
                    attr.ints.append(rng.choice([0, 1, 2]))
                return f"{attr.name} of {node.name} ({node.op_type}) -> {list(attr.ints)}"
            if kind == "attr_float" and attr.type == A.FLOAT:
                attr.f = rng.choice([0.0, -1.0, 0.5, 1e-3, 2.0])
                return f"{attr.name} of {node.name} ({node.op_type}) -> {attr.f}"
    if kind == "op_type" and node is not None:
        old, node.op_type = node.op_type, rng.choice(SUPPORTED_OPS)
        return f"op of {node.name} {old} -> {node.op_type}"
    if kind == "opset":
        model.opset_import[0].version = rng.choice([1, 3, 6, 7, 9, 11, 12, 13, 14, 16, 18, 19, 20, 21])
        return f"opset -> {model.opset_import[0].version}"
    if kind == "input" and node is not None and len(node.input):
        i = rng.randrange(len(node.input))
        if rng.random() < 0.4:
            old = node.input[i]
            del node.input[i]
            return f"dropped input {old} of {node.name}"
        node.input[i] = rng.choice(_values(model))
        return f"input {i} of {node.name} -> {node.input[i]}"
    if kind == "value_info":
        infos = list(graph.value_info) + list(graph.input) + list(graph.output)
        infos = [v for v in infos if v.type.tensor_type.HasField("shape") and len(v.type.tensor_type.shape.dim)]
        if infos:
            info = rng.choice(infos)
            dims = info.type.tensor_type.shape.dim
            dim = dims[rng.randrange(len(dims))]
            dim.dim_value = rng.choice([1, 2, 3, 4, 8, 10])
            if rng.random() < 0.3:
                dims.add().dim_value = 2
            return f"value_info {info.name} -> {[d.dim_value or d.dim_param for d in dims]}"
    return "truncate"


def _input_for(model):
    """A fixed input of the (possibly mutated) declared shape: symbolic dimensions are 2; integer inputs (an
    Embedding's indices) hold indices below EMBEDDING_ROWS."""
    (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}] or [None]
    if inp is None:
        return None
    T = onnx.TensorProto
    dtype = {T.FLOAT: "float32", T.DOUBLE: "float64", T.INT64: "int64", T.INT32: "int32"}.get(
        inp.type.tensor_type.elem_type)
    shape = [d.dim_value if d.HasField("dim_value") else 2 for d in inp.type.tensor_type.shape.dim]
    if dtype is None or any(s <= 0 or s > 64 for s in shape):
        return None
    if dtype.startswith("int"):
        return inp.name, np.random.default_rng(3).integers(0, EMBEDDING_ROWS, shape).astype(dtype)
    return inp.name, sample(shape, seed=3, dtype=dtype)


def _check_mutant(data, model_or_none):
    """'error' | 'matched' | 'matched_where_finite' | 'ort_failed_loaded'; AssertionError on a broken promise."""
    try:
        graph = mg.onnx.load(data)
    except mg.onnx.OnnxError:
        return "error"
    if model_or_none is None:
        raise AssertionError("a file onnx cannot parse or check was loaded")
    given = _input_for(model_or_none)
    try:
        assert given is not None
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        (expected, *_) = session.run(None, {given[0]: given[1]})
    except Exception:
        # ONNX Runtime refuses or cannot run this file: there is no reference to compare with, so a load is
        # accepted as it is (it is not shown to be different); the promise checked is only "OnnxError or a Graph".
        return "ort_failed_loaded"
    with np.errstate(all="ignore"):                # a mutated variance can be negative, on both sides
        out = graph.eval()(given[1])
    actual = np.asarray(mg.backend.to_backend(out.data if hasattr(out, "data") else out, "numpy"))
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape}, ONNX Runtime {expected.shape}"
    # A flipped exponent bit can make a parameter 1e38 or a variance negative: where ONNX Runtime's output is
    # not finite, the computation overflowed (or took a square root of a negative number) and the order of the
    # operations decides between inf and NaN, so those entries are not compared. Every finite one must match,
    # and minigrad must give a finite value wherever ONNX Runtime does.
    finite = np.isfinite(expected)
    assert np.isfinite(actual[finite]).all(), "inf or NaN where ONNX Runtime's output is finite"
    actual, expected = actual[finite].astype(np.float64), expected[finite].astype(np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)      # within 1e-4, relative above 1
    assert float(np.abs(actual - expected).max(initial=0.0)) <= TOLERANCE * scale, "output differs from ONNX Runtime's"
    if not finite.all():
        return "matched_where_finite"
    return "matched"


def run_mutations(models, count, seed=29):
    """Mutate each base model ``count / len(models)`` times -> ({model: counts per outcome}, failures)."""
    rng, counts, failures = random.Random(seed), {name: {} for name in models}, []
    for index in range(count):
        name = sorted(models)[index % len(models)]
        model = onnx.ModelProto()
        model.CopyFrom(models[name])
        steps = [_mutate(model, rng) for _ in range(rng.choice([1, 1, 1, 2]))]
        data = model.SerializeToString()
        if "truncate" in steps:
            data = data[:rng.randrange(len(data))]
        try:
            parsed = onnx.load_model_from_string(data)
            onnx.checker.check_model(parsed)
        except Exception:
            parsed = None
        try:
            outcome = _check_mutant(data, parsed)
            outcome = outcome if parsed is not None else "rejected"
        except Exception as exc:      # AssertionError included: a broken promise, reported with the mutation
            failures.append(f"#{index} {name}: {steps}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        counts[name][outcome] = counts[name].get(outcome, 0) + 1
    return counts, failures


def test_mutated_files_load_exactly_or_raise_onnx_error(base_models):
    for name, model in sorted(base_models.items()):      # each base itself loads and equals ONNX Runtime
        assert _check_mutant(model.SerializeToString(), model) == "matched", name
    start = time.perf_counter()
    by_model, failures = run_mutations(base_models, MUTANTS)
    elapsed = time.perf_counter() - start
    counts = {}
    for name, outcomes in sorted(by_model.items()):
        print(f"\n  {name}: {outcomes}", end="")
        for outcome, n in outcomes.items():
            counts[outcome] = counts.get(outcome, 0) + n
    print(f"\n{MUTANTS} mutants of {sorted(base_models)} in {elapsed:.1f} s: {counts}")
    assert not failures, "\n".join(failures)
    for name, outcomes in by_model.items():                # on each base, both outcomes exercised
        assert outcomes.get("matched", 0) >= 10 and outcomes.get("error", 0) >= 10, (name, outcomes)


# -- the cases the probe found --------------------------------------------------------------------------------

def _conv_model():
    weight = onnx.numpy_helper.from_array(sample((8, 6, 3, 3)), "conv.weight")
    node = onnx.helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="conv", kernel_shape=[3, 3])
    return single_node_model(node, [value_info("x", [1, 6, 5, 5])], [value_info("y", [1, 8, 3, 3])], [weight])


def test_an_initializer_whose_bytes_disagree_with_its_dims_is_refused():
    model = _conv_model()
    model.graph.initializer[0].data_type ^= 2          # one bit: FLOAT (1) -> INT8 (3), 1728 bytes for 432 values
    onnx.checker.check_model(model)
    with pytest.raises(mg.onnx.OnnxError, match=r"initializer 'conv.weight' of shape \(8, 6, 3, 3\) and type int8 "
                                                r"needs 432 bytes, the file gives 1728"):
        mg.onnx.load(model)


def _torch_view(tmp_path, view, name):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return view(self.conv(x))

    torch.manual_seed(0)
    torch_export(Net().eval(), torch.randn(2, 3, 6, 6), tmp_path / f"{name}.onnx")
    return tmp_path / f"{name}.onnx"


def test_views_by_runtime_sizes_load_exactly_or_are_refused_naming_the_node(tmp_path):
    x = sample((3, 3, 6, 6), seed=1)
    for name, view in (("batch", lambda h: h.view(h.size(0), -1)),
                       ("batch_channels", lambda h: h.view(h.size(0), h.size(1), -1))):
        path = _torch_view(tmp_path, view, name)
        (expected,) = run_ort(path, x)
        assert_close(mg.onnx.load(path).eval()(x), expected)
    path = _torch_view(tmp_path, lambda h: h.view(h.size(1), -1), "channels")   # (C, N*H*W): no minigrad layer
    with pytest.raises(mg.onnx.OnnxError, match=r"node '[^']+' \(Reshape\): reshaping \[None, 4, 4, 4\] to "
                                                r"\[size\(1\), -1\] is not a flatten"):
        mg.onnx.load(path)


def test_concat_below_opset_4_without_axis_concatenates_axis_1():
    node = onnx.helper.make_node("Concat", ["a", "b"], ["y"], name="cat")
    model = single_node_model(node, [value_info("a", [2, 3]), value_info("b", [2, 2])], [value_info("y", [2, 5])],
                              opset=3)
    onnx.checker.check_model(model)
    a, b = sample((2, 3), seed=1), sample((2, 2), seed=2)
    np.testing.assert_array_equal(np.asarray(mg.onnx.load(model)(a, b)), np.concatenate([a, b], axis=1))
    model.opset_import[0].version = 13                 # required from opset 4: the file is refused
    with pytest.raises(mg.onnx.OnnxError, match="axis"):
        mg.onnx.load(model)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_auto_pad_valid_ignores_pads_as_onnx_runtime_does(op):
    node = onnx.helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[3, 3], auto_pad="VALID",
                                 pads=[1, 1, 1, 1])
    model = single_node_model(node, [value_info("x", [1, 2, 8, 8])], [value_info("y", [1, 2, 6, 6])])
    x = sample((1, 2, 8, 8))
    (expected,) = run_ort(model.SerializeToString(), x)
    assert expected.shape == (1, 2, 6, 6)
    assert_close(mg.onnx.load(model)(x), expected)


def test_shapes_come_from_the_graph_not_from_a_wrong_value_info():
    target = onnx.numpy_helper.from_array(np.array([-1, 10], np.int64), "target")
    nodes = [onnx.helper.make_node("Relu", ["x"], ["r"], name="relu"),
             onnx.helper.make_node("Reshape", ["r", "target"], ["y"], name="reshape")]
    graph = onnx.helper.make_graph(nodes, "g", [value_info("x", [8, 10])], [value_info("y", [8, 10])], [target],
                                   value_info=[value_info("r", [2, 4, 10])])      # wrong: Relu keeps (8, 10)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    x = sample((8, 10))
    (expected,) = run_ort(model.SerializeToString(), x)
    assert_close(mg.onnx.load(model)(x), expected)


def test_external_data_without_length_is_read_only_to_the_tensor_size(tmp_path):
    import tracemalloc
    model = _conv_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="big.bin")            # no offset, no length
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)                                           # 1 GiB, sparse: no disk used
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    tracemalloc.start()
    try:
        with pytest.raises(mg.onnx.OnnxError, match=r"initializer 'conv.weight' of shape \(8, 6, 3, 3\) needs 1728 "
                                                    r"bytes of external data, 'big.bin' gives more"):
            mg.onnx.load(tmp_path / "m.onnx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak {peak} bytes to refuse a 1728-byte tensor"
    with open(big, "r+b") as handle:                                       # exactly the size: read and loaded
        handle.truncate(1728)
    mg.onnx.load(tmp_path / "m.onnx")


def test_dynamo_gelu_forms_load_as_gelu_layers(base_models, tmp_path):
    if "dynamo" not in base_models:
        pytest.skip("torch.onnx.export(dynamo=True) cannot run here (onnxscript missing)")
    data = base_models["dynamo"].SerializeToString()
    graph = mg.onnx.load(data).eval()
    gelus = [layer.approximate for layer in graph.modules() if isinstance(layer, nn.GELU)]
    assert sorted(gelus) == ["none", "tanh"]
    x = sample((3, 3, 8, 8), seed=4)
    (expected,) = run_ort(data, x)
    assert_close(graph(x), expected)
    node_types = {n.op_type for n in base_models["dynamo"].graph.node}
    assert {"Erf", "Pow"} <= node_types or "Gelu" in node_types      # the forms this test is about


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_path_that_is_not_a_regular_file_is_refused(tmp_path):
    from minigrad.io.regular_file import open_regular
    import errno
    import threading
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    done = threading.Event()

    def writer():        # a loader that waits on the FIFO for a writer gets one that writes nothing: no hang
        while not done.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError as exc:
                if exc.errno != errno.ENXIO:       # ENXIO: no reader yet
                    raise
                done.wait(0.05)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        for path in (fifo, tmp_path, "/dev/zero"):
            with pytest.raises(mg.onnx.OnnxError) as expected:
                open_regular(path, "mg.onnx.load", mg.onnx.OnnxError)
            with pytest.raises(mg.onnx.OnnxError) as raised:
                mg.onnx.load(path)
            assert str(raised.value) == str(expected.value)
    finally:
        done.set()
        thread.join()


def test_attribute_lists_of_the_wrong_length_or_range_name_node_and_attribute():
    for attrs, named in ((dict(kernel_shape=[2, 2, 2]), "kernel_shape"), (dict(kernel_shape=[2, 2], strides=[0, 1]),
                                                                            "strides"),
                         (dict(kernel_shape=[2, 2], pads=[1, 1, 1]), "pads")):
        node = onnx.helper.make_node("MaxPool", ["x"], ["y"], name="pool", **attrs)
        model = single_node_model(node, [value_info("x", [1, 2, 8, 8])], [value_info("y", [1, 2, 7, 7])])
        with pytest.raises(mg.onnx.OnnxError, match=rf"node 'pool' \(MaxPool\): attribute '{named}' = .* is not "
                                                    r"supported \(expected \d integers"):
            mg.onnx.load(model)


def test_an_unforeseen_error_while_converting_still_names_the_node(monkeypatch):
    """The last-resort net: whatever a check missed surfaces as OnnxError naming the node, not as a KeyError."""
    import importlib
    load_module = importlib.import_module("minigrad.onnx.load")      # the module, not the function

    def broken(self, node):
        raise KeyError("something no check foresaw")

    monkeypatch.setattr(load_module._OnnxToMinigrad, "op_Relu", broken)
    node = onnx.helper.make_node("Relu", ["x"], ["y"], name="act")
    model = single_node_model(node, [value_info("x", [2, 3])], [value_info("y", [2, 3])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'act' \(Relu\): cannot be read as a minigrad layer "
                                                r"\(KeyError: 'something no check foresaw'\)"):
        mg.onnx.load(model)


def test_work_a_mixin_does_before_super_convert_is_inside_the_last_resort_net(monkeypatch):
    """The net is around the whole self.convert(node) call in Importer.run: a mixin's convert override that fails
    before it calls super().convert (ResampleOps reading a Pad) still names the node."""
    import importlib
    resample_import = importlib.import_module("minigrad.onnx.resample_import")

    def broken(self, node):
        raise IndexError("something no check foresaw")

    monkeypatch.setattr(resample_import.ResampleOps, "_pad_folds", broken)
    pads = onnx.numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")
    node = onnx.helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")
    model = single_node_model(node, [value_info("x", [1, 2, 4, 4])], [value_info("y", [1, 2, 6, 6])], [pads])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'pad' \(Pad\): cannot be read as a minigrad layer "
                                                r"\(IndexError: something no check foresaw\)"):
        mg.onnx.load(model)


def _resize(scale, n, out):
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 1, scale], np.float32), "scales")
    node = onnx.helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest",
                                 coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return single_node_model(node, [value_info("x", [1, 2, 3, n])], [value_info("y", [1, 2, 3, out])], [scales])


def test_resize_scales_are_read_only_where_they_sample_as_onnx_runtime():
    """ONNX Runtime steps by 1 / scale in float32, PyTorch (minigrad's Upsample) by its own float32 reciprocal and
    copies exactly where it doubles: a scale whose source pixels differ is read as the sizes where those match
    (6 -> 4 by 0.6666667f), else refused (8 -> 16 by 2.0000002f: ONNX Runtime repeats pixel 0 three times)."""
    x = sample((1, 2, 3, 6), seed=1)
    model = _resize(np.float32(2) / np.float32(3), 6, 4)
    (expected,) = run_ort(model.SerializeToString(), x)
    graph = mg.onnx.load(model)
    np.testing.assert_array_equal(np.asarray(graph(x)), expected)
    assert [layer.size for _, layer, _ in graph.nodes] == [(3, 4)]
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'resize' \(Resize\): its scales \[1.0, 2.00000023841857\d*\] "
                                                r"on an input of spatial size \(3, 8\) pick other source pixels"):
        mg.onnx.load(_resize(np.nextafter(np.float32(2), np.float32(3)), 8, 16))


def test_group_normalization_at_opset_21_keeps_the_shapes_after_it(tmp_path):
    """onnx's shape inference gives GroupNormalization no output shape: the importer gives it its input's, so the
    Flatten -> Linear after it reads (it was refused: 'the rank of ... is unknown')."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.PixelUnshuffle(2), nn.Flatten(),
                          nn.Linear(16 * 2 * 2, 3)).eval()
    x = sample((2, 3, 6, 6), seed=2)
    mg.onnx.export(model, x, tmp_path / "gn21.onnx", opset=21)
    (expected,) = run_ort(tmp_path / "gn21.onnx", x)
    assert_close(mg.onnx.load(tmp_path / "gn21.onnx").eval()(x), expected)
