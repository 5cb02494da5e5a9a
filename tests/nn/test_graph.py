"""mg.nn.Graph and the multi-input layers Add/Mul/Concat: fan-out, shared layers, concat,
multi-output, multiple inputs against PyTorch; state-dict names; every error message;
finite differences and the strict backend."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Add, Concat, Conv2d, Flatten, Graph, Layer, Linear, Mul, Sequential
from support.strict_backend import assert_strict, strict_layer, to_strict

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}


def _t(array, grad=False):
    return torch.tensor(np.asarray(array), requires_grad=grad)


def _conv_t(conv, x):
    """The torch twin of a minigrad Conv2d with the same weights (weights as leaf tensors)."""
    w, b = _t(conv.weight.data, True), _t(conv.bias.data, True)
    return F.conv2d(x, w, b, conv.stride, conv.padding), (w, b)


def _check(ours, ref, dtype):
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours, ref.detach().numpy(), **TOL[dtype])


# -- graphs against PyTorch --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_residual_fan_out_matches_torch(dtype):
    """x feeds conv1 and the sum: its gradient is the sum of both paths."""
    g = Graph()
    x = g.input("x")
    h = g.add("conv1", Conv2d(2, 2, 3, padding=1, dtype=dtype), x)
    h = g.add("conv2", Conv2d(2, 2, 3, padding=1, dtype=dtype), h)
    g.output(g.add("sum", Add(), h, x))
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((2, 2, 5, 5)).astype(dtype)
    xt = _t(xa, True)
    h1, (w1, b1) = _conv_t(g["conv1"], xt)
    h2, (w2, b2) = _conv_t(g["conv2"], h1)
    yt = h2 + xt
    y = g(xa)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(_t(dy))
    dx = g.backward(dy)
    _check(y, yt, dtype)
    _check(dx, xt.grad, dtype)
    for ours, ref in [(g["conv1"].weight.grad, w1.grad), (g["conv1"].bias.grad, b1.grad),
                      (g["conv2"].weight.grad, w2.grad), (g["conv2"].bias.grad, b2.grad)]:
        _check(ours, ref, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_shared_layer_accumulates_gradients_of_every_use(dtype):
    """One Conv2d at two nodes: one set of parameters, gradients of both uses summed (as torch)."""
    conv = Conv2d(3, 3, 3, padding=1, dtype=dtype)
    g = Graph()
    x = g.input("x")
    h1 = g.add("conv_a", conv, x)
    h2 = g.add("conv_b", conv, h1)
    g.output(g.add("prod", Mul(), h1, h2))
    assert list(g.state_dict()) == ["conv_a.weight", "conv_a.bias"]
    assert len(g.parameters()) == 2
    rng = np.random.default_rng(1)
    xa = rng.standard_normal((2, 3, 4, 4)).astype(dtype)
    xt = _t(xa, True)
    w, b = _t(conv.weight.data, True), _t(conv.bias.data, True)
    h1t = F.conv2d(xt, w, b, padding=1)
    yt = h1t * F.conv2d(h1t, w, b, padding=1)
    y = g(xa)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(_t(dy))
    dx = g.backward(dy)
    _check(y, yt, dtype)
    _check(dx, xt.grad, dtype)
    _check(conv.weight.grad, w.grad, dtype)
    _check(conv.bias.grad, b.grad, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_concat_branches_match_torch(dtype):
    g = Graph()
    x = g.input("x")
    a = g.add("branch_a", Conv2d(2, 3, 1, dtype=dtype), x)
    b = g.add("branch_b", Conv2d(2, 4, 3, padding=1, dtype=dtype), x)
    c = g.add("cat", Concat(dim=1), a, x, b)
    g.output(g.add("mix", Conv2d(9, 2, 1, dtype=dtype), c))
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((2, 2, 4, 3)).astype(dtype)
    xt = _t(xa, True)
    at, wa = _conv_t(g["branch_a"], xt)
    bt, wb = _conv_t(g["branch_b"], xt)
    yt, wm = _conv_t(g["mix"], torch.cat([at, xt, bt], dim=1))
    y = g(xa)
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(_t(dy))
    dx = g.backward(dy)
    _check(y, yt, dtype)
    _check(dx, xt.grad, dtype)
    for node, ref in [("branch_a", wa), ("branch_b", wb), ("mix", wm)]:
        _check(g[node].weight.grad, ref[0].grad, dtype)
        _check(g[node].bias.grad, ref[1].grad, dtype)


def _two_headed(dtype="float64"):
    g = Graph()
    x = g.input("x")
    h = g.add("trunk", Linear(4, 5, dtype=dtype), x)
    g.output(g.add("head_a", Linear(5, 2, dtype=dtype), h), g.add("head_b", Linear(5, 3, dtype=dtype), h), h)
    return g


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_multi_output_with_an_unused_output(dtype):
    g = _two_headed(dtype)
    rng = np.random.default_rng(3)
    xa = rng.standard_normal((6, 4)).astype(dtype)
    xt = _t(xa, True)
    params = {name: _t(p.data, True) for name, p in g.named_parameters()}
    ht = F.linear(xt, params["trunk.weight"], params["trunk.bias"])
    at = F.linear(ht, params["head_a.weight"], params["head_a.bias"])
    bt = F.linear(ht, params["head_b.weight"], params["head_b.bias"])
    ya, yb, yh = g(xa)
    assert (ya.shape, yb.shape, yh.shape) == ((6, 2), (6, 3), (6, 5))
    da = rng.standard_normal(ya.shape).astype(dtype)
    dh = rng.standard_normal(yh.shape).astype(dtype)
    torch.autograd.backward([at, ht], [_t(da), _t(dh)])  # head_b is unused
    dx = g.backward((da, None, dh))
    _check(ya, at, dtype)
    _check(yb, bt, dtype)
    _check(dx, xt.grad, dtype)
    for name, p in g.named_parameters():
        if name.startswith("head_b"):
            assert p.grad is None                         # not reached by the loss: no gradient, as in torch
        else:
            _check(p.grad, params[name].grad, dtype)


def test_multiple_inputs_and_an_unused_input():
    g = Graph()
    a, b, unused = g.input("a"), g.input("b"), g.input("unused")
    s = g.add("sum", Add(), a, b)
    g.output(g.add("prod", Mul(), s, a))
    rng = np.random.default_rng(4)
    xa, xb, xu = (rng.standard_normal((2, 3)) for _ in range(3))
    y = g(xa, xb, xu)
    np.testing.assert_allclose(y, (xa + xb) * xa, rtol=1e-14)
    dy = rng.standard_normal(y.shape)
    da, db, du = g.backward(dy)
    np.testing.assert_allclose(da, dy * (2 * xa + xb), rtol=1e-12)
    np.testing.assert_allclose(db, dy * xa, rtol=1e-12)
    assert du.shape == xu.shape and du.dtype == xu.dtype and not du.any()


def test_graph_input_can_be_an_output():
    g = Graph()
    x = g.input("x")
    g.output(g.add("double", Add(), x, x), x)
    xa = np.arange(3.0)
    y, same = g(xa)
    assert same is xa
    np.testing.assert_array_equal(g.backward((np.ones(3), np.ones(3))), [3.0, 3.0, 3.0])


def test_nodes_run_in_insertion_order_and_backward_in_reverse():
    calls = []

    class Tag(Layer):
        def forward(self, *xs):
            calls.append(("f", self.name))
            self._cache = len(xs)
            return sum(xs)

        def backward(self, g):
            calls.append(("b", self.name))
            n = self.take_cache()
            return g if n == 1 else (g,) * n

    g = Graph()
    x = g.input("x")
    a = g.add("a", Tag(), x)
    b = g.add("b", Tag(), x)
    g.output(g.add("c", Tag(), a, b))
    g(np.zeros(1))
    g.backward(np.ones(1))
    assert calls == [("f", "a"), ("f", "b"), ("f", "c"), ("b", "c"), ("b", "b"), ("b", "a")]


# -- names, printing, nesting --------------------------------------------------------------------------
def test_state_dict_names_load_and_introspection():
    g = _two_headed()
    assert list(g.state_dict()) == ["trunk.weight", "trunk.bias", "head_a.weight", "head_a.bias",
                                    "head_b.weight", "head_b.bias"]
    other = _two_headed()
    other.load_state_dict(g.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 4))
    for mine, theirs in zip(g(x), other(x)):
        np.testing.assert_array_equal(mine, theirs)
    assert g.input_names == ["x"] and g.output_names == ["head_a", "head_b", "trunk"]
    assert [(name, inputs) for name, _, inputs in g.nodes] == [("trunk", ("x",)), ("head_a", ("trunk",)),
                                                               ("head_b", ("trunk",))]
    assert len(g) == 3 and g.trunk is g["trunk"] and g["trunk"].label == "Linear 'trunk'"
    with pytest.raises(KeyError, match="no node named 'nope'"):
        g["nope"]


def test_repr_lists_nodes_with_their_inputs():
    conv = Conv2d(1, 1, 3, padding=1)
    g = Graph()
    x = g.input("x")
    h = g.add("c1", conv, x)
    h = g.add("c2", conv, h)
    g.output(g.add("sum", Add(), h, x))
    text = repr(g)
    assert text.splitlines()[:2] == ["Graph(", "  inputs: x"]
    assert "(c1): Conv2d(1, 1, kernel_size=(3, 3)" in text and "<- x" in text
    assert "(c2): <shared with 'c1'> <- c1" in text
    assert "(sum): Add() <- c2, x" in text and text.endswith("  outputs: sum\n)")


def test_graph_nested_in_sequential_names_its_nodes():
    g = Graph()
    x = g.input("x")
    g.output(g.add("fc", Linear(3, 3), x))
    model = Sequential(Flatten(), g)
    assert list(model.state_dict()) == ["1.fc.weight", "1.fc.bias"]
    assert g["fc"].label == "Linear '1.fc'"
    with pytest.raises(ValueError, match=r"Linear '1\.fc'.*in_features=3"):
        model(np.zeros((2, 4)))


def test_no_grad_keeps_no_cache():
    g = _two_headed()
    with mg.no_grad():
        g(np.zeros((1, 4)))
    assert all(layer._cache is None for layer in g.modules())


# -- errors ---------------------------------------------------------------------------------------------
def test_build_errors():
    g = Graph()
    x = g.input("x")
    h = g.add("fc", Linear(2, 2), x)
    with pytest.raises(ValueError, match=r"Graph.add\('fc'\): duplicate name 'fc'"):
        g.add("fc", Linear(2, 2), h)
    with pytest.raises(ValueError, match=r"duplicate name 'x'"):
        g.add("x", Linear(2, 2), h)
    with pytest.raises(ValueError, match=r"Graph.input\('fc'\): duplicate name 'fc'"):
        g.input("fc")
    other = Graph()
    foreign = other.input("y")
    with pytest.raises(ValueError, match=r"Graph.add\('z'\): input 1 \('y'\) belongs to another graph"):
        g.add("z", Add(), h, foreign)
    with pytest.raises(TypeError, match=r"input 0 must be a value returned by g.input\(\) or g.add\(\).*ndarray"):
        g.add("z", Linear(2, 2), np.zeros(2))
    with pytest.raises(TypeError, match=r"Graph.add\('z'\): expected a minigrad Layer, got function"):
        g.add("z", lambda v: v, h)
    with pytest.raises(ValueError, match=r"Graph.add\('z'\): a graph cannot contain itself"):
        g.add("z", Sequential(Flatten(), g), h)
    with pytest.raises(ValueError, match=r"Graph.add\('z'\): a node needs at least one input"):
        g.add("z", Linear(2, 2))
    with pytest.raises(ValueError, match=r"invalid layer name 'a\.b'"):
        g.add("a.b", Linear(2, 2), h)
    with pytest.raises(TypeError, match="must be a str"):
        g.input(3)
    with pytest.raises(ValueError, match=r"Graph.output: output 0 \('y'\) belongs to another graph"):
        g.output(foreign)
    with pytest.raises(TypeError, match=r"Graph.output: output 0 must be a value"):
        g.output("fc")
    with pytest.raises(ValueError, match="give at least one value"):
        g.output()
    g.output(h)
    with pytest.raises(ValueError, match=r"outputs are already set \(fc\)"):
        g.output(x)


def test_forward_errors():
    g = Graph()
    a, b = g.input("a"), g.input("b")
    with pytest.raises(RuntimeError, match="no outputs; call g.output"):
        g(np.zeros(2), np.zeros(2))
    g.output(g.add("sum", Add(), a, b))
    with pytest.raises(TypeError, match=r"expected 2 input\(s\) \(a, b\), got 1"):
        g(np.zeros(2))
    with pytest.raises(TypeError, match="input 'b' must be a NumPy or CuPy array, got list"):
        g(np.zeros(2), [0.0, 1.0])
    with pytest.raises(ValueError, match=r"Add 'sum': all inputs must have the same shape; input 0 has shape "
                                         r"\(2, 3\) but input 1 has shape \(3,\)"):
        g(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(TypeError, match=r"Add 'sum': input 0 has dtype float32 but input 1 has dtype float64"):
        g(np.zeros(2, "float32"), np.zeros(2))
    with pytest.raises(RuntimeError, match=r"Graph: backward called before forward"):
        g.backward(np.zeros(2))


def test_concat_shape_error_names_the_node():
    g = Graph()
    a, b = g.input("a"), g.input("b")
    g.output(g.add("cat", Concat(), a, b))
    with pytest.raises(ValueError, match=r"Concat 'cat': inputs must match in every dimension except dim=1; "
                                         r"input 0 has shape \(2, 3, 4\) but input 1 has shape \(2, 3, 5\)"):
        g(np.zeros((2, 3, 4)), np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"Concat 'cat': dim=1 is out of range for 1-D inputs"):
        g(np.zeros(3), np.zeros(3))


def test_error_in_a_shared_layer_names_the_node_that_failed():
    fc = Linear(3, 3)
    g = Graph()
    x = g.input("x")
    h = g.add("first", fc, x)
    h = g.add("flat", Flatten(0), h)
    g.output(g.add("second", fc, h))
    with pytest.raises(ValueError, match=r"Linear 'second': expected input with last dimension in_features=3"):
        g(np.zeros((2, 3), "float32"))
    assert fc.label == "Linear 'first'"  # restored after the failing use


def test_exception_without_a_name_gets_the_node_prefix_and_keeps_its_type():
    class Bad(Layer):
        def forward(self, x):
            self._cache = True
            return x

        def backward(self, grad):
            raise ArithmeticError("went wrong")

    g = Graph()
    g.output(g.add("bad", Bad(), g.input("x")))
    g(np.zeros(1))
    with pytest.raises(ArithmeticError, match=r"^in node 'bad': went wrong$"):
        g.backward(np.zeros(1))


def test_exception_in_forward_gets_the_node_prefix():
    g = Graph()
    g.output(g.add("div", type("Div", (Layer,), {"forward": lambda self, x: 1 / 0})(), g.input("x")))
    with pytest.raises(ZeroDivisionError, match=r"^in node 'div': division by zero$"):
        g(np.zeros(1))


def test_backward_errors():
    g = _two_headed()
    ya, yb, yh = g(np.zeros((2, 4)))
    with pytest.raises(TypeError, match=r"the graph has 3 outputs \(head_a, head_b, trunk\); expected a tuple of "
                                        r"3 gradients \(None for an unused output\), got a tuple of 2"):
        g.backward((ya, yb))
    g(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="got ndarray"):
        g.backward(ya)
    g(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"gradient for output 'head_b' has shape \(2, 2\), expected \(2, 3\)"):
        g.backward((ya, ya, yh))

    class TwoInOneOut(Layer):
        def forward(self, a, b):
            self._cache = True
            return a + b

        def backward(self, grad):
            self.take_cache()
            return grad  # wrong: should be a tuple of two

    g = Graph()
    x = g.input("x")
    g.output(g.add("bad", TwoInOneOut(), x, x))
    g(np.zeros(2))
    with pytest.raises(TypeError, match=r"node 'bad' has 2 inputs, but its backward returned ndarray"):
        g.backward(np.zeros(2))


# -- merge layers on their own ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_merge_layers_match_torch(dtype):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((2, 3, 2)).astype(dtype) for _ in range(3)]
    for layer, ref in [(Add(), lambda ts: ts[0] + ts[1] + ts[2]), (Mul(), lambda ts: ts[0] * ts[1] * ts[2]),
                       (Concat(dim=-1), lambda ts: torch.cat(ts, dim=-1))]:
        ts = [_t(x, True) for x in xs]
        yt = ref(ts)
        y = layer(*xs)
        dy = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(_t(dy))
        grads = layer.backward(dy)
        _check(y, yt, dtype)
        assert len(grads) == 3
        for grad, t in zip(grads, ts):
            _check(grad, t.grad, dtype)


def test_add_returns_independent_gradients():
    add = Add()
    add(np.zeros(2), np.zeros(2))
    g0, g1 = add.backward(np.ones(2))
    g0 += 1
    np.testing.assert_array_equal(g1, [1.0, 1.0])


def test_merge_layers_gradcheck_and_strict():
    rng = np.random.default_rng(6)
    xs = tuple(rng.standard_normal((2, 3)) for _ in range(3))
    for layer in (Add(), Mul(), Concat(dim=0)):
        assert mg.gradcheck(layer, xs)
        strict_xs = [to_strict(x) for x in xs]
        y = layer(*strict_xs)
        assert_strict(y, f"{type(layer).__name__} output")
        for i, grad in enumerate(layer.backward(to_strict(np.ones(y.shape)))):
            assert_strict(grad, f"{type(layer).__name__} gradient {i}")
    with pytest.raises(TypeError, match="Add: expected at least 2 inputs, got 1"):
        Add()(xs[0])


def _residual_graph():
    mg.manual_seed(7)
    conv = Conv2d(2, 2, 3, padding=1)
    g = Graph()
    x = g.input("x")
    h = g.add("conv1", conv, x)
    h = g.add("gate", Mul(), h, x)
    h = g.add("conv2", conv, h)                               # shared with conv1
    h = g.add("sum", Add(), h, x)
    h = g.add("cat", Concat(dim=1), h, x)
    h = g.add("flat", Flatten(), h)
    g.output(g.add("fc", Linear(4 * 3 * 3, 2), h), h)
    return g


def test_gradcheck_of_a_residual_graph_with_a_shared_layer():
    x = np.random.default_rng(8).standard_normal((2, 2, 3, 3))

    class BothOutputs(Layer):  # gradcheck contracts one output: join the two
        def __init__(self, graph):
            super().__init__()
            self.graph = graph

        def forward(self, x):
            y, flat = self.graph(x)
            self._cache = y.shape[1]
            return np.concatenate([y, flat], axis=1)   # (N, 2) and (N, 36) -> (N, 38)

        def backward(self, grad):
            split = self.take_cache()
            return self.graph.backward((grad[:, :split], grad[:, split:]))

    assert mg.gradcheck(BothOutputs(_residual_graph()), x)


def test_strict_backend_run_of_a_graph():
    g = strict_layer(_residual_graph())
    x = to_strict(np.random.default_rng(9).standard_normal((2, 2, 3, 3)).astype("float32"))
    y, flat = g(x)
    assert_strict(y, "output 0")
    assert_strict(flat, "output 1")
    dx = g.backward((to_strict(np.ones(y.shape, "float32")), None))
    assert_strict(dx, "input gradient")
    for name, p in g.named_parameters():
        assert_strict(p.grad, f"gradient of {name}")


def test_graph_runs_on_every_backend(backend, xp):
    """The same residual graph on NumPy and (when available) CuPy gives the same results."""
    reference = _residual_graph().to("numpy")   # built on the active backend, the reference moves back
    moved = _residual_graph().to(backend)
    x = np.random.default_rng(10).standard_normal((2, 2, 3, 3)).astype("float32")
    y_ref, flat_ref = reference(x)
    y, flat = moved(xp.asarray(x))
    dy = np.ones(y_ref.shape, "float32")
    dx_ref = reference.backward((dy, None))
    dx = moved.backward((xp.asarray(dy), None))
    for ours, ref in [(y, y_ref), (flat, flat_ref), (dx, dx_ref)]:
        assert mg.backend.backend_of(ours) == backend
        np.testing.assert_allclose(mg.backend.to_backend(ours, "numpy"), ref, rtol=1e-4, atol=1e-5)
    for (name, p), (_, q) in zip(moved.named_parameters(), reference.named_parameters()):
        np.testing.assert_allclose(mg.backend.to_backend(p.grad, "numpy"), q.grad, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
