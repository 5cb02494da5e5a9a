"""ONNX export and import of Upsample, PixelShuffle / PixelUnshuffle, the pad layers and Dropout2d / AlphaDropout:
the exported file passes the checker and equals minigrad in ONNX Runtime (1e-4), mg.onnx.load of it equals and
trains; files written by torch.onnx.export import; Pad -> Conv folding is kept; what ONNX cannot express is
refused with the layer named."""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.nn.resample import DepthToSpace, SpaceToDepth

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import assert_close, run_ort, sample, single_node_model, value_info  # noqa: E402

UPSAMPLE = [dict(mode=m, align_corners=a, **t) for m, a in (("nearest", None), ("nearest-exact", None),
                                                             ("bilinear", False), ("bilinear", True))
            for t in ({"scale_factor": 2}, {"scale_factor": 3}, {"scale_factor": 1.5}, {"scale_factor": 0.5},
                      {"scale_factor": 0.7}, {"scale_factor": (1.7, 0.6)}, {"scale_factor": 2.1}, {"size": (13, 7)},
                      {"size": 1}, {"scale_factor": 1.5, "recompute_scale_factor": True})]
LAYERS = ([(lambda kw=kw: nn.Upsample(**kw), (2, 3, 9, 10), 17) for kw in UPSAMPLE] +
          [(lambda: nn.Upsample(scale_factor=1.5, mode="linear"), (2, 3, 7), 17),
           (lambda: nn.Upsample(size=9, mode="nearest"), (2, 3, 7), 17),
           (lambda: nn.UpsamplingBilinear2d(scale_factor=2), (2, 3, 5, 4), 17),
           (lambda: nn.UpsamplingNearest2d(size=(7, 3)), (2, 3, 5, 4), 17)] +
          [(lambda r=r: nn.PixelShuffle(r), (2, 36, 3, 4), 17) for r in (1, 2, 3)] +
          [(lambda r=r: nn.PixelUnshuffle(r), (2, 2, 6, 12), 17) for r in (1, 2, 3)] +
          [(lambda c=c, p=p: getattr(nn, c)(p), (2, 3, 5, 6), 19 if c == "CircularPad2d" else 17)
           for c in ("ZeroPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d")
           for p in (1, (1, 2, 3, 0), (-1, 2, 0, -2))] +
          [(lambda: nn.ConstantPad2d((1, 2, -1, 3), 2.5), (2, 3, 5, 6), 17),
           (lambda: nn.Dropout2d(0.3), (2, 3, 5, 6), 17), (lambda: nn.AlphaDropout(0.3), (2, 3, 5, 6), 17),
           (lambda: SpaceToDepth(2), (2, 3, 4, 6), 17), (lambda: DepthToSpace(2), (2, 12, 2, 3), 17)])


def _net(layer, shape):
    """A trainable model around ``layer``: Conv2d -> layer (-> Conv2d when the output stays 4-D)."""
    channels = shape[1]
    if len(shape) == 3:
        return nn.Sequential(layer)
    probe = layer(np.zeros((1, channels) + shape[2:], dtype="float32"))
    return nn.Sequential(nn.Conv2d(channels, channels, 1), layer, nn.Conv2d(probe.shape[1], 2, 1))


@pytest.mark.parametrize("make,shape,opset", LAYERS, ids=[f"{m()!r}-{s}" for m, s, _ in LAYERS])
def test_export_runs_in_onnxruntime_and_loads_back(make, shape, opset, tmp_path):
    mg.manual_seed(0)
    model = _net(make(), shape)
    mg.onnx.export(model, sample(shape), tmp_path / "m.onnx", opset=opset)
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    x = sample((3,) + shape[1:], seed=1)                               # another batch size: N is symbolic
    model.eval()
    expected = model(x)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, expected, rtol=1e-4)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    assert_close(graph(x), expected, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"scale_factor": 1.5, "mode": "bilinear"}, {"size": (7, 5)},
                                    {"scale_factor": 2}], ids=str)
def test_imported_graph_trains_like_the_original(kwargs, tmp_path):
    """float64 file: the loaded Graph's gradients (through the Resize) equal the original model's."""
    mg.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype="float64"), nn.Upsample(**kwargs),
                          nn.ReflectionPad2d((1, 0, 2, -1)), nn.PixelUnshuffle(1), nn.Conv2d(4, 2, 1, dtype="float64"))
    x = sample((2, 3, 6, 5), dtype="float64")
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    graph = mg.onnx.load(tmp_path / "m.onnx")
    y, y_loaded = model(x), graph(x)
    assert_close(y_loaded, y, rtol=1e-12)
    dy = sample(y.shape, seed=3, dtype="float64")
    model.backward(dy)
    graph.backward(dy)
    grads = {name: p.grad for name, p in model.named_parameters()}
    loaded = [p.grad for p in graph.parameters()]
    assert len(loaded) == len(grads)
    for ours, theirs in zip(sorted(loaded, key=lambda g: g.shape), sorted(grads.values(), key=lambda g: g.shape)):
        assert_close(ours, theirs, rtol=1e-12)
    optimizer = mg.optim.SGD(graph.parameters(), lr=0.1)
    optimizer.step()                                                    # it trains
    assert not np.allclose(graph(x), y_loaded)


def test_exported_ops_and_attributes(tmp_path):
    model = nn.Sequential(nn.Upsample(scale_factor=2), nn.Upsample(size=(5, 9), mode="bilinear", align_corners=True),
                          nn.Upsample(scale_factor=1.5, mode="bilinear"), nn.PixelShuffle(2), nn.PixelUnshuffle(2),
                          nn.ConstantPad2d(1, 0.5), nn.ReplicationPad2d(1), nn.Dropout2d(), nn.AlphaDropout())
    proto = mg.onnx.export(model, sample((1, 4, 3, 3)), tmp_path / "m.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Resize") == 3 and ops.count("DepthToSpace") == 1 and ops.count("Pad") == 2
    assert ops.count("Identity") == 2 and ops.count("Transpose") == 1 and "SpaceToDepth" not in ops
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in proto.graph.node]
    resize = [a for n, a in zip(proto.graph.node, attrs) if n.op_type == "Resize"]
    assert resize[0] == {"mode": b"nearest", "coordinate_transformation_mode": b"asymmetric", "nearest_mode": b"floor"}
    assert resize[1] == {"mode": b"linear", "coordinate_transformation_mode": b"align_corners"}
    assert resize[2] == {"mode": b"linear", "coordinate_transformation_mode": b"half_pixel"}
    assert {"blocksize": 2, "mode": b"CRD"} in attrs
    assert [a["mode"] for n, a in zip(proto.graph.node, attrs) if n.op_type == "Pad"] == [b"constant", b"edge"]


def test_circular_pad_needs_opset_19_and_other_refusals(tmp_path):
    with pytest.raises(mg.onnx.OnnxError, match=r"CircularPad2d '0' needs ONNX's Pad mode 'wrap'.*opset=17"):
        mg.onnx.export(nn.Sequential(nn.CircularPad2d(1)), sample((1, 2, 4, 4)), tmp_path / "m.onnx")
    with pytest.raises(mg.onnx.OnnxError, match=r"PixelShuffle '0' gets an input of shape \(4, 3, 3\)"):
        mg.onnx.export(nn.Sequential(nn.PixelShuffle(2)), sample((4, 3, 3)), tmp_path / "m.onnx")


def test_pad_before_conv_is_still_folded_and_other_pads_become_layers(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ZeroPad2d((1, 1, 2, 2)),
                          nn.Conv2d(4, 4, 3), nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(4, 2, 3),
                          nn.ConstantPad2d(1, -1.0), nn.Conv2d(2, 2, 1))
    x = sample((2, 3, 6, 6))
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    kinds = [type(layer).__name__ for layer in graph.modules()][1:]
    # reflect and symmetric zero pads fold into the Conv after them; an asymmetric or non-zero pad is a layer
    assert kinds == ["Conv2d", "Conv2d", "ZeroPad2d", "Conv2d", "ConstantPad2d", "Conv2d"]
    assert_close(graph(x), model.eval()(x))


def _resize_model(attrs, scales=None, sizes=None, shape=(2, 3, 4, 5), out=(2, 3, None, None)):
    inits = [onnx.numpy_helper.from_array(np.array(scales, np.float32), "scales")] if scales else []
    inits += [onnx.numpy_helper.from_array(np.array(sizes, np.int64), "sizes")] if sizes else []
    node = onnx.helper.make_node("Resize", ["x", "", "scales" if scales else "", "sizes" if sizes else ""], ["y"],
                                 name="resize", **attrs)
    return single_node_model(node, [value_info("x", list(shape))], [value_info("y", list(out))], inits)


@pytest.mark.parametrize("attrs,scales,sizes", [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 1.5], None),
    ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"},
     None, [2, 3, 7, 3]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, None, [2, 3, 7, 9]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 0.5, 2], None)], ids=str)
def test_hand_written_resize_imports(attrs, scales, sizes):
    model = _resize_model(attrs, scales, sizes)
    x = sample((2, 3, 4, 5), seed=2)
    (expected,) = run_ort(model.SerializeToString(), x)
    assert_close(mg.onnx.load(model)(x), expected, rtol=1e-5)


@pytest.mark.parametrize("attrs,why", [
    ({"mode": "cubic"}, r"attribute 'mode' = 'cubic' is not supported"),
    ({"mode": "nearest", "nearest_mode": "round_prefer_floor"}, r"nearest_mode='round_prefer_floor' are not supported"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
     r"'coordinate_transformation_mode' = 'tf_crop_and_resize'"),
    ({"mode": "linear", "exclude_outside": 1}, r"'exclude_outside' = 1")], ids=str)
def test_resize_forms_without_an_equivalent_are_refused(attrs, why):
    with pytest.raises(mg.onnx.OnnxError, match=rf"node 'resize' \(Resize\): .*{why}"):
        mg.onnx.load(_resize_model(attrs, [1, 1, 2, 2]))
    with pytest.raises(mg.onnx.OnnxError, match=r"its scales .* are not supported \(1 for the batch and channel"):
        mg.onnx.load(_resize_model({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                    "nearest_mode": "floor"}, [2, 1, 2, 2]))


@pytest.mark.parametrize("op,attrs,shape", [("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, (2, 12, 3, 2)),
                                            ("DepthToSpace", {"blocksize": 3, "mode": "CRD"}, (2, 18, 2, 2)),
                                            ("SpaceToDepth", {"blocksize": 2}, (2, 3, 4, 6))], ids=str)
def test_depth_space_ops_import(op, attrs, shape):
    node = onnx.helper.make_node(op, ["x"], ["y"], name="d", **attrs)
    out = (2, 3, 6, 4) if op == "DepthToSpace" and attrs["mode"] == "DCR" else (2, 2, 6, 6) if op == "DepthToSpace" \
        else (2, 12, 2, 3)
    model = single_node_model(node, [value_info("x", list(shape))], [value_info("y", list(out))])
    x = sample(shape, seed=4)
    (expected,) = run_ort(model.SerializeToString(), x)
    graph = mg.onnx.load(model)
    assert_close(graph(x), expected, rtol=1e-6)
    assert graph.backward(np.ones_like(expected)).shape == shape        # the inverse permutation


def _torch_file(module, x, path, folding=True):
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, do_constant_folding=folding, opset_version=17)


def test_torch_exported_files_import():
    torch = pytest.importorskip("torch")
    import tempfile
    from pathlib import Path
    modules = [torch.nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=1.5, mode="bilinear"),
               torch.nn.Upsample(size=(5, 7), mode="bilinear"), torch.nn.Upsample(size=3, mode="nearest"),
               torch.nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=True),
               torch.nn.PixelShuffle(2), torch.nn.PixelUnshuffle(2), torch.nn.Dropout2d(), torch.nn.AlphaDropout()]
    x = torch.randn(2, 4, 4, 6)
    with tempfile.TemporaryDirectory() as folder:
        for module in modules:
            for folding in (True, False):
                path = Path(folder) / "m.onnx"
                _torch_file(module.eval(), x, path, folding)
                other = torch.randn(3, 4, 4, 6)
                expected = module(other).detach().numpy()
                assert_close(mg.onnx.load(path).eval()(other.numpy()), expected, rtol=1e-5)
