"""mg.onnx.load refuses, never guesses: an unsupported op, attribute or pattern names the node, the op and the
attribute; a truncated file, a faulty external data file, a wrong argument and a missing extra are named too."""
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")        # the test extra includes minigrad[onnx]
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import assert_close, run_ort, sample, single_node_model, value_info  # noqa: E402


# -- ops, attributes and patterns ----------------------------------------------------------------------------

def test_unsupported_op_names_node_and_op():
    node = onnx.helper.make_node("Cos", ["x"], ["y"], name="my_cos")
    model = single_node_model(node, [value_info("x", [2, 3])], [value_info("y", [2, 3])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'my_cos' \(Cos\): op Cos is not supported"):
        mg.onnx.load(model)


def test_unsupported_attribute_names_node_op_and_attribute():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="conv_same", auto_pad="SAME_LOWER")
    model = single_node_model(node, [value_info("x", [1, 3, 8, 8])], [value_info("y", [1, 4, 8, 8])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'conv_same' \(Conv\): attribute 'auto_pad' = 'SAME_LOWER'"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], storage_order=1)
    model = single_node_model(node, [value_info("x", [1, 3, 8, 8])], [value_info("y", [1, 3, 7, 7])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'pool' \(MaxPool\): attribute 'storage_order' = 1"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", alpha=2.0)
    weight = onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    model = single_node_model(node, [value_info("x", [1, 3])], [value_info("y", [1, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'fc' \(Gemm\): attribute 'alpha' = 2.0"):
        mg.onnx.load(model)


def test_unsupported_patterns_are_refused_not_guessed():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[0, 0, 1, 2], strides=[2, 2])
    model = single_node_model(node, [value_info("x", [1, 3, 8, 8])], [value_info("y", [1, 4, 4, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'c' \(Conv\): attribute 'pads' = \[0, 0, 1, 2\]"):
        mg.onnx.load(model)
    shape = onnx.numpy_helper.from_array(np.array([2, 3, 2], np.int64), "s")
    node = onnx.helper.make_node("Reshape", ["x", "s"], ["y"], name="r")
    model = single_node_model(node, [value_info("x", [2, 6])], [value_info("y", [2, 3, 2])], [shape])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'r' \(Reshape\).*not a flatten"):
        mg.onnx.load(model)
    node = onnx.helper.make_node("Conv", ["x", "x"], ["y"], name="dyn")
    model = single_node_model(node, [value_info("x", [1, 1, 3, 3])], [value_info("y", [1, 1, 1, 1])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'dyn' \(Conv\): its weight \('x'\) is computed at run time"):
        mg.onnx.load(model)


def test_kernel_shape_and_bias_shape_mismatches_are_refused():
    weight = onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="k", kernel_shape=[5, 5])
    model = single_node_model(node, [value_info("x", [1, 3, 8, 8])], [value_info("y", [1, 4, 4, 4])], [weight])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'k' \(Conv\): attribute 'kernel_shape' = \[5, 5\] does not "
                                                 r"match the weight"):
        mg.onnx.load(model)
    helper = onnx.helper
    w = onnx.numpy_helper.from_array(np.ones((4, 5), np.float32), "w")
    b = onnx.numpy_helper.from_array(np.ones((5, 1), np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["y"],
                                                                                       name="plus")]
    graph = helper.make_graph(nodes, "g", [value_info("x", [5, 4])], [value_info("y", [5, 5])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'plus' \(Add\): adding the constant 'b' of shape \(5, 1\)"):
        mg.onnx.load(model)


@pytest.mark.parametrize("bias_shape", [(3, 1), (3, 3)])
def test_gemm_bias_per_row_is_refused(bias_shape):
    """ONNX broadcasts Gemm's C to (N, O): an (O, 1) or (N, O) C adds a different bias to each row, which a
    Linear's per-feature bias cannot express (read as per-feature, (O, 1) differed from ONNX Runtime)."""
    weight = onnx.numpy_helper.from_array(sample((3, 4), seed=1), "w")
    bias = onnx.numpy_helper.from_array(sample(bias_shape, seed=2), "b")
    node = onnx.helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
    model = single_node_model(node, [value_info("x", [3, 4])], [value_info("y", [3, 3])], [weight, bias])
    x = sample((3, 4), seed=3)
    (expected,) = run_ort(model.SerializeToString(), x)               # a valid model: rows get their own bias
    added = expected - x @ onnx.numpy_helper.to_array(weight).T                  # (N, O): the bias each row got
    assert np.abs(added - added[0]).max() > 0.1                                 # not one per-feature bias
    shape = str(bias_shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(mg.onnx.OnnxError, match=rf"node 'fc' \(Gemm\): bias C of shape {shape} is not supported "
                                                 r"\(only \(\), \(1,\), \(3,\) or \(1, 3\)"):
        mg.onnx.load(model)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad_with_negative_pads_before_conv_is_a_crop_layer(mode):
    """A Pad with a negative pad crops; adding it to the Conv's pads (crop 1, pad 1 -> no padding) would keep
    the border values where ONNX Runtime has zeros. So it is not folded into the Conv: it becomes its own pad
    layer (ZeroPad2d / ReflectionPad2d with negative padding, a crop) before the Conv."""
    helper = onnx.helper
    pads = [0, 0, -1, -1, 0, 0, -1, -1]
    inits = [onnx.numpy_helper.from_array(np.array(pads, np.int64), "pads"),
             onnx.numpy_helper.from_array(sample((4, 3, 3, 3), seed=1), "w")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="crop", mode=mode),
             helper.make_node("Conv", ["p", "w"], ["y"], name="conv", pads=[1, 1, 1, 1] if mode == "constant"
                              else [0, 0, 0, 0])]
    graph = helper.make_graph(nodes, "g", [value_info("x", ["N", 3, 8, 8])], [value_info("y", ["N", 4, None, None])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = sample((2, 3, 8, 8), seed=2)
    (expected,) = run_ort(model.SerializeToString(), x)   # a valid model
    loaded = mg.onnx.load(model).eval()
    crop = next(layer for layer in loaded.modules() if isinstance(layer, (mg.nn.ZeroPad2d, mg.nn.ReflectionPad2d)))
    assert crop.padding == (-1, -1, -1, -1)
    assert_close(loaded(x), expected)


def test_reduce_mean_elsewhere_and_allowzero_with_zero_are_refused():
    helper = onnx.helper
    node = helper.make_node("ReduceMean", ["x"], ["y"], name="channel_mean", axes=[1], keepdims=1)
    model = single_node_model(node, [value_info("x", [2, 3, 4, 4])], [value_info("y", [2, 1, 4, 4])])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'channel_mean' \(ReduceMean\): attribute 'axes' = \[1\]"):
        mg.onnx.load(model)
    shape = onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "s")
    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="r", allowzero=1)
    model = single_node_model(node, [value_info("x", [2, 3, 4, 4])], [value_info("y", [0, 96])], [shape])
    with pytest.raises(mg.onnx.OnnxError, match=r"node 'r' \(Reshape\): attribute 'allowzero' = 1"):
        mg.onnx.load(model)


# -- files: truncated, foreign, external data, not a model, no extra -----------------------------------------

def test_truncated_or_foreign_file_raises_clear_error(tmp_path):
    mg.onnx.export(mg.models.lenet5(), sample((1, 1, 28, 28)), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    for cut in (len(data) // 2, 100, 7):
        (tmp_path / "cut.onnx").write_bytes(data[:cut])
        with pytest.raises(mg.onnx.OnnxError, match=r"cut.onnx: .*(truncated|corrupted)"):
            mg.onnx.load(tmp_path / "cut.onnx")
    (tmp_path / "text.onnx").write_bytes(b"this is not a model")
    with pytest.raises(mg.onnx.OnnxError, match=r"text.onnx"):
        mg.onnx.load(tmp_path / "text.onnx")


def test_every_truncation_of_a_file_is_refused_clearly(tmp_path):
    """Each prefix of an exported file (cut anywhere, empty included) raises OnnxError saying the file may be
    truncated; none loads as a smaller graph and none escapes as a protobuf or checker traceback."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    mg.onnx.export(model, sample((1, 1, 4, 4)), tmp_path / "m.onnx")
    data = (tmp_path / "m.onnx").read_bytes()
    assert isinstance(mg.onnx.load(data), nn.Graph)
    for cut in range(len(data)):
        with pytest.raises(mg.onnx.OnnxError, match=r"mg.onnx.load: bytes: .*truncated"):
            mg.onnx.load(data[:cut])


def test_external_data_files_are_read_and_their_faults_named(tmp_path):
    """Initializers in an external data file next to the model (what PyTorch's dynamo exporter writes by
    default) are read from the model's folder; bytes without the folder, a missing or a truncated data file
    raise OnnxError naming the file, the initializer and the data file."""
    mg.manual_seed(2)
    model = mg.models.lenet5()
    proto = mg.onnx.export(model, sample((1, 1, 28, 28)), tmp_path / "inline.onnx")
    onnx.save_model(proto, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    assert (tmp_path / "m.onnx").stat().st_size < 10_000 < (tmp_path / "m.onnx.data").stat().st_size
    x = sample((3, 1, 28, 28), seed=3)
    model.eval()
    np.testing.assert_allclose(mg.onnx.load(tmp_path / "m.onnx").eval()(x), model(x), rtol=1e-6, atol=1e-6)
    with pytest.raises(mg.onnx.OnnxError, match=r"bytes: the model keeps 10 initializer\(s\) in external data "
                                                 r"file\(s\) \['m.onnx.data'\]; pass the .onnx file's path"):
        mg.onnx.load((tmp_path / "m.onnx").read_bytes())
    lying = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)    # a length that disagrees with
    entry = next(e for e in lying.graph.initializer[0].external_data if e.key == "length")   # the shape
    entry.value = str(int(entry.value) - 4)
    (tmp_path / "lying.onnx").write_bytes(lying.SerializeToString())
    with pytest.raises(mg.onnx.OnnxError, match=r"lying.onnx: initializer '0.weight' of shape \(6, 1, 5, 5\) needs "
                                                 r"600 bytes of external data, 'm.onnx.data' gives 596"):
        mg.onnx.load(tmp_path / "lying.onnx")
    entry = next(e for e in lying.graph.initializer[0].external_data if e.key == "location")
    entry.value = "../m.onnx.data"
    (tmp_path / "lying.onnx").write_bytes(lying.SerializeToString())
    with pytest.raises(mg.onnx.OnnxError, match=r"initializer '0.weight' names the external data file "
                                                 r"'../m.onnx.data', outside the model's folder"):
        mg.onnx.load(tmp_path / "lying.onnx")
    data = (tmp_path / "m.onnx.data").read_bytes()
    (tmp_path / "m.onnx.data").write_bytes(data[: len(data) // 2])
    with pytest.raises(mg.onnx.OnnxError, match=r"m.onnx: .*initializer '[\w.]+'.*'m.onnx.data'.*"):
        mg.onnx.load(tmp_path / "m.onnx")
    (tmp_path / "m.onnx.data").unlink()
    with pytest.raises(mg.onnx.OnnxError, match=r"m.onnx: cannot read the external data of initializer "
                                                 r"'0.weight' from 'm.onnx.data'"):
        mg.onnx.load(tmp_path / "m.onnx")


def test_load_refuses_what_is_not_a_model_source():
    with pytest.raises(TypeError, match=r"mg.onnx.load: expected a path, bytes or an onnx.ModelProto, got dict"):
        mg.onnx.load({"graph": None})


def test_load_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'mg.onnx.load needs the \'onnx\' package.*pip install -e "\.\[onnx\]"'):
        mg.onnx.load(tmp_path / "m.onnx")
