"""Embedding in the ONNX round trip: mg.onnx.export writes Gather(weight, indices) with an integer graph input,
ONNX Runtime equals minigrad (float32, 1e-4), mg.onnx.load reads a Gather of a constant table by computed
indices back as a trainable Embedding (shared tables stay shared), files of torch.onnx.export too, and the
Gathers it cannot read are refused naming the node."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.onnx import OnnxError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import assert_close, run_ort, single_node_model, torch_export  # noqa: E402

TP = onnx.TensorProto


def _tokens(shape, vocab=20, seed=0, dtype="int64"):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype(dtype)


def _bag_model():
    mg.manual_seed(0)
    return nn.Sequential(nn.Embedding(20, 6, padding_idx=0), nn.Flatten(), nn.Linear(30, 3))


def _tied_graph():
    g = nn.Graph()
    a, b = g.input("a"), g.input("b")
    table = nn.Embedding(20, 4)
    s = g.add("sum", nn.Add(), g.add("left", table, a), g.add("right", table, b))
    g.output(g.add("head", nn.Linear(4, 2), s))
    return g


@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_export_is_a_gather_with_an_integer_input_and_runs_in_onnxruntime(tmp_path, dtype):
    model = _bag_model()
    proto = mg.onnx.export(model, _tokens((2, 5), dtype=dtype), tmp_path / "bag.onnx")
    assert [n.op_type for n in proto.graph.node] == ["Gather", "Flatten", "Gemm"]
    gather = proto.graph.node[0]
    assert list(gather.input) == ["0.weight", "input"] and gather.attribute[0].i == 0
    elem = proto.graph.input[0].type.tensor_type.elem_type
    assert elem == (TP.INT64 if dtype == "int64" else TP.INT32)
    x = _tokens((7, 5), seed=1, dtype=dtype)                           # another batch size: N is symbolic
    model.eval()
    (got,) = run_ort(tmp_path / "bag.onnx", x)
    assert_close(got, model(x), rtol=1e-4)


def test_round_trip_loads_equal_and_trains_like_the_original(tmp_path):
    model = _bag_model()
    mg.onnx.export(model, _tokens((2, 5)), tmp_path / "bag.onnx")
    loaded = mg.onnx.load(tmp_path / "bag.onnx")
    embedding = next(layer for layer in loaded.modules() if isinstance(layer, nn.Embedding))
    assert embedding.weight.requires_grad and embedding.weight.shape == (20, 6)
    x, target = _tokens((4, 5), seed=2), np.array([0, 2, 1, 2])
    np.testing.assert_array_equal(loaded(x), model(x))
    for net in (model, loaded):
        net.zero_grad()
        criterion = nn.CrossEntropyLoss()
        criterion(net(x), target)
        net.backward_parameters(criterion.backward())
    # (the original's padding row gets no gradient; the file has no padding_idx, so the loaded table's
    # padding row would: token 0 does not occur here)
    assert 0 not in x
    np.testing.assert_allclose(embedding.weight.grad, model[0].weight.grad, rtol=1e-6)
    for ours, theirs in zip(loaded.parameters(), model.parameters()):
        np.testing.assert_allclose(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)


def test_a_table_used_twice_is_written_once_and_loaded_shared(tmp_path):
    mg.manual_seed(1)
    g = _tied_graph()
    a, b = _tokens((3, 2), seed=3), _tokens((3, 2), seed=4)
    proto = mg.onnx.export(g, (a, b), tmp_path / "tied.onnx")
    names = [init.name for init in proto.graph.initializer]
    assert names.count("left.weight") == 1 and not any(n.startswith("right") for n in names)
    assert sum(n.op_type == "Gather" for n in proto.graph.node) == 2
    g.eval()
    (got,) = run_ort(tmp_path / "tied.onnx", a, b)
    assert_close(got, g(a, b), rtol=1e-4)
    loaded = mg.onnx.load(tmp_path / "tied.onnx")
    tables = {id(layer) for layer in loaded.modules() if isinstance(layer, nn.Embedding)}
    assert len(tables) == 1
    np.testing.assert_array_equal(loaded(a, b), g(a, b))


def test_pytorchs_exported_embedding_loads(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Embedding(20, 6), torch.nn.Flatten(), torch.nn.Linear(24, 3)).eval()
    x = _tokens((2, 4))
    torch_export(ref, torch.from_numpy(x), tmp_path / "t.onnx", opset=17)
    loaded = mg.onnx.load(tmp_path / "t.onnx")
    assert any(isinstance(layer, nn.Embedding) for layer in loaded.modules())
    x2 = _tokens((5, 4), seed=6)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x2)).numpy()
    assert_close(loaded(x2), expected, rtol=1e-5)


def _gather_model(data_shape, axis=None, data_const=True):
    table = onnx.numpy_helper.from_array(np.ones(data_shape, np.float32), "table")
    inputs = [onnx.helper.make_tensor_value_info("idx", TP.INT64, ["N", 3])]
    inits = [table] if data_const else []
    if not data_const:
        inputs.append(onnx.helper.make_tensor_value_info("table", TP.FLOAT, list(data_shape)))
    attrs = {} if axis is None else {"axis": axis}
    node = onnx.helper.make_node("Gather", ["table", "idx"], ["y"], name="lookup", **attrs)
    rank = 2 + len(data_shape) - 1
    out = onnx.helper.make_tensor_value_info("y", TP.FLOAT, [f"d{i}" for i in range(rank)])
    return single_node_model(node, inputs, [out], inits)


def test_a_gather_of_a_constant_table_by_a_graph_input_is_an_embedding():
    loaded = mg.onnx.load(_gather_model((5, 2)).SerializeToString())
    (layer,) = [m for m in loaded.modules() if isinstance(m, nn.Embedding)]
    assert (layer.num_embeddings, layer.embedding_dim) == (5, 2) and layer.weight.dtype == np.float32
    assert loaded(np.array([[4, 0, 1]])).shape == (1, 3, 2)
    with pytest.raises(IndexError, match=r"'table': index out of range"):
        loaded(np.array([[5, 0, 1]]))


@pytest.mark.parametrize("model,match", [
    (lambda: _gather_model((5, 2), data_const=False), r"node 'lookup' \(Gather\): its data \('table'\) is computed"),
    (lambda: _gather_model((5, 2), axis=1), r"attribute 'axis' = 1 is not supported"),
    (lambda: _gather_model((5, 2, 2)), r"its data \(the embedding table\) 'table' has shape \(5, 2, 2\); expected rank 2"),
], ids=["computed_table", "axis", "table_rank"])
def test_other_gathers_are_refused_naming_the_node(model, match):
    with pytest.raises(OnnxError, match=match):
        mg.onnx.load(model().SerializeToString())
