"""ReLU then MaxPool2d runs pool first in Sequential and Graph (nn/fusion.py): the same output and gradients
bit for bit as the layers run one by one, on every CPU path; and the swap is made only where nobody can
tell (hooks, summary, trace, anomaly mode, subclasses, shared layers, return_indices, bad input)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels import compiled
from minigrad.nn import Graph, MaxPool2d, ReLU, Sequential
from minigrad.nn.activation import MaskApplied
from minigrad.nn.pooling import ReluAfterPool

GEOMETRIES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
              dict(kernel_size=3, stride=1, padding=1, ceil_mode=True), dict(kernel_size=2, dilation=2),
              dict(kernel_size=(2, 3), stride=(1, 2))]
PATHS = ["numpy", "reference"] + (["compiled"] if compiled.available() else [])


@pytest.fixture(params=PATHS)
def path(request):
    before = mg.get_conv_algorithm()
    mg.set_conv_algorithm(request.param)
    yield request.param
    mg.set_conv_algorithm(before)


def _hostile(shape, dtype, seed):
    """Normal values with -0.0, NaN, +-inf and exact ties planted."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, :3, :3] = -0.0
    x[0, 1, 2, 2] = np.nan
    x[1, 0, :4, :4] = -np.inf
    x[1, 1, 1, 1] = np.inf
    x[1, 2] = np.round(x[1, 2])                  # ties between equal integers, some of them 0
    return x


def _one_by_one(layers, x, dy):
    h = x
    for layer in layers:
        h = layer(h)
    g = dy
    for layer in reversed(layers):
        g = layer.backward(g)
    return h, g


def _bits(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_sequential_pool_first_is_bit_identical(path, dtype, geometry):
    x = _hostile((2, 3, 11, 12), dtype, 0)
    model = Sequential(ReLU(), MaxPool2d(**geometry))
    out = model(x)
    assert isinstance(model[0]._cache[0], MaskApplied)     # the pool ran first and keeps the ReLU's mask
    assert isinstance(model[1]._cache, ReluAfterPool) and model[1]._cache.mask.shape == out.shape
    dy = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dy[0, 0, 0, 0] = np.inf                               # routed through a masked window: must stay 0
    dx = model.backward(dy)
    ref_out, ref_dx = _one_by_one([ReLU(), MaxPool2d(**geometry)], x, dy)
    assert _bits(out) == _bits(ref_out)
    assert _bits(dx) == _bits(ref_dx)
    assert model[0]._cache is None and model[1]._cache is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_graph_pool_first_is_bit_identical_and_backward_parameters(path, dtype):
    def build():
        mg.manual_seed(0)
        g = Graph()
        x = g.input("x")
        h = g.add("conv", mg.nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), x)
        h = g.add("pool", MaxPool2d(2), g.add("relu", ReLU(), h))
        side = g.add("pool2", MaxPool2d(2), g.add("relu2", ReLU(), x))     # straight from the graph input
        g.output(g.add("sum", mg.nn.Add(), h, g.add("proj", mg.nn.Conv2d(3, 4, 1, dtype=dtype), side)))
        return g
    x = _hostile((2, 3, 8, 8), dtype, 2)
    x[:, :, :, :] = np.nan_to_num(x, nan=0.5, posinf=3.0, neginf=-3.0)   # finite: the conv mixes planes
    dy = np.random.default_rng(3).standard_normal((2, 4, 4, 4)).astype(dtype)
    fused = build()
    out = fused(x)
    assert all(isinstance(fused[name]._cache[0], MaskApplied) for name in ("relu", "relu2"))   # pools ran first
    dx = fused.backward(dy)
    grads = [p.grad.copy() for p in fused.parameters()]

    plain = build()
    nodes = plain._nodes
    values = {"x": x}
    for node in nodes:
        values[node.name] = node.layer(*[values[v.name] for v in node.inputs])
    assert _bits(values["sum"]) == _bits(out)
    g_sum = nodes[-1].layer.backward(dy)
    g_proj = plain["proj"].backward(g_sum[1])
    g_x_side = plain["relu2"].backward(plain["pool2"].backward(g_proj))
    g_x = plain["conv"].backward(plain["relu"].backward(plain["pool"].backward(g_sum[0])))
    assert _bits(dx) == _bits(g_x + g_x_side) or _bits(dx) == _bits(g_x_side + g_x)
    assert all(_bits(a) == _bits(p.grad) for a, p in zip(grads, plain.parameters()))

    again = build()
    again(x)
    again.backward_parameters(dy)
    assert all(_bits(a) == _bits(p.grad) for a, p in zip(grads, again.parameters()))


def test_lenet_gradients_match_pytorch_in_float64():
    torch = pytest.importorskip("torch")
    from minigrad.bench.cases import torch_lenet5
    mg.manual_seed(0)
    model = mg.models.lenet5(dtype="float64")
    reference = torch_lenet5(torch).double()
    with torch.no_grad():
        for theirs, ours in zip(reference.parameters(), model.parameters()):
            theirs.copy_(torch.from_numpy(ours.data))
    x = np.random.default_rng(4).standard_normal((5, 1, 28, 28))
    target = np.random.default_rng(5).integers(0, 10, 5)
    loss = mg.nn.CrossEntropyLoss()
    loss(model(x), target)
    model.backward(loss.backward())
    assert model[1]._cache is None                        # consumed
    torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(target)).backward()
    for theirs, ours in zip(reference.parameters(), model.parameters()):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def _relu_ran_on(model, x):
    """The shape the ReLU ran on in a training forward (pooled: the pair was fused)."""
    model(x)
    saved = model[0]._cache[0]
    shape = model[1]._cache.mask.shape if isinstance(saved, MaskApplied) else saved.shape
    model.clear_cache()
    return shape


X = np.ones((2, 3, 8, 8), np.float32)


def test_the_swap_is_made_only_where_nobody_can_tell():
    assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2)), X) == (2, 3, 4, 4)

    class MyReLU(ReLU):
        pass

    assert _relu_ran_on(Sequential(MyReLU(), MaxPool2d(2)), X) == X.shape
    assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2, return_indices=True)), X) == X.shape
    hooked = Sequential(ReLU(), MaxPool2d(2))
    seen = []
    handle = hooked[0].register_forward_hook(lambda layer, args, out: seen.append(out.shape))
    assert _relu_ran_on(hooked, X) == X.shape and seen == [X.shape]
    handle.remove()
    assert _relu_ran_on(hooked, X) == (2, 3, 4, 4)
    relu = ReLU()
    shared = Sequential(relu, MaxPool2d(2), relu)
    shared(X)
    assert shared._cache[0][0][1][0].shape == X.shape    # a shared ReLU is never fused: its first use's mask
    shared.clear_cache()
    with mg.trace(file=open("/dev/null", "w")):
        assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2)), X) == X.shape
    with mg.detect_anomaly():
        assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2)), X) == X.shape


def test_summary_and_errors_read_as_written():
    rows = mg.models.lenet5().summary((1, 1, 28, 28), verbose=False).rows
    assert [row[3] for row in rows[:3]] == [(1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14)]  # as written
    with pytest.raises(TypeError, match=r"ReLU '0'"):
        Sequential(ReLU(), MaxPool2d(2))(np.ones((2, 3, 8, 8), np.int32))
    with pytest.raises(ValueError, match=r"MaxPool2d '1'"):
        Sequential(ReLU(), MaxPool2d(2))(np.ones((8,), np.float32))


def test_second_forward_before_backward_keeps_each_forwards_gradient():
    model = Sequential(mg.nn.Conv2d(1, 2, 3, padding=1, dtype="float64"), ReLU(), MaxPool2d(2))
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((2, 1, 6, 6))
    dy = rng.standard_normal((2, 2, 3, 3))
    out_a = model(a)
    model.backward(dy)
    expected = model[0].weight.grad.copy()
    model.zero_grad()
    out_a = model(a)
    with mg.no_grad():
        model(b)                                          # leaves the caches alone
    model.backward(dy)
    assert _bits(model[0].weight.grad) == _bits(expected)
    del out_a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stepping_through_the_layers_by_hand_after_a_fused_forward(path, dtype):
    x = _hostile((2, 3, 10, 10), dtype, 7)
    layers = [ReLU(), MaxPool2d(3, 2, 1)]
    model = Sequential(*layers)
    out = model(x)
    dy = np.random.default_rng(8).standard_normal(out.shape).astype(dtype)
    g = dy
    for layer in reversed(layers):                        # the user's own backward loop
        g = layer.backward(g)
    ref_out, ref_dx = _one_by_one([ReLU(), MaxPool2d(3, 2, 1)], x, dy)
    assert _bits(out) == _bits(ref_out) and _bits(g) == _bits(ref_dx)


def test_a_fused_relus_backward_checks_its_gradient():
    model = Sequential(ReLU(), MaxPool2d(2))
    model(X)
    model[1].backward(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"ReLU '0': expected grad_out of shape \(2, 3, 8, 8\)"):
        model[0].backward(np.ones((2, 3, 4, 4), np.float32))
    model(X)
    with pytest.raises(TypeError, match=r"ReLU '0': grad_out has dtype float64"):
        model[0].backward(np.ones((2, 3, 8, 8)))
    model(X)
    with pytest.raises(ValueError, match=r"MaxPool2d '1'.*shape"):
        model[1].backward(np.ones((2, 3, 8, 8), np.float32))


def test_windows_that_can_lie_in_the_padding_alone_run_as_written():
    x = -np.ones((3, 2, 2), np.float32)                    # every window of padding 1, dilation 3 sees one number
    fused_geometry = Sequential(ReLU(), MaxPool2d(2, padding=1, dilation=3))
    with mg.no_grad():
        out = fused_geometry(x)
        plain = MaxPool2d(2, padding=1, dilation=3)(ReLU()(x))
    assert _bits(out) == _bits(plain) and np.isneginf(out).any()    # windows in the padding: -inf, as PyTorch
    assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2, padding=1, dilation=3)), X) == X.shape
    assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(3, padding=1)), X) == (2, 3, 3, 3)
    assert _relu_ran_on(Sequential(ReLU(), MaxPool2d(2, dilation=2)), X) == (2, 3, 3, 3)


def test_float16_runs_as_written_and_keeps_the_sign_of_zero():
    x = np.array([[[[-1.0, -0.0]]]], np.float16)            # NumPy's float16 maximum(-0, 0) is -0
    model = Sequential(ReLU(), MaxPool2d((1, 2)))
    out = model(x)
    assert isinstance(model[0]._cache[0], np.ndarray)       # its own mask: not fused
    assert _bits(out) == _bits(MaxPool2d((1, 2))(ReLU()(x)))
    model.clear_cache()


def test_the_gradient_between_a_fused_pair_is_already_masked():
    """Documented: stepping by hand gives the same input gradient; the value between the two layers differs."""
    x = -np.ones((1, 1, 2, 2), np.float32)                  # one window, maximum <= 0
    model = Sequential(ReLU(), MaxPool2d(2))
    model(x)
    between = model[1].backward(np.ones((1, 1, 1, 1), np.float32))
    assert not between.any()                                # masked: the ReLU let nothing through
    assert not model[0].backward(between).any()
    relu, pool = ReLU(), MaxPool2d(2)
    pool(relu(x))
    plain_between = pool.backward(np.ones((1, 1, 1, 1), np.float32))
    assert plain_between[0, 0, 0, 0] == 1 and not relu.backward(plain_between).any()
