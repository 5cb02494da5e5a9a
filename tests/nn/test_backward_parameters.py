"""Layer.backward_parameters: parameter gradients without the input gradient (the data needs none),
and Linear's NumPy path (minigrad.kernels.cpu_linear: its BLAS threading policy) against the formulas."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels import cpu_linear


def _grads(model):
    return {name: p.grad.copy() for name, p in model.named_parameters()}


def _check_against_backward(model, x, dy, rtol, atol=0.0):
    """backward, then backward_parameters on the same input: it returns None and leaves the same
    parameter gradients. Returns the input gradient backward gave."""
    model(x)
    dx = model.backward(dy)
    full = _grads(model)
    model.zero_grad()
    model(x)
    assert model.backward_parameters(dy) is None
    for name, grad in _grads(model).items():
        np.testing.assert_allclose(grad, full[name], rtol=rtol, atol=atol, err_msg=name)
    return dx


def _spy_need_input(monkeypatch):
    """Record, for every Conv2d backward from now on, whether it asked for the input gradient."""
    calls = []
    original = mg.nn.conv.conv_backward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("need_input", True))
        return original(*args, **kwargs)

    monkeypatch.setattr(mg.nn.conv, "conv_backward", spy)
    return calls


def _lenet_and_batch(dtype="float64"):
    mg.manual_seed(0)
    model = mg.models.lenet5(dtype=dtype)
    x = np.random.default_rng(1).standard_normal((6, 1, 28, 28)).astype(dtype)
    return model, x


def test_sequential_backward_parameters_matches_backward():
    model, x = _lenet_and_batch()
    dy = np.random.default_rng(2).standard_normal((6, 10))
    assert _check_against_backward(model, x, dy, rtol=1e-13, atol=1e-13).shape == x.shape


def test_first_layer_gets_no_input_gradient(monkeypatch):
    model, x = _lenet_and_batch()
    calls = _spy_need_input(monkeypatch)
    model(x)
    model.backward_parameters(np.ones((6, 10)))
    assert calls == [True, False]          # conv2 passes dx down; conv1 (the first layer) does not


def test_layers_before_the_first_parametrized_one_are_skipped():
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Flatten(), mg.nn.Linear(12, 3, dtype="float64"))
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    model(x)
    model.backward_parameters(np.ones((4, 3)))
    assert model[0]._cache is not None     # Flatten's backward never ran
    assert model[1]._cache is None         # Linear's did
    np.testing.assert_allclose(model[1].weight.grad, np.ones((4, 3)).T @ x.reshape(4, 12), rtol=1e-13)  # dy^T @ x


def test_sequential_without_parameters_returns_none():
    model = mg.nn.Sequential(mg.nn.ReLU(), mg.nn.Flatten())
    model(np.ones((2, 3, 4)))
    assert model.backward_parameters(np.ones((2, 12))) is None


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_conv2d_backward_parameters(padding_mode):
    mg.manual_seed(0)
    conv = mg.nn.Conv2d(3, 4, 3, padding=1, padding_mode=padding_mode, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 5))
    dy = np.random.default_rng(1).standard_normal((2, 4, 6, 5))
    _check_against_backward(conv, x, dy, rtol=1e-13, atol=1e-13)


def test_custom_layer_default_runs_backward():
    class Scale(mg.nn.Layer):
        def __init__(self):
            super().__init__()
            self.w = mg.nn.Parameter(np.array([2.0]))

        def forward(self, x):
            self._cache = x
            return x * self.w.data

        def backward(self, grad_out):
            x = self.take_cache()
            self.w.accumulate(np.array([(grad_out * x).sum()]), self.label)
            return grad_out * self.w.data

    layer = Scale()
    layer(np.array([1.0, 3.0]))
    assert layer.backward_parameters(np.array([1.0, 1.0])) is None
    assert layer.w.grad[0] == 4.0


def test_anomaly_checks_backward_parameters():
    mg.manual_seed(0)
    model = mg.nn.Sequential(mg.nn.Linear(3, 2, dtype="float64"))
    model(np.ones((2, 3)))
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"Linear '0'.*gradient of parameter 'weight'"):
        model.backward_parameters(np.array([[np.nan, 0.0], [0.0, 0.0]]))


def test_fit_uses_backward_parameters(monkeypatch):
    model, _ = _lenet_and_batch("float32")
    seen = []
    original = mg.nn.Sequential.backward_parameters
    monkeypatch.setattr(mg.nn.Sequential, "backward_parameters",
                        lambda self, g: seen.append(g.shape) or original(self, g))
    rng = np.random.default_rng(0)
    data = mg.data.ArrayDataset(rng.standard_normal((8, 1, 28, 28)).astype("float32"), rng.integers(0, 10, 8))
    mg.train.fit(model, mg.nn.CrossEntropyLoss(), mg.optim.SGD(model.parameters(), lr=0.1),
                 mg.data.DataLoader(data, batch_size=4), epochs=1, progress=False)
    assert seen == [(4, 10), (4, 10)]


@pytest.mark.parametrize("shape", [(5, 7), (40, 7), (100, 7), (6, 9, 7)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("piece_flops", [1.0, float("inf")])    # products cut into pieces, or one call
def test_linear_fast_path_matches_formulas(shape, bias, piece_flops, monkeypatch):
    monkeypatch.setattr(cpu_linear, "PIECE_FLOPS", piece_flops)
    mg.manual_seed(0)
    layer = mg.nn.Linear(7, 4, bias=bias, dtype="float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:-1] + (4,))
    assert cpu_linear.supported(x, layer.weight.data)
    y = layer(x)
    w = layer.weight.data
    np.testing.assert_allclose(y, x @ w.T + (layer.bias.data if bias else 0), rtol=1e-13, atol=1e-13)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(layer.weight.grad, dy.reshape(-1, 4).T @ x.reshape(-1, 7), rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, dy.reshape(-1, 4).sum(0), rtol=1e-12, atol=1e-12)
    assert y.dtype == dx.dtype == np.float64


def test_linear_fast_path_keeps_float32():
    mg.manual_seed(0)
    layer = mg.nn.Linear(5, 3)
    y = layer(np.ones((64, 5), "float32"))
    dx = layer.backward(np.ones((64, 3), "float32"))
    assert y.dtype == dx.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32


def test_graph_backward_parameters_matches_backward(monkeypatch):
    mg.manual_seed(0)
    model = mg.models.resnet20(dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16))
    dy = np.random.default_rng(1).standard_normal((2, 10))
    calls = _spy_need_input(monkeypatch)
    assert _check_against_backward(model, x, dy, rtol=1e-12, atol=1e-12).shape == x.shape
    assert calls.count(False) == 1 and calls[-1] is False    # only the stem conv skips its input gradient


def test_graph_backward_parameters_with_a_residual_on_the_input():
    mg.manual_seed(0)
    g = mg.nn.Graph()
    x = g.input("x")
    h = g.add("relu", mg.nn.ReLU(), x)                      # parameter-free on the input: skipped
    h = g.add("fc", mg.nn.Linear(4, 4, dtype="float64"), h)
    y = g.add("sum", mg.nn.Add(), h, x)                      # the input also feeds the sum directly
    g.output(y)
    data = np.random.default_rng(0).standard_normal((3, 4))
    dy = np.random.default_rng(1).standard_normal((3, 4))
    _check_against_backward(g, data, dy, rtol=1e-13)


def test_backward_parameters_on_the_strict_backend():
    from support.strict_backend import assert_strict, strict_layer, to_strict
    mg.manual_seed(0)
    model = strict_layer(mg.nn.Sequential(mg.nn.Conv2d(2, 3, 3, padding=1), mg.nn.ReLU(), mg.nn.Flatten(),
                                          mg.nn.Linear(3 * 4 * 4, 2)))
    y = model(to_strict(np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype("float32")))
    assert model.backward_parameters(to_strict(np.ones(y.shape, "float32"))) is None
    for name, param in model.named_parameters():
        assert_strict(param.grad, f"gradient of {name}")
        assert param.grad.any(), name
