"""ONNX export and import of the pooling and 1-d layers (minigrad/onnx/pool_ops.py): each exported file run in ONNX
Runtime equals minigrad (float32), mg.onnx.load of it equals and trains like the original (float64 gradients), a
small 1-d text-style model round trip, files of PyTorch's exporter, hand-built nodes, and every refusal."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import (assert_close, run_ort, sample, single_node_model, torch_export,  # noqa: E402
                                value_info)

signal, img = (2, 3, 12), (2, 3, 8, 8)
# name, build, example input shape, opset, the op each layer is written as (checked), the class it is read back as
CASES = [
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), signal, 17, "Conv", "Conv1d"),
    ("conv1d_same_groups", lambda: nn.Conv1d(3, 6, 4, padding="same", groups=3, bias=False), signal, 17, "Conv",
     "Conv1d"),
    ("conv1d_valid", lambda: nn.Conv1d(3, 2, 5, padding="valid"), signal, 17, "Conv", "Conv1d"),
    ("conv1d_reflect", lambda: nn.Conv1d(3, 4, 3, padding=2, padding_mode="reflect"), signal, 17, "Pad", "Conv1d"),
    ("conv1d_replicate_same", lambda: nn.Conv1d(3, 4, 4, padding="same", padding_mode="replicate"), signal, 17, "Pad",
     "Conv1d"),
    ("conv1d_circular_opset19", lambda: nn.Conv1d(3, 4, 3, padding=1, padding_mode="circular"), signal, 19, "Pad",
     "Conv1d"),
    ("maxpool1d", lambda: nn.MaxPool1d(3, 2, 1, dilation=2), signal, 17, "MaxPool", "MaxPool1d"),
    ("maxpool1d_ceil", lambda: nn.MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 11), 17, "MaxPool", "MaxPool1d"),
    ("avgpool1d", lambda: nn.AvgPool1d(3, 2, 1), signal, 17, "AveragePool", "AvgPool1d"),
    ("avgpool1d_ceil_exclude_pad", lambda: nn.AvgPool1d(3, 2, 1, True, False), (2, 3, 11), 17, "AveragePool",
     "AvgPool1d"),
    ("adaptive_avg2d_divisible", lambda: nn.AdaptiveAvgPool2d((2, 4)), img, 17, "AveragePool", "AvgPool2d"),
    ("adaptive_avg2d_none", lambda: nn.AdaptiveAvgPool2d((None, 2)), img, 17, "AveragePool", "AvgPool2d"),
    ("adaptive_avg2d_global", lambda: nn.AdaptiveAvgPool2d(1), img, 17, "GlobalAveragePool", "AdaptiveAvgPool2d"),
    ("adaptive_max2d_divisible", lambda: nn.AdaptiveMaxPool2d((4, 2)), img, 17, "MaxPool", "MaxPool2d"),
    ("adaptive_max2d_global", lambda: nn.AdaptiveMaxPool2d(1), img, 17, "GlobalMaxPool", "AdaptiveMaxPool2d"),
    ("adaptive_avg1d_global", lambda: nn.AdaptiveAvgPool1d(1), signal, 17, "GlobalAveragePool", "AdaptiveAvgPool1d"),
    ("adaptive_avg1d", lambda: nn.AdaptiveAvgPool1d(3), signal, 17, "AveragePool", "AvgPool1d"),
    ("adaptive_max1d", lambda: nn.AdaptiveMaxPool1d(4), signal, 17, "MaxPool", "MaxPool1d"),
    ("adaptive_max1d_global", lambda: nn.AdaptiveMaxPool1d(1), signal, 17, "GlobalMaxPool", "AdaptiveMaxPool1d"),
    ("lppool2d", lambda: nn.LPPool2d(2, 3, 2), (2, 3, 7, 8), 17, "LpPool", "LPPool2d"),
    ("lppool2d_p4_ceil_unclipped", lambda: nn.LPPool2d(4, (2, 3), (2, 1), ceil_mode=True), img, 18, "LpPool",
     "LPPool2d"),
    ("lppool1d", lambda: nn.LPPool1d(2, 3), (2, 3, 9), 17, "LpPool", "LPPool1d"),
]


def _text_model():
    """A small 1-d text-style classifier: (N, C, L) features -> Conv1d -> ReLU -> MaxPool1d -> Flatten -> Linear."""
    return nn.Sequential(nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(16, 16, 3,
                         padding="same", padding_mode="reflect"), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                         nn.Linear(16 * 5, 4))


@pytest.mark.parametrize("name,build,shape,opset,op,cls", CASES, ids=[c[0] for c in CASES])
def test_export_matches_onnxruntime_and_reimports(name, build, shape, opset, op, cls, tmp_path):
    mg.manual_seed(3)
    model = build()
    proto = mg.onnx.export(model, sample(shape), tmp_path / "m.onnx", opset=opset)
    assert op in [node.op_type for node in proto.graph.node]
    x = sample((3,) + shape[1:], seed=1)
    model.eval()
    expected = model(x)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, expected)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    assert [type(layer).__name__ for _, layer, _ in graph.nodes] == [cls]
    np.testing.assert_allclose(graph(x), expected, rtol=1e-6, atol=1e-6)


def _renamed(name):
    owner, leaf = name.rsplit(".", 1)
    return owner.replace(".", "_") + "." + leaf


def test_text_model_round_trip_equals_onnxruntime_and_trains(tmp_path):
    mg.manual_seed(0)
    model = _text_model()
    mg.onnx.export(model, sample((2, 8, 20)), tmp_path / "text.onnx")
    x = sample((5, 8, 20), seed=1)
    model.eval()
    (got,) = run_ort(tmp_path / "text.onnx", x)
    assert_close(got, model(x))
    assert [n.op_type for n in onnx.load(str(tmp_path / "text.onnx")).graph.node] == [
        "Conv", "Relu", "MaxPool", "Pad", "Conv", "Relu", "MaxPool", "Flatten", "Gemm"]
    # float64: the imported Graph's gradients (every parameter, the input) equal the original model's, then a step
    model.to(dtype="float64").train()
    mg.onnx.export(model, sample((2, 8, 20), dtype="float64"), tmp_path / "text64.onnx")
    graph = mg.onnx.load(tmp_path / "text64.onnx").train()
    assert {type(layer).__name__ for _, layer, _ in graph.nodes} >= {"Conv1d", "MaxPool1d", "Linear"}
    x = sample((5, 8, 20), seed=2, dtype="float64")
    dy = sample((5, 4), seed=3, dtype="float64")
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(graph.backward(dy), model.backward(dy), rtol=1e-10, atol=1e-12)
    ours = {_renamed(k): p for k, p in model.named_parameters()}
    theirs = dict(graph.named_parameters())
    assert set(ours) == set(theirs)
    for key, parameter in theirs.items():
        np.testing.assert_allclose(parameter.grad, ours[key].grad, rtol=1e-10, atol=1e-12)
    for optimizer in (mg.optim.SGD(graph.parameters(), lr=0.1), mg.optim.SGD(model.parameters(), lr=0.1)):
        optimizer.step()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-10, atol=1e-12)


def test_pytorch_exported_1d_model_imports_and_equals_onnxruntime(tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn as tnn

    class Text(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = tnn.Conv1d(3, 8, 5, padding=2), tnn.Conv1d(8, 8, 3, padding="same", groups=2)
            self.c3, self.pool, self.avg = tnn.Conv1d(8, 8, 4, padding="same", bias=False), tnn.MaxPool1d(2), \
                tnn.AvgPool1d(3, 2, 1)
            self.gmax, self.gavg, self.fc = tnn.AdaptiveMaxPool1d(1), tnn.AdaptiveAvgPool1d(1), tnn.Linear(16, 4)

        def forward(self, x):
            h = self.avg(self.c3(self.c2(self.pool(torch.relu(self.c1(x))))))
            return self.fc(torch.cat([self.gmax(h), self.gavg(h)], 1).flatten(1))

    torch.manual_seed(0)
    module = Text().eval()
    torch_export(module, torch.randn(2, 3, 20), tmp_path / "t.onnx")
    nodes = onnx.load(str(tmp_path / "t.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    assert "GlobalAveragePool" in ops and ops.count("Conv") == 3
    assert sum(a.s == b"SAME_UPPER" for n in nodes for a in n.attribute if a.name == "auto_pad") == 2   # 'same'
    graph = mg.onnx.load(tmp_path / "t.onnx").eval()
    x = sample((3, 3, 20), seed=1)
    (expected,) = run_ort(tmp_path / "t.onnx", x)
    assert_close(graph(x), expected)
    np.testing.assert_allclose(graph(x), module(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def _node_model(op, shape, out_shape, opset=18, **attrs):
    node = onnx.helper.make_node(op, ["x"], ["y"], name="n", **attrs)
    return single_node_model(node, [value_info("x", shape)], [value_info("y", out_shape)], opset=opset)


@pytest.mark.parametrize("op,shape,out,attrs,cls", [
    ("GlobalMaxPool", ["N", 3, 5, 6], ["N", 3, 1, 1], {}, "AdaptiveMaxPool2d"),
    ("GlobalMaxPool", ["N", 3, 7], ["N", 3, 1], {}, "AdaptiveMaxPool1d"),
    ("GlobalAveragePool", ["N", 3, 7], ["N", 3, 1], {}, "AdaptiveAvgPool1d"),
    ("LpPool", ["N", 3, 6, 7], ["N", 3, 3, 3], {"kernel_shape": [2, 3], "strides": [2, 2], "p": 2}, "LPPool2d"),
    ("LpPool", ["N", 3, 9], ["N", 3, 3], {"kernel_shape": [3], "strides": [3], "p": 4}, "LPPool1d"),
    ("MaxPool", ["N", 3, 9], ["N", 3, 5], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, "MaxPool1d"),
    ("AveragePool", ["N", 3, 9], ["N", 3, 4], {"kernel_shape": [3], "strides": [2], "auto_pad": "VALID"}, "AvgPool1d"),
], ids=["gmax2d", "gmax1d", "gavg1d", "lp2d", "lp1d_p4", "max1d", "avg1d_valid"])
def test_hand_built_nodes_import_and_equal_onnxruntime(op, shape, out, attrs, cls, tmp_path):
    model = _node_model(op, shape, out, **attrs)
    graph = mg.onnx.load(model)
    assert [type(layer).__name__ for _, layer, _ in graph.nodes] == [cls]
    x = sample([3] + shape[1:], seed=2)
    (expected,) = run_ort(model.SerializeToString(), x)
    assert_close(graph(x), expected)


@pytest.mark.parametrize("op,shape,out,attrs,match", [
    ("LpPool", ["N", 3, 6, 6], ["N", 3, 3, 3], {"kernel_shape": [2, 2], "strides": [2, 2], "p": 3},
     r"'p' = 3 is not supported \(an even positive integer"),
    ("LpPool", ["N", 3, 7, 7], ["N", 3, 4, 4], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     r"'ceil_mode' = 1 is not supported \(a window clipped by ceil_mode"),
    ("LpPool", ["N", 3, 7, 7], ["N", 3, 4, 4], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]},
     r"'pads' = \[1, 1, 0, 0\] is not supported \(LPPool has no padding"),
    ("MaxPool", ["N", 3, 9], ["N", 3, 5], {"kernel_shape": [3], "strides": [2], "pads": [1, 0]},
     r"'pads' = \[1, 0\] is not supported \(asymmetric"),
    ("MaxPool", ["N", 3, 9], ["N", 3, 5], {"kernel_shape": [3, 1]}, r"'kernel_shape' = \[3, 1\] is not supported"),
    ("GlobalMaxPool", ["N", 3], ["N", 3], {}, r"input of rank 2 is not supported"),
    ("LpPool", ["N", 3, 1, 7], ["N", 3, 0, 3], {"kernel_shape": [2, 2], "strides": [2, 2]},
     r"input of shape \[None, 3, 1, 7\] is smaller than the kernel \[2, 2\]"),
], ids=["lp_odd", "lp_ceil_clipped", "lp_pads", "max1d_asymmetric", "max1d_2d_kernel", "gmax_rank2", "lp_too_small"])
def test_hand_built_nodes_refused_naming_node_and_attribute(op, shape, out, attrs, match):
    with pytest.raises(mg.onnx.OnnxError, match=rf"node 'n' \({op}\): .*{match}"):
        mg.onnx.load(_node_model(op, shape, out, **attrs))


@pytest.mark.parametrize("build,shape,opset,match", [
    (lambda: nn.AdaptiveAvgPool2d((3, 3)), img, 17,
     r"AdaptiveAvgPool2d.*output_size \(3, 3\).*does not divide.*ONNX has no adaptive pooling"),
    (lambda: nn.AdaptiveMaxPool2d((None, 3)), img, 17, r"AdaptiveMaxPool2d.*output_size \(None, 3\).*does not divide"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices=True), img, 17, r"AdaptiveMaxPool2d.*return_indices=True"),
    (lambda: nn.AdaptiveAvgPool1d(5), signal, 17, r"AdaptiveAvgPool1d.*output_size 5.*does not divide"),
    (lambda: nn.MaxPool1d(2, return_indices=True), signal, 17, r"MaxPool1d.*return_indices=True"),
    (lambda: nn.Conv1d(3, 4, 3, padding=1, padding_mode="circular"), signal, 17, r"Conv1d.*circular.*opset 19"),
    (lambda: nn.LPPool2d(3, 2), img, 17, r"LPPool2d.*norm_type=3; ONNX's LpPool sums \|x\|\^p"),
    (lambda: nn.LPPool2d(2.5, 2), img, 17, r"LPPool2d.*norm_type=2.5"),
    (lambda: nn.LPPool2d(float("inf"), 2), img, 17, r"LPPool2d.*norm_type=inf"),
    (lambda: nn.LPPool1d(1, 3), signal, 17, r"LPPool1d.*norm_type=1"),
    (lambda: nn.LPPool2d(2, 3, ceil_mode=True), img, 18, r"LPPool2d.*ceil_mode=True and its last window is clipped"),
    (lambda: nn.Sequential(nn.Flatten(0, 0), nn.MaxPool1d(2)), (3, 12), 17,
     r"MaxPool1d '1'.*\(3, 12\).*batched \(N, C, L\)"),
], ids=["avg_not_dividing", "max_none_not_dividing", "max_indices", "avg1d_not_dividing", "max1d_indices",
        "circular_opset17", "lp_odd", "lp_fractional", "lp_inf", "lp1d_p1", "lp_ceil_clipped", "unbatched"])
def test_unexportable_forms_raise_clear_errors(build, shape, opset, match, tmp_path):
    with pytest.raises(mg.onnx.OnnxError, match=match):
        mg.onnx.export(build(), sample(shape), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_export_and_import_on_each_backend(backend, tmp_path):
    mg.manual_seed(0)
    model = nn.Sequential(_text_model(), nn.Identity())                     # on the active backend
    host = sample((2, 8, 20))
    x = mg.backend.to_backend(host, backend)
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    model.eval()
    expected = mg.backend.to_backend(model(x), "numpy")
    (got,) = run_ort(tmp_path / "m.onnx", host)
    assert_close(got, expected)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    assert {mg.backend.backend_of(a) for a in graph.state_dict().values()} == {backend}
    np.testing.assert_allclose(mg.backend.to_backend(graph(x), "numpy"), expected, rtol=1e-6, atol=1e-6)
