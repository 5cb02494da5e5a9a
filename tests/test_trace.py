"""mg.trace() / MINIGRAD_TRACE=1: every layer's forward and backward, with shapes, dtype, backend, time, the
gradient norms, the unfold shapes of a convolution, and the layer where the shapes broke."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg


def _lenet_step_trace(batch=2):
    mg.manual_seed(0)
    model = mg.models.lenet5()
    x = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    criterion = mg.nn.CrossEntropyLoss()
    out = io.StringIO()
    with mg.trace(file=out):
        criterion(model(x), np.arange(batch) % 10)
        model.backward(criterion.backward())
    return model, out.getvalue().splitlines()


def test_a_lenet_step_traces_every_layer_forward_and_backward_once():
    model, lines = _lenet_step_trace()
    for name, layer in model.named_children():
        label = f"{type(layer).__name__} '{name}'"
        assert sum(line.strip().startswith(f"{label} forward ") for line in lines) == 1, label
        assert sum(line.strip().startswith(f"{label} backward ") for line in lines) == 1, label
    assert lines[0] == "Sequential forward  in (2, 1, 28, 28)  float32 numpy"
    assert any(line.startswith("end Sequential forward  in (2, 1, 28, 28) -> out (2, 10)") for line in lines)
    assert "  Conv2d '3' forward  in (2, 6, 14, 14) -> out (2, 16, 10, 10)  float32 numpy  " in "\n".join(lines)
    assert any(line.startswith("CrossEntropyLoss backward  grad_out 1 (a loss") for line in lines)


def test_the_convolution_shows_its_unfold_shapes():
    _, lines = _lenet_step_trace(batch=3)
    text = "\n".join(lines)
    assert "unfold   x (3, 6, 14, 14) -> columns (3, 150, 100)  = (N, C*kh*kw, OH*OW)" in text
    assert "weight   (16, 6, 5, 5) -> (1, 16, 150)" in text
    assert "GEMM     per sample and group: (16, 150) @ (150, 100) -> (16, 100)" in text
    assert "output   (3, 16, 100) -> reshape (3, 16, 10, 10) + bias (16,)" in text
    assert "dW       sum over samples of dy @ columns^T: (16, 100) @ (100, 150) -> (16, 150)" in text
    assert "dcolumns (3, 150, 100) -> fold -> (3, 6, 14, 14)" in text
    assert "GEMM     x @ W^T: (3, 400) @ (400, 120) -> (3, 120)" in text


def test_groups_and_the_first_layer_without_input_gradient():
    conv = mg.nn.Conv2d(6, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2, dtype="float64")
    x = np.random.default_rng(1).standard_normal((4, 6, 11, 9))
    out = io.StringIO()
    with mg.trace(file=out):
        y = conv(x)
        conv.backward_parameters(np.ones_like(y))
    text = out.getvalue()
    assert "columns (4, 36, 66)" in text and "-> (2, 2, 18)" in text and "8 of them" in text
    assert "backward_parameters  grad_out (4, 4, 6, 11) -> grad_in nothing (input gradient not needed)" in text
    assert "dx " not in text


def test_the_norms_are_the_arrays_norms():
    model, lines = _lenet_step_trace()
    line = next(line for line in lines if line.strip().startswith("Linear '11' backward"))
    weight_norm = float(np.linalg.norm(model[11].weight.grad))
    assert f"|weight.grad| {weight_norm:.3g}" in line


def test_the_layer_where_the_shapes_break_is_named():
    model = mg.nn.Sequential(mg.nn.Conv2d(1, 4, 3), mg.nn.Flatten(), mg.nn.Linear(100, 10))
    out = io.StringIO()
    with mg.trace(file=out), pytest.raises(ValueError):
        model(np.zeros((2, 1, 28, 28), np.float32))
    lines = out.getvalue().splitlines()
    assert lines[-2] == ("  Linear '2' forward  in (2, 2704)  float32 numpy  FAILED: ValueError: Linear '2': expected "
                         "input with last dimension in_features=100, got input of shape (2, 2704)")
    assert "Flatten '1' forward  in (2, 4, 26, 26) -> out (2, 2704)" in lines[-3]


def test_graphs_no_grad_and_anomaly_mode_trace_too():
    graph = mg.nn.Graph()
    x = graph.input("x")
    h = graph.add("conv", mg.nn.Conv2d(2, 2, 3, padding=1), x)
    graph.output(graph.add("sum", mg.nn.Add(), h, x))
    data = np.ones((1, 2, 4, 4), np.float32)
    out = io.StringIO()
    with mg.trace(file=out), mg.detect_anomaly(), mg.no_grad():
        graph(data)
    text = out.getvalue()
    assert "Conv2d 'conv' forward  in (1, 2, 4, 4) -> out (1, 2, 4, 4)" in text
    assert "Add 'sum' forward  in ((1, 2, 4, 4), (1, 2, 4, 4)) -> out (1, 2, 4, 4)" in text


def test_nothing_is_printed_outside_a_trace_and_gradcheck_is_summarised(capsys):
    layer = mg.nn.Linear(3, 2, dtype="float64")
    layer(np.ones((2, 3)))
    assert capsys.readouterr().err == ""
    out = io.StringIO()
    with mg.trace(file=out):
        mg.gradcheck(mg.nn.Linear(3, 2), np.ones((2, 3)))
    assert out.getvalue().splitlines() == ["gradcheck: its internal forwards and backwards are not traced"]
    assert not mg.debug.is_tracing()


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if k != "MINIGRAD_TRACE"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def test_minigrad_trace_environment_variable():
    code = "import numpy as np, minigrad as mg; mg.nn.ReLU()(np.ones((2, 3), np.float32))"
    done = _run(code, MINIGRAD_TRACE="1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0].startswith("ReLU forward  in (2, 3) -> out (2, 3)  float32 numpy")
    assert _run(code, MINIGRAD_TRACE="0").stderr == ""
    bad = _run(code, MINIGRAD_TRACE="maybe")                  # refused where the first layer is built
    assert bad.returncode == 1 and "SettingError: MINIGRAD_TRACE must be on (1/on/yes/true) or off" in bad.stderr
    cli = subprocess.run([sys.executable, "-m", "minigrad", "info"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MINIGRAD_TRACE": "maybe"})
    assert cli.returncode == 2 and cli.stderr.count("\n") == 1 and "MINIGRAD_TRACE must be on" in cli.stderr
