"""Embedding and F.embedding vs PyTorch: lookups of 0-D/1-D/2-D/3-D and empty index arrays (int64 and int32),
repeated indices, padding_idx (also negative), scale_grad_by_freq; the weight gradient in float64 (1e-10) and
float32, accumulated over two backwards; finite differences; initialisation; from_pretrained and freezing;
Embedding as the first layer of a Sequential and a Graph (no input gradient); both backends, the strict backend
and the errors, each naming the layer."""
import copy

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Embedding
from support.strict_backend import assert_strict, strict_layer, to_strict
from support.zoo_checks import assert_close

torch = pytest.importorskip("torch")

V, D = 10, 4
SHAPES = [(), (7,), (3, 5), (2, 3, 4), (0,), (2, 0, 3)]
OPTIONS = [{}, {"padding_idx": 0}, {"padding_idx": 3}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
           {"padding_idx": 2, "scale_grad_by_freq": True}]


def _indices(shape, seed=0, dtype="int64"):
    idx = np.random.default_rng(seed).integers(0, V, shape).astype(dtype)
    if idx.size > 3:
        idx.reshape(-1)[:3] = [2, 2, 0]                 # repeated rows, and the padding rows 0 and 2 are read
    return idx


def _pair(dtype="float64", **kwargs):
    ref = torch.nn.Embedding(V, D, **kwargs).to(getattr(torch, dtype))
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(np.random.default_rng(5).standard_normal((V, D))))
    ours = Embedding(V, D, dtype=dtype, **kwargs)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    return ours, ref


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs", OPTIONS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_embedding_matches_torch(shape, kwargs, dtype):
    ours, ref = _pair(dtype, **kwargs)
    idx = _indices(shape)
    expected = ref(torch.from_numpy(idx))
    y = ours(idx)
    assert_close(y, expected, dtype, "output")
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    expected.backward(torch.from_numpy(dy))
    assert ours.backward(dy) is None                     # the indices get no gradient
    assert_close(ours.weight.grad, ref.weight.grad, dtype, "weight gradient")


def test_int32_indices_and_noncontiguous_layouts_match_torch():
    ours, ref = _pair(padding_idx=1, scale_grad_by_freq=True)
    wide = np.random.default_rng(2).integers(0, V, (4, 12)).astype("int32")
    for idx in (wide[:, ::2], wide[::-1, ::-3], wide.T):
        ours.zero_grad(), ref.zero_grad()
        expected = ref(torch.from_numpy(np.ascontiguousarray(idx)).long())
        y = ours(idx)
        np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=0)
        dy = np.random.default_rng(3).standard_normal(y.shape)
        expected.backward(torch.from_numpy(dy))
        ours.backward(dy)
        np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_weight_gradient_sums_repeated_rows_exactly_and_skips_the_padding_row():
    layer = Embedding(5, 3, padding_idx=4, dtype="float64")
    idx = np.array([[1, 1, 4], [1, 0, 4]])
    layer(idx)
    dy = np.arange(18, dtype="float64").reshape(2, 3, 3)
    layer.backward(dy)
    expected = np.zeros((5, 3))
    expected[1] = dy[0, 0] + dy[0, 1] + dy[1, 0]
    expected[0] = dy[1, 1]
    np.testing.assert_array_equal(layer.weight.grad, expected)
    scaled = Embedding(5, 3, scale_grad_by_freq=True, dtype="float64")
    scaled(idx)
    scaled.backward(dy)
    np.testing.assert_allclose(scaled.weight.grad[1], expected[1] / 3, rtol=1e-15)
    np.testing.assert_allclose(scaled.weight.grad[4], (dy[0, 2] + dy[1, 2]) / 2, rtol=1e-15)


def test_gradients_accumulate_over_two_backwards_like_torch():
    ours, ref = _pair(padding_idx=0)
    for seed in (0, 1):
        idx = _indices((3, 4), seed)
        dy = np.random.default_rng(seed + 10).standard_normal((3, 4, D))
        ref(torch.from_numpy(idx)).backward(torch.from_numpy(dy))
        ours(idx)
        ours.backward(dy)
    np.testing.assert_allclose(ours.weight.grad, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_finite_differences_of_the_weight():
    """The true gradient (scale_grad_by_freq and a padding row that is read are, by design, not it)."""
    for kwargs in ({}, {"padding_idx": 3}):
        layer = Embedding(6, 3, dtype="float64", **kwargs)
        assert mg.gradcheck(layer, np.array([[0, 2, 2, 5], [5, 1, 2, 0]]))


def test_initialisation_is_standard_normal_with_the_padding_row_zeroed_and_seeded():
    mg.manual_seed(3)
    layer = Embedding(2000, 50, padding_idx=7)
    w = layer.weight.data
    assert w.dtype == np.float32 and w.shape == (2000, 50) and list(layer.state_dict()) == ["weight"]
    assert np.all(w[7] == 0)
    rest = np.delete(w, 7, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1.0) < 0.01
    mg.manual_seed(3)
    np.testing.assert_array_equal(Embedding(2000, 50, padding_idx=7).weight.data, w)
    assert Embedding(3, 2, padding_idx=-1).padding_idx == 2        # PyTorch's normalisation of a negative index
    assert Embedding(3, 2, device="cpu", dtype="float64").weight.dtype == np.float64


def test_from_pretrained_shares_the_array_freezes_by_default_and_keeps_the_padding_row():
    table = np.random.default_rng(0).standard_normal((6, 3))
    frozen = Embedding.from_pretrained(table, padding_idx=1)
    ref = torch.nn.Embedding.from_pretrained(torch.from_numpy(table.copy()), padding_idx=1)
    assert frozen.weight.data is table and not frozen.weight.requires_grad and not ref.weight.requires_grad
    assert frozen.padding_idx == 1 and np.any(table[1] != 0)                 # not zeroed, as PyTorch's
    idx = np.array([[1, 5, 0]])
    np.testing.assert_array_equal(frozen(idx), ref(torch.from_numpy(idx)).detach().numpy())
    frozen.backward(np.ones((1, 3, 3)))
    assert frozen.weight.grad is None
    trainable = Embedding.from_pretrained(table.copy(), freeze=False, scale_grad_by_freq=True)
    assert trainable.weight.requires_grad
    trainable(idx)
    trainable.backward(np.ones((1, 3, 3)))
    assert trainable.weight.grad[5].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"from_pretrained: embeddings is expected to be a 2-D array"):
        Embedding.from_pretrained(np.ones(4))


def _torch_text_model():
    return torch.nn.Sequential(torch.nn.Embedding(V, D, padding_idx=0), torch.nn.Flatten(),
                               torch.nn.Linear(3 * D, 2)).double()


def test_first_layer_of_a_sequential_trains_like_torch():
    ref = _torch_text_model()
    model = mg.nn.Sequential(Embedding(V, D, padding_idx=0), mg.nn.Flatten(), mg.nn.Linear(3 * D, 2))
    model.to(dtype="float64").load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    idx, target = _indices((5, 3)), np.array([0, 1, 1, 0, 1])
    loss_ref = torch.nn.functional.cross_entropy(ref(torch.from_numpy(idx)), torch.from_numpy(target))
    loss_ref.backward()
    criterion = mg.nn.CrossEntropyLoss()
    loss = criterion(model(idx), target)
    assert model.backward(criterion.backward()) is None   # backward stops at the indices
    np.testing.assert_allclose(loss, loss_ref.item(), rtol=1e-12)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad, dict(ref.named_parameters())[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-14)
    model.zero_grad()
    criterion(model(idx), target)
    model.backward_parameters(criterion.backward())      # what mg.train.fit runs: the same gradients
    np.testing.assert_allclose(model[0].weight.grad, ref[0].weight.grad.numpy(), rtol=1e-10, atol=1e-14)
    model[0].requires_grad_(False)                        # frozen: backward_parameters starts at the Linear
    model.zero_grad()
    criterion(model(idx), target)
    model.backward_parameters(criterion.backward())
    assert model[0].weight.grad is None and model[2].weight.grad is not None


def test_in_a_graph_with_a_shared_table():
    g = mg.nn.Graph()
    a, b = g.input("a"), g.input("b")
    table = Embedding(V, D, dtype="float64")
    s = g.add("sum", mg.nn.Add(), g.add("left", table, a), g.add("right", table, b))
    g.output(s)
    ia, ib = _indices((2, 3), 0), _indices((2, 3), 1)
    y = g(ia, ib)
    np.testing.assert_array_equal(y, table.weight.data[ia] + table.weight.data[ib])
    g.backward(np.ones_like(y))
    counts = np.bincount(np.concatenate([ia.ravel(), ib.ravel()]), minlength=V)
    np.testing.assert_array_equal(table.weight.grad, np.repeat(counts[:, None], D, axis=1).astype(float))


def test_runs_on_each_backend(backend, xp):
    layer = Embedding(V, D, padding_idx=0)
    idx = xp.asarray(_indices((3, 4)))
    y = layer(idx)
    assert mg.backend.backend_of(y) == backend and y.dtype == np.float32 and y.shape == (3, 4, D)
    assert layer.backward(xp.ones_like(y)) is None
    grad = mg.backend.to_backend(layer.weight.grad, "numpy")
    host = _indices((3, 4))
    expected = np.bincount(host.ravel(), minlength=V).astype("float32")
    expected[0] = 0
    np.testing.assert_array_equal(grad, np.repeat(expected[:, None], D, axis=1))
    empty = layer(xp.asarray(np.zeros((0, 2), "int64")))
    assert empty.shape == (0, 2, D)
    layer.backward(xp.ones_like(empty))
    with pytest.raises(IndexError, match=r"Embedding: index out of range.*\[0, 10\).*got 10"):
        layer(xp.asarray(np.array([1, 10])))


def test_strict_backend_stays_strict():
    layer = strict_layer(copy.deepcopy(Embedding(V, D, padding_idx=1, scale_grad_by_freq=True)))
    y = layer(to_strict(_indices((3, 4))))
    assert_strict(y, "output")
    assert layer.backward(to_strict(np.ones((3, 4, D), "float32"))) is None
    assert_strict(layer.weight.grad, "weight gradient")


def test_functional_embedding_matches_torch_and_the_layer():
    layer = Embedding(V, D, dtype="float64")
    idx = _indices((2, 5))
    y = mg.functional.embedding(idx, layer.weight.data, padding_idx=3)
    np.testing.assert_array_equal(y, layer(idx))
    np.testing.assert_array_equal(mg.functional.embedding(idx, layer.weight), y)      # a Parameter too
    ref = torch.nn.functional.embedding(torch.from_numpy(idx), torch.from_numpy(layer.weight.data), padding_idx=3)
    np.testing.assert_array_equal(y, ref.numpy())
    with pytest.raises(NotImplementedError, match="embedding: max_norm="):
        mg.functional.embedding(idx, layer.weight.data, max_norm=1.0)


def test_errors_name_the_layer():
    layer = Embedding(V, D)
    layer.name = "tokens"
    with pytest.raises(TypeError, match=r"Embedding 'tokens': expected integer indices.*got dtype float32"):
        layer(np.zeros((2, 3), "float32"))
    with pytest.raises(IndexError, match=r"Embedding 'tokens': index out of range.*got -1"):
        layer(np.array([[0, -1]]))
    with pytest.raises(TypeError, match="Embedding 'tokens': expected input to be a NumPy or CuPy array"):
        layer([1, 2])
    layer(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"Embedding 'tokens': expected grad_out of shape \(1, 2, 4\), got \(1, 2\)"):
        layer.backward(np.ones((1, 2), "float32"))
    layer(np.array([[1, 2]]))
    with pytest.raises(TypeError, match="Embedding 'tokens': grad_out has dtype float64 but weight has dtype float32"):
        layer.backward(np.ones((1, 2, 4)))
    with pytest.raises(RuntimeError, match="Embedding 'tokens': backward called before forward"):
        layer.backward(np.ones((1, 2, 4), "float32"))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"max_norm": 1.0}, NotImplementedError, r"Embedding: max_norm=1.0 .* not supported"),
    ({"sparse": True}, NotImplementedError, r"Embedding: sparse=True .* not supported"),
    ({"padding_idx": 10}, ValueError, r"Embedding: padding_idx must be within num_embeddings: in \[-10, 10\)"),
    ({"padding_idx": -11}, ValueError, r"padding_idx must be within num_embeddings"),
    ({"padding_idx": 1.5}, TypeError, r"padding_idx must be None or an int"),
    ({"scale_grad_by_freq": "yes"}, TypeError, r"scale_grad_by_freq must be True or False"),
    ({"_weight": np.ones((3, 4))}, ValueError, r"the given weight has shape \(3, 4\), which does not match"),
    ({"_weight": np.ones((10, 4), "int64")}, TypeError, r"Embedding: expected a floating-point _weight"),
], ids=["max_norm", "sparse", "padding_high", "padding_low", "padding_float", "scale_flag", "weight_shape",
        "weight_dtype"])
def test_options_refused_clearly(kwargs, error, match):
    with pytest.raises(error, match=match):
        Embedding(V, D, **kwargs)


def test_sizes_must_be_positive_ints():
    for args in ((0, 3), (3, 0), (2.5, 3), (True, 3)):
        with pytest.raises(ValueError, match="Embedding: .* must be a positive int"):
            Embedding(*args)


def test_the_memory_guard_names_the_layer_before_allocating(monkeypatch):
    layer = Embedding(1000, 64)
    monkeypatch.setenv("MINIGRAD_MAX_BYTES", "100K")
    with pytest.raises(MemoryError, match=r"Embedding: output of shape \(10, 100, 64\) needs 256000 bytes"):
        layer(np.zeros((10, 100), "int64"))
    y = layer(np.zeros((2, 3), "int64"))
    with pytest.raises(MemoryError, match=r"Embedding: weight gradient and its scatter positions .* needs"):
        layer.backward(np.ones_like(y))
    with pytest.raises(MemoryError, match=r"Embedding\(100000, 64\): weight of shape \(100000, 64\) needs"):
        Embedding(100000, 64)
