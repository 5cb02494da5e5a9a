"""Two files an outside probe found mg.onnx.load refusing with a raw ValueError: a graph without outputs, and
external data whose location holds a NUL character. Both are OnnxError naming the file."""
import numpy as np
import pytest

import minigrad as mg

onnx = pytest.importorskip("onnx")


def _exported(tmp_path):
    path = tmp_path / "m.onnx"
    mg.manual_seed(0)
    mg.onnx.export(mg.nn.Sequential(mg.nn.Conv2d(1, 2, 3), mg.nn.ReLU()), np.zeros((1, 1, 5, 5), np.float32), path)
    return onnx.load(path)


def test_a_graph_without_outputs_is_an_onnx_error(tmp_path):
    model = _exported(tmp_path)
    model.graph.ClearField("output")
    with pytest.raises(mg.onnx.OnnxError, match=r"mg.onnx.load: bytes: the graph declares no outputs"):
        mg.onnx.load(model.SerializeToString())


def test_an_external_data_location_with_a_nul_character_is_an_onnx_error(tmp_path):
    model = _exported(tmp_path)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="w.bin\0x")
    (tmp_path / "nul.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(mg.onnx.OnnxError, match=r"nul.onnx: initializer '.*' names its external data file with a NUL"):
        mg.onnx.load(tmp_path / "nul.onnx")
