"""mg.nn.Sequential against torch.nn.Sequential: forward, gradients, state-dict names, indexing,
naming of children in errors, finite differences and the strict backend."""
from collections import OrderedDict

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Conv2d, Flatten, Layer, Linear, Sequential
from support.strict_backend import assert_strict, strict_layer, to_strict

torch = pytest.importorskip("torch")


def _pair(dtype):
    mg.manual_seed(3)
    ours = Sequential(Conv2d(2, 3, 3, padding=1, dtype=dtype), Flatten(), Linear(3 * 5 * 5, 4, dtype=dtype))
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.Flatten(),
                              torch.nn.Linear(75, 4)).to(getattr(torch, dtype))
    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sequential_matches_torch(dtype):
    ours, ref = _pair(dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 5)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    y, yt = ours(x), ref(xt)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx = ours.backward(dy)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol)
    grads = {name: p.grad for name, p in ours.named_parameters()}
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), **tol)
    assert dx.dtype == np.dtype(dtype)


def test_state_dict_names_match_torch():
    ours, ref = _pair("float32")
    assert list(ours.state_dict()) == list(ref.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_ordered_dict_names_and_nesting():
    model = Sequential(OrderedDict(features=Sequential(Conv2d(1, 2, 3), Flatten()),
                                   head=Sequential(OrderedDict(fc=Linear(2, 3)))))
    assert list(model.state_dict()) == ["features.0.weight", "features.0.bias", "head.fc.weight", "head.fc.bias"]
    assert model.features[0].label == "Conv2d 'features.0'"
    assert model.head.fc.label == "Linear 'head.fc'"
    assert model.head.label == "Sequential 'head'"
    # naming the outer container (e.g. when it becomes a child) renames every level below it
    outer = Sequential(model)
    assert outer[0].features[0].label == "Conv2d '0.features.0'"


def test_indexing_len_iteration_append():
    a, b, c = Linear(4, 4), Linear(4, 4), Linear(4, 2)
    model = Sequential(a, b)
    assert len(model) == 2 and model[0] is a and model[-1] is b and list(model) == [a, b]
    model.append(c)
    assert len(model) == 3 and model[2] is c and c.label == "Linear '2'"
    part = model[1:]
    assert isinstance(part, Sequential) and list(part) == [b, c]
    assert list(part.state_dict()) == ["1.weight", "1.bias", "2.weight", "2.bias"]  # keys kept, as torch
    assert b.label == "Linear '1'"  # slicing does not rename the shared layers
    model.extend([Flatten()])
    assert len(model) == 4
    with pytest.raises(IndexError, match="out of range for 4 layers"):
        model[4]
    with pytest.raises(TypeError, match="int or slice"):
        model["0"]


def test_forward_order_and_backward_reverse():
    calls = []

    class Tag(Layer):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, x):
            calls.append(("f", self.tag))
            self._cache = True
            return x + 1

        def backward(self, g):
            self.take_cache()
            calls.append(("b", self.tag))
            return g * 2

    model = Sequential(Tag("a"), Tag("b"), Tag("c"))
    y = model(np.zeros(2))
    dx = model.backward(np.ones(2))
    assert calls == [("f", "a"), ("f", "b"), ("f", "c"), ("b", "c"), ("b", "b"), ("b", "a")]
    np.testing.assert_array_equal(y, [3, 3])
    np.testing.assert_array_equal(dx, [8, 8])


def test_errors_name_the_child():
    model = Sequential(Conv2d(1, 2, 3), Flatten(), Linear(8, 2))
    with pytest.raises(ValueError, match=r"Conv2d '0'.*1 channels.*\(1, 3, 5, 5\)"):
        model(np.zeros((1, 3, 5, 5), "float32"))
    with pytest.raises(ValueError, match=r"Linear '2'.*in_features=8"):
        model(np.zeros((1, 1, 5, 5), "float32"))
    with pytest.raises(RuntimeError, match=r"Linear '2': backward called before forward"):
        Sequential(Conv2d(1, 2, 3), Flatten(), Linear(8, 2)).backward(np.zeros((1, 2), "float32"))


def test_exception_without_a_name_gets_the_child_prefix_and_keeps_its_type():
    class Bad(Layer):
        def forward(self, x):
            raise KeyError("boom")

    with pytest.raises(KeyError, match=r"in layer '1': boom"):
        Sequential(Flatten(), Bad())(np.zeros((1, 2)))


def test_construction_errors():
    with pytest.raises(TypeError, match=r"entry '1' must be a minigrad Layer, got function"):
        Sequential(Linear(2, 2), lambda x: x)
    with pytest.raises(ValueError, match=r"invalid layer name 'a\.b'"):
        Sequential(OrderedDict([("a.b", Linear(2, 2))]))
    with pytest.raises(TypeError, match="must be a str"):
        Sequential(OrderedDict([(1, Linear(2, 2))]))


def test_no_grad_keeps_no_cache_and_train_eval_propagate():
    model = Sequential(Conv2d(1, 2, 3), Flatten())
    with mg.no_grad():
        model(np.zeros((1, 1, 4, 4), "float32"))
    assert all(layer._cache is None for layer in model.modules())
    model.eval()
    assert not any(layer.training for layer in model.modules())
    model.train()
    assert all(layer.training for layer in model.modules())


def test_repr_shows_the_structure():
    text = repr(Sequential(Conv2d(1, 2, 3), Flatten()))
    assert text.startswith("Sequential(\n  (0): Conv2d(1, 2, kernel_size=(3, 3)") and "(1): Flatten(" in text


def test_gradcheck():
    mg.manual_seed(0)
    model = Sequential(Conv2d(1, 2, 2), Flatten(), Linear(8, 3))
    x = np.random.default_rng(1).standard_normal((2, 1, 3, 3))
    assert mg.gradcheck(model, x)


def test_strict_backend():
    model = strict_layer(Sequential(Conv2d(1, 2, 3), Flatten(), Linear(8, 3)))
    y = model(to_strict(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype("float32")))
    assert_strict(y, "output")
    dx = model.backward(to_strict(np.ones((2, 3), "float32")))
    assert_strict(dx, "input gradient")
    for name, p in model.named_parameters():
        assert_strict(p.grad, f"gradient of {name}")


@pytest.mark.parametrize("parameters_only", [False, True])
def test_the_same_layer_twice_in_a_sequential_like_pytorch(parameters_only):
    """Sequential(lin, act, lin): each use keeps its own cache and the two gradients add up (float64, 1e-10)."""
    torch = pytest.importorskip("torch")
    lin = mg.nn.Linear(3, 3, dtype="float64")
    seq = mg.nn.Sequential(lin, mg.nn.Tanh(), lin)
    ref = torch.nn.Linear(3, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(lin.weight.data))
        ref.bias.copy_(torch.tensor(lin.bias.data))
    x = np.random.default_rng(0).standard_normal((4, 3))
    dy = np.random.default_rng(1).standard_normal((4, 3))
    y = seq(x)
    dx = seq.backward_parameters(dy) if parameters_only else seq.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.Sequential(ref, torch.nn.Tanh(), ref)(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lin.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lin.bias.grad, ref.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
    if parameters_only:
        assert dx is None
    else:
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        seq.backward(dy)                                   # one backward per forward, as for any layer
