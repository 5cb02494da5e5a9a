"""mg.onnx.export: the checker passes, ONNX Runtime equals minigrad, the file reads back (mg.onnx.load) with the
same outputs; clear errors for what ONNX cannot express; the extra; ``minigrad export``."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn

onnx = pytest.importorskip("onnx")        # the test extra includes minigrad[onnx]
ort = pytest.importorskip("onnxruntime")
from support.onnx_files import assert_close, randomize_bn, run_ort, sample  # noqa: E402


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
    "basic_block": (lambda: mg.models.basic_block(4, 8, stride=2), (2, 4, 8, 8)),
    "shared_concat_graph": (_shared_concat_graph, (2, 3, 8, 8)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_models_export_run_in_onnxruntime(name, tmp_path):
    build, shape = MODELS[name]
    mg.manual_seed(0)
    model = randomize_bn(build())
    model.train()
    proto = mg.onnx.export(model, sample(shape), tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)
    assert all(layer.training for layer in model.modules())          # modes restored
    names = {init.name for init in proto.graph.initializer}
    assert {k for k in model.state_dict() if not k.endswith("num_batches_tracked")} <= names
    x = sample((3,) + shape[1:], seed=1)                                  # another batch size: N is symbolic
    model.eval()
    expected = model(x)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, expected)


def test_shared_layer_written_once(tmp_path):
    proto = mg.onnx.export(_shared_concat_graph(), sample((2, 3, 8, 8)), tmp_path / "g.onnx")
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
        ("batchnorm1d_3d", lambda: nn.Sequential(nn.Flatten(2), nn.BatchNorm1d(3)), img, 17),
        ("batchnorm_no_affine", lambda: nn.BatchNorm2d(3, affine=False), img, 17),
        ("layernorm", lambda: nn.LayerNorm((9, 9)), img, 17),
        ("layernorm_no_bias", lambda: nn.LayerNorm(9, bias=False), img, 17),
        ("flatten_dropout_identity", lambda: nn.Sequential(nn.Flatten(2), nn.Dropout(0.3), nn.Identity()), img, 17),
        ("mul", lambda: _two_branch(nn.Mul()), img, 17),
        ("add_three_inputs_as_sum", lambda: _two_branch(nn.Add()), img, 17),
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
    model = randomize_bn(build())
    mg.onnx.export(model, sample(shape), tmp_path / "m.onnx", opset=opset)
    x = sample((3,) + shape[1:], seed=1)
    model.eval()
    expected = model(x)
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, expected)


@pytest.mark.parametrize("opset", [13, 17, 19, 21])
def test_each_supported_opset_gets_its_ir_version_and_runs(opset, tmp_path):
    model = mg.models.lenet5()
    proto = mg.onnx.export(model, sample((1, 1, 28, 28)), tmp_path / "m.onnx", opset=opset)
    assert proto.ir_version == onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    x = sample((2, 1, 28, 28), seed=6)
    model.eval()
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, model(x))
    np.testing.assert_allclose(mg.onnx.load(tmp_path / "m.onnx").eval()(x), model(x), rtol=1e-6, atol=1e-6)


def test_export_import_and_safetensors_on_each_backend(backend, tmp_path):
    mg.manual_seed(0)
    model = randomize_bn(mg.models.vgg_small(num_classes=4, config=(8, "M", 16, "M")))   # on the active backend
    host = sample((2, 3, 32, 32))
    x = mg.backend.to_backend(host, backend)
    mg.onnx.export(model, x, tmp_path / "m.onnx")
    model.eval()
    expected = mg.backend.to_backend(model(x), "numpy")
    (got,) = run_ort(tmp_path / "m.onnx", host)
    assert_close(got, expected)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    assert {mg.backend.backend_of(a) for a in graph.state_dict().values()} == {backend}
    np.testing.assert_allclose(mg.backend.to_backend(graph(x), "numpy"), expected, rtol=1e-6, atol=1e-6)
    mg.io.save_safetensors(model, tmp_path / "m.safetensors")
    state = mg.io.load_safetensors(tmp_path / "m.safetensors", backend=backend)
    assert {mg.backend.backend_of(a) for a in state.values()} == {backend}


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
        mg.onnx.export(build(), sample((2, 3, 9, 9)), tmp_path / "m.onnx", opset=opset)
    assert not (tmp_path / "m.onnx").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"mg.onnx.export: expected a minigrad Layer .*got dict"):
        mg.onnx.export({"w": np.zeros(2)}, sample((2, 3)), tmp_path / "m.onnx")
    with pytest.raises(TypeError, match=r"example input 0 must be a floating NumPy/CuPy array"):
        mg.onnx.export(nn.ReLU(), [[1.0, 2.0]], tmp_path / "m.onnx")


def test_subclass_with_own_forward_is_not_exported_as_its_base(tmp_path):
    class Doubled(nn.ReLU):
        def forward(self, x):
            return 2 * super().forward(x)

    with pytest.raises(mg.onnx.OnnxError, match="Doubled"):
        mg.onnx.export(nn.Sequential(Doubled()), sample((2, 3)), tmp_path / "m.onnx")


# -- re-import of exported files (mg.onnx.load) --------------------------------------------------------------

@pytest.mark.parametrize("name", list(MODELS))
def test_models_reimport_as_graph_with_same_outputs(name, tmp_path):
    build, shape = MODELS[name]
    mg.manual_seed(0)
    model = randomize_bn(build())
    mg.onnx.export(model, sample(shape), tmp_path / "m.onnx")
    graph = mg.onnx.load(tmp_path / "m.onnx")
    assert isinstance(graph, nn.Graph) and all(layer.training for layer in graph.modules())   # ready to train
    x = sample((3,) + shape[1:], seed=1)
    model.eval()
    graph.eval()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-6, atol=1e-6)

    def renamed(names):                                             # 'layer1.0.conv1.weight' -> 'layer1_0_conv1.weight'
        return {k.rsplit(".", 1)[0].replace(".", "_") + "." + k.rsplit(".", 1)[1] for k in names
                if not k.endswith("num_batches_tracked")}

    # names from the ONNX (state-dict) names: weights as parameters, BatchNorm statistics as buffers
    assert {k for k, _ in graph.named_parameters()} == renamed(k for k, _ in model.named_parameters())
    assert renamed(k for k, _ in graph.named_buffers()) == renamed(k for k, _ in model.named_buffers())


def test_reimported_shared_layer_stays_shared(tmp_path):
    mg.onnx.export(_shared_concat_graph(), sample((2, 3, 8, 8)), tmp_path / "g.onnx")
    graph = mg.onnx.load(tmp_path / "g.onnx")
    layers = [layer for _, layer, _ in graph.nodes if isinstance(layer, nn.Conv2d)]
    assert len(layers) == 3 and len({id(layer) for layer in layers}) == 2


@pytest.mark.parametrize("name", [c[0] for c in LAYER_CASES])
def test_layer_cases_reimport(name, tmp_path):
    _, build, shape, opset = next(c for c in LAYER_CASES if c[0] == name)
    mg.manual_seed(3)
    model = randomize_bn(build())
    mg.onnx.export(model, sample(shape), tmp_path / "m.onnx", opset=opset)
    graph = mg.onnx.load(tmp_path / "m.onnx").eval()
    x = sample((3,) + shape[1:], seed=1)
    model.eval()
    np.testing.assert_allclose(graph(x), model(x), rtol=1e-6, atol=1e-6)


# -- without the onnx extra ----------------------------------------------------------------------------------

def test_export_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[onnx\]"'):
        mg.onnx.export(nn.ReLU(), sample((2, 3)), tmp_path / "m.onnx")


_WITHOUT_EXTRA = textwrap.dedent("""
    import sys
    for name in ("onnx", "onnxruntime", "safetensors", "safetensors.numpy", "safetensors.torch"):
        sys.modules[name] = None                       # importing it fails, as if not installed
    import numpy as np
    import minigrad as mg
    from minigrad.cli import main
    calls = {"mg.onnx.export": lambda: mg.onnx.export(mg.nn.ReLU(), np.zeros((1, 2), "float32"), "m.onnx"),
             "mg.onnx.load": lambda: mg.onnx.load("m.onnx"),
             "mg.io.save_safetensors": lambda: mg.io.save_safetensors({"w": np.zeros(2)}, "w.st"),
             "mg.io.load_safetensors": lambda: mg.io.load_safetensors("w.st")}
    for what, call in calls.items():
        try:
            call()
            print(what, "| no error")
        except ImportError as exc:
            print(what, "|", exc)
    mg.save("c.npz", mg.models.lenet5(), run_config={"model": "lenet5"})
    print("status", main(["export", "c.npz", "--onnx", "m.onnx"]))
""")


def test_without_the_extra_minigrad_imports_and_each_function_names_the_extra(tmp_path):
    """A fresh interpreter without onnx, onnxruntime and safetensors: ``import minigrad`` works, and export,
    load, both safetensors functions and ``minigrad export`` fail with ``pip install "minigrad[onnx]"``."""
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRA], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" | ", 1) for line in done.stdout.splitlines() if " | " in line)
    assert sorted(lines) == ["mg.io.load_safetensors", "mg.io.save_safetensors", "mg.onnx.export", "mg.onnx.load"]
    for what, message in lines.items():
        assert message.startswith(f"{what} needs the '") and message.endswith(
            'pip install -e ".[onnx]" (from the minigrad checkout)'), message
    assert "status 2" in done.stdout.splitlines()
    assert done.stderr.startswith("minigrad export: error: mg.onnx.export needs the 'onnx' package")
    assert done.stderr.count("\n") == 1 and 'pip install -e ".[onnx]"' in done.stderr
    assert not (tmp_path / "m.onnx").exists()


# -- minigrad export -----------------------------------------------------------------------------------------

def test_cli_export_writes_onnx_and_safetensors(tmp_path, capsys):
    from minigrad.cli import main
    mg.manual_seed(4)
    model = mg.models.lenet5()
    run = tmp_path / "run"
    run.mkdir()
    mg.save(run / "checkpoint.npz", model, run_config={"model": "lenet5"})
    assert main(["export", str(run), "--onnx", str(tmp_path / "l.onnx"),
                 "--safetensors", str(tmp_path / "l.safetensors")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "l.safetensors"), str(tmp_path / "l.onnx")]
    x = sample((5, 1, 28, 28))
    model.eval()
    (got,) = run_ort(tmp_path / "l.onnx", x)
    assert_close(got, model(x))
    weights = mg.io.load_safetensors(tmp_path / "l.safetensors")
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(weights[name], value)


@pytest.mark.parametrize("name", ["mlp", "resnet20", "vgg_small"])
def test_cli_exports_every_model_minigrad_train_builds(name, tmp_path, capsys):
    """The other `minigrad train --model` networks, with the input each trains on ((N, 1, 32, 32) for vgg_small,
    which pads the digits): ONNX Runtime equals the checkpoint's network."""
    from minigrad.cli import build_model, main
    mg.manual_seed(5)
    model, transform = build_model(name)
    randomize_bn(model)
    mg.save(tmp_path / "checkpoint.npz", model, run_config={"model": name})
    assert main(["export", str(tmp_path), "--onnx", str(tmp_path / "m.onnx")]) == 0
    size = 28 if transform is None else 32
    x = sample((3, 1, size, size), seed=6)
    model.eval()
    (got,) = run_ort(tmp_path / "m.onnx", x)
    assert_close(got, model(x))


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    from minigrad.cli import main
    assert main(["export", str(tmp_path / "missing.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    mg.save(tmp_path / "plain.npz", mg.models.mlp(hidden=(8,)))
    assert main(["export", str(tmp_path / "plain.npz"), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "no run configuration" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "plain.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minigrad export: error: nothing to write") and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()
