"""The added losses vs PyTorch: L1Loss, SmoothL1Loss, HuberLoss, BCELoss, KLDivLoss, MarginRankingLoss,
CosineEmbeddingLoss, MultiMarginLoss, TripletMarginLoss -- value and the gradient of every input in float64
(1e-10) and float32, every reduction, options beyond the sweep (p = 3 and inf, 3-D and broadcast triplets,
integer and zero targets, BCE at exactly 0 and 1), finite differences, the gradient bookkeeping of a loss of
several inputs, both backends, the strict backend, the functional forms and the errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.forward_record import GradientOwnershipError
from support.zoo_checks import assert_close, strict_run

torch = pytest.importorskip("torch")
REDUCTIONS = ["mean", "sum", "none"]


def _x(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _u(*shape, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, shape)


def _sign(*shape, seed=3):
    return np.random.default_rng(seed).choice([-1.0, 1.0], shape)


# name -> (class name, constructor kwargs, inputs (differentiated), targets)
CASES = {
    "l1": ("L1Loss", {}, [_x(4, 3)], [_x(4, 3, seed=1)]),
    "smooth_l1": ("SmoothL1Loss", {"beta": 0.7}, [_x(4, 3)], [_x(4, 3, seed=1)]),
    "smooth_l1_beta0": ("SmoothL1Loss", {"beta": 0.0}, [_x(4, 3)], [_x(4, 3, seed=1)]),
    "huber": ("HuberLoss", {"delta": 0.6}, [_x(2, 3, 4, scale=2)], [_x(2, 3, 4, seed=1)]),
    "bce": ("BCELoss", {}, [_u(5, 3, low=0.01, high=0.99)], [_u(5, 3, seed=1)]),
    "bce_weight": ("BCELoss", {"weight": _u(3, seed=2, low=0.5, high=2)}, [_u(5, 3, low=0.01, high=0.99)],
                   [_u(5, 3, seed=1)]),
    "kl": ("KLDivLoss", {}, [_x(4, 5)], [np.where(_u(4, 5, seed=1) < 0.3, 0.0, _u(4, 5, seed=2))]),
    "kl_batchmean": ("KLDivLoss", {"reduction": "batchmean"}, [_x(4, 5)], [_u(4, 5, seed=2)]),
    "kl_log_target": ("KLDivLoss", {"log_target": True}, [_x(4, 5)], [_x(4, 5, seed=2)]),
    "ranking": ("MarginRankingLoss", {"margin": 0.3}, [_x(9), _x(9, seed=1)], [_sign(9)]),
    "ranking_int_target": ("MarginRankingLoss", {}, [_x(2, 5), _x(2, 5, seed=1)],
                           [np.array([[1, -1, 0, 1, 1], [-1, -1, 1, 0, 1]])]),
    "cosine": ("CosineEmbeddingLoss", {"margin": 0.2}, [_x(6, 4), _x(6, 4, seed=1)], [_sign(6)]),
    "cosine_int_target": ("CosineEmbeddingLoss", {}, [_x(5, 3), _x(5, 3, seed=1)], [np.array([1, -1, 0, 1, -1])]),
    "cosine_unbatched": ("CosineEmbeddingLoss", {"margin": -0.5}, [_x(4), _x(4, seed=1)], [np.array(-1.0)]),
    "multi_margin": ("MultiMarginLoss", {}, [_x(6, 5)], [np.array([0, 4, 2, 2, 1, 3])]),
    "multi_margin_p2_weight": ("MultiMarginLoss", {"p": 2, "margin": 0.8, "weight": _u(5, seed=4, low=0.5, high=2)},
                               [_x(6, 5)], [np.array([0, 4, 2, 2, 1, 3])]),
    "multi_margin_unbatched": ("MultiMarginLoss", {"p": 2}, [_x(5)], [np.array(3)]),
    "triplet": ("TripletMarginLoss", {}, [_x(6, 4), _x(6, 4, seed=1), _x(6, 4, seed=2)], []),
    "triplet_swap_p1": ("TripletMarginLoss", {"swap": True, "p": 1.0, "margin": 2.0},
                        [_x(6, 4), _x(6, 4, seed=1), _x(6, 4, seed=2)], []),
    "triplet_p3_3d": ("TripletMarginLoss", {"p": 3.0, "margin": 1.5}, [_x(2, 3, 4), _x(2, 3, 4, seed=1),
                                                                      _x(2, 3, 4, seed=2)], []),
    "triplet_p_inf": ("TripletMarginLoss", {"p": float("inf"), "swap": True, "margin": 2.0},
                      [_x(5, 4), _x(5, 4, seed=1), _x(5, 4, seed=2)], []),
    "triplet_broadcast": ("TripletMarginLoss", {"margin": 3.0}, [_x(5, 4), _x(1, 4, seed=1), _x(5, 4, seed=2)], []),
    "triplet_unbatched": ("TripletMarginLoss", {"p": 1.5, "eps": 0.0, "margin": 2.0},
                          [_x(4), _x(4, seed=1), _x(4, seed=2)], []),
}


def _cast(arrays, dtype):
    return [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]


def _run_both(name, reduction, dtype):
    cls, kwargs, inputs, targets = CASES[name]
    kwargs = dict(kwargs, reduction=kwargs.get("reduction", reduction))
    inputs, targets = _cast(inputs, dtype), _cast(targets, dtype)
    ours = getattr(mg.nn, cls)(**{k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    ref = getattr(torch.nn, cls)(**{k: torch.from_numpy(v.astype(dtype)) if isinstance(v, np.ndarray) else v
                                    for k, v in kwargs.items()})
    leaves = [torch.tensor(a, requires_grad=True) for a in inputs]
    expected = ref(*leaves, *[torch.from_numpy(t) for t in targets])
    value = ours(*inputs, *targets)
    grad = np.random.default_rng(9).standard_normal(expected.shape).astype(dtype)
    expected.backward(torch.from_numpy(grad))
    grads = ours.backward(grad if grad.ndim else float(grad))
    return value, expected, grads if isinstance(grads, tuple) else (grads,), leaves


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")          # PyTorch's notice about KLDivLoss's mean
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_and_every_input_gradient_match_torch(name, reduction, dtype):
    value, expected, grads, leaves = _run_both(name, reduction, dtype)
    assert isinstance(value, np.ndarray)
    assert_close(value, expected, dtype, "loss")
    assert len(grads) == len(leaves), "one gradient per input (not the target)"
    for index, (ours, leaf) in enumerate(zip(grads, leaves)):
        assert_close(ours, leaf.grad, dtype, f"gradient of input {index}")


def test_bce_at_exactly_0_and_1_matches_torchs_clamps():
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-300, 1 - 1e-16, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.5, 0.2])
    for dtype in ("float64", "float32"):
        xt = torch.tensor(x.astype(dtype), requires_grad=True)
        expected = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(y.astype(dtype)), reduction="none")
        loss = mg.nn.BCELoss(reduction="none")
        value = loss(x.astype(dtype), y.astype(dtype))
        expected.backward(torch.ones_like(expected))
        grad = loss.backward(np.ones(7, dtype))
        assert np.isfinite(value).all() and np.isfinite(grad).all()
        np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-10 if dtype == "float64" else 1e-6)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10 if dtype == "float64" else 1e-6)


def _fd(loss, inputs, targets):
    """Finite differences of every input (the targets are data)."""
    n = len(inputs)

    def forward(*xs):
        return loss(*xs, *targets)

    def backward(dy, *xs):
        grads = loss.backward(dy)
        return grads if isinstance(grads, tuple) else (grads,)
    forward.__name__ = type(loss).__name__
    return mg.gradcheck((forward, backward), tuple(inputs[:n]))


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_finite_differences(name, reduction):
    cls, kwargs, inputs, targets = CASES[name]
    if cls == "SmoothL1Loss" and kwargs["beta"] == 0 or cls == "L1Loss":
        inputs = [inputs[0] + 0.01 * np.sign(inputs[0] - targets[0])]      # not within the step of the kink
    loss = getattr(mg.nn, cls)(**dict(kwargs, reduction=kwargs.get("reduction", reduction)))
    assert _fd(loss, inputs, targets)


def test_backward_without_argument_and_the_gradients_find_their_forwards():
    mg.manual_seed(0)
    left, right = mg.nn.Linear(3, 1, dtype="float64"), mg.nn.Linear(3, 1, dtype="float64")
    a, b, y = _x(5, 3), _x(5, 3, seed=1), _sign(5, 1)
    loss = mg.nn.MarginRankingLoss(margin=0.5)
    value = loss(left(a), right(b), y)
    d_left, d_right = loss.backward()                    # no argument: the gradient of the mean, as the others
    with pytest.raises(GradientOwnershipError, match="belongs to a forward of Linear"):
        left.backward(d_right)                           # each input's gradient names the forward that made it
    left.backward(d_left)
    right.backward(d_right)
    ref_l, ref_r = (torch.nn.Linear(3, 1).double() for _ in range(2))
    for ours, ref in ((left, ref_l), (right, ref_r)):
        ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    expected = torch.nn.MarginRankingLoss(margin=0.5)(ref_l(torch.from_numpy(a)), ref_r(torch.from_numpy(b)),
                                                      torch.from_numpy(y))
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(left.weight.grad, ref_l.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(right.weight.grad, ref_r.weight.grad.numpy(), rtol=1e-10)
    triplet = mg.nn.TripletMarginLoss()
    triplet(*_cast([_x(4, 2), _x(4, 2, seed=1), _x(4, 2, seed=2)], "float32"))
    grads = triplet.backward()
    assert len(grads) == 3 and all(g.dtype == np.float32 and g.shape == (4, 2) for g in grads)
    with pytest.raises(RuntimeError, match="TripletMarginLoss: backward called before forward, or twice"):
        triplet.backward()


@pytest.mark.parametrize("name", ["bce_weight", "kl_log_target", "ranking", "cosine", "multi_margin_p2_weight",
                                  "triplet_swap_p1", "smooth_l1"])
def test_strict_backend(name):
    cls, kwargs, inputs, targets = CASES[name]
    loss = getattr(mg.nn, cls)(**kwargs)
    out, grads = strict_run(loss, inputs + targets, 1.0)
    assert out.shape == ()


@pytest.mark.parametrize("name", sorted(CASES))
def test_runs_on_each_backend_in_float32(name, backend, xp):
    cls, kwargs, inputs, targets = CASES[name]
    kwargs = {k: xp.asarray(v.astype("float32")) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    loss = getattr(mg.nn, cls)(**kwargs)
    value = loss(*[xp.asarray(a) for a in _cast(inputs, "float32") + _cast(targets, "float32")])
    assert mg.backend.backend_of(value) == backend and value.dtype == np.float32 and value.shape == ()
    grads = loss.backward()
    for g, a in zip(grads if isinstance(grads, tuple) else (grads,), inputs):
        assert mg.backend.backend_of(g) == backend and g.dtype == np.float32 and g.shape == a.shape


FORMS = {"l1": "l1_loss", "smooth_l1": "smooth_l1_loss", "huber": "huber_loss", "bce_weight": "binary_cross_entropy",
         "kl_batchmean": "kl_div", "kl_log_target": "kl_div", "ranking": "margin_ranking_loss",
         "cosine": "cosine_embedding_loss", "multi_margin_p2_weight": "multi_margin_loss",
         "triplet_swap_p1": "triplet_margin_loss"}


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("name", sorted(FORMS))
def test_functional_forms_match_torch_and_the_layers(name):
    cls, kwargs, inputs, targets = CASES[name]
    ours = getattr(mg.functional, FORMS[name])(*inputs, *targets, **kwargs)
    np.testing.assert_array_equal(ours, getattr(mg.nn, cls)(**kwargs)(*inputs, *targets))
    torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ref = getattr(torch.nn.functional, FORMS[name])(*[torch.from_numpy(a) for a in inputs + targets], **torch_kwargs)
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-12)


def test_weights_are_buffers_in_the_state_dict_like_torch():
    w = np.array([0.5, 2.0, 1.0])
    for cls in ("BCELoss", "MultiMarginLoss"):
        ours, ref = getattr(mg.nn, cls)(weight=w), getattr(torch.nn, cls)(weight=torch.from_numpy(w))
        assert list(ours.state_dict()) == list(ref.state_dict()) == ["weight"]
        assert list(getattr(mg.nn, cls)().state_dict()) == list(getattr(torch.nn, cls)().state_dict()) == []


LEGACY = ["L1Loss", "SmoothL1Loss", "BCELoss", "KLDivLoss", "MarginRankingLoss", "CosineEmbeddingLoss",
          "MultiMarginLoss", "TripletMarginLoss"]


@pytest.mark.parametrize("name", LEGACY)
def test_deprecated_size_average_and_reduce_are_refused_naming_the_reduction(name):
    for option in ("size_average", "reduce"):
        for value in (True, False):
            with pytest.raises(NotImplementedError, match=f"{name}: {option}=.*use reduction="):
                getattr(mg.nn, name)(**{option: value})


@pytest.mark.parametrize("make,match", [
    (lambda: mg.nn.L1Loss("sum"), r"L1Loss: size_average .* got 'sum'.*L1Loss\(reduction='sum'\)"),
    (lambda: mg.nn.CosineEmbeddingLoss(0.5, "none"), r"takes None or a bool.*reduction='none'"),
    (lambda: mg.nn.SmoothL1Loss(beta=-0.1), r"SmoothL1Loss: beta must be at least 0.0, got -0.1"),
    (lambda: mg.nn.HuberLoss(delta=0.0), r"HuberLoss: delta must be greater than 0.0, got 0.0"),
    (lambda: mg.nn.MultiMarginLoss(p=3), r"MultiMarginLoss: only p == 1 and p == 2 are supported, got p=3"),
    (lambda: mg.nn.MultiMarginLoss(weight=np.ones((2, 2))), r"MultiMarginLoss: weight must be one-dimensional"),
    (lambda: mg.nn.TripletMarginLoss(margin=0.0), r"TripletMarginLoss: margin must be greater than 0.0"),
    (lambda: mg.nn.TripletMarginLoss(p=0), r"TripletMarginLoss: p \(the norm degree\) must be a positive number"),
    (lambda: mg.nn.TripletMarginLoss(swap=1), r"TripletMarginLoss: swap must be True or False"),
    (lambda: mg.nn.KLDivLoss(reduction="batch"), r"KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or"),
    (lambda: mg.nn.KLDivLoss(log_target="no"), r"KLDivLoss: log_target must be True or False"),
    (lambda: mg.nn.MarginRankingLoss(margin="1"), r"MarginRankingLoss: margin must be a real number"),
    (lambda: mg.nn.BCELoss(weight=[1.0]), r"BCELoss: expected weight to be a NumPy or CuPy array"),
], ids=["positional_reduction", "positional_after_margin", "beta", "delta", "p", "weight_2d", "triplet_margin",
        "norm_degree", "swap", "kl_reduction", "log_target", "margin_type", "weight_list"])
def test_bad_options_are_refused_clearly(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


@pytest.mark.parametrize("call,error,match", [
    (lambda: mg.nn.BCELoss()(np.array([0.5, 1.5]), np.array([0.0, 1.0])), ValueError,
     r"BCELoss: all elements of input should be between 0 and 1 \(probabilities\), got 1.5; for logits use"),
    (lambda: mg.nn.BCELoss()(np.array([np.nan]), np.array([0.0])), ValueError, r"between 0 and 1.*got nan"),
    (lambda: mg.nn.L1Loss()(_x(3, 2), _x(2, 3)), ValueError, r"L1Loss: expected target of the input's shape"),
    (lambda: mg.nn.HuberLoss()(_x(3), _x(3).astype("float32")), TypeError, r"HuberLoss: input has dtype float64"),
    (lambda: mg.nn.KLDivLoss()(_x(3).astype("int64"), _x(3)), TypeError, r"KLDivLoss: expected a floating-point"),
    (lambda: mg.nn.MultiMarginLoss()(_x(2, 3), np.array([0, 3])), ValueError,
     r"MultiMarginLoss: target out of range: class indices must be in \[0, 3\), got 3"),
    (lambda: mg.nn.MultiMarginLoss()(_x(2, 3), np.array([0.0, 1.0])), TypeError, r"MultiMarginLoss: expected target to "
                                                                                  "hold class indices"),
    (lambda: mg.nn.MultiMarginLoss()(_x(2, 3), np.array([0, 1, 2])), ValueError, r"inconsistent target size"),
    (lambda: mg.nn.MultiMarginLoss(weight=np.ones(4))(_x(2, 3), np.array([0, 1])), ValueError,
     r"weight must be one-dimensional with one entry per class \(3\)"),
    (lambda: mg.nn.MultiMarginLoss()(_x(2, 0), np.array([0, 1])), ValueError, r"non-empty vector \(C,\) or matrix"),
    (lambda: mg.nn.MarginRankingLoss()(_x(3), _x(4), _sign(3)), ValueError,
     r"MarginRankingLoss: input1 and input2 must have the same shape"),
    (lambda: mg.nn.MarginRankingLoss()(_x(3), _x(3), _sign(4)), ValueError, r"expected target of shape \(3,\)"),
    (lambda: mg.nn.MarginRankingLoss()(_x(3), _x(3), _sign(3).astype("float32")), TypeError,
     r"MarginRankingLoss: input1 has dtype float64 but target has dtype float32"),
    (lambda: mg.nn.CosineEmbeddingLoss()(_x(3, 2), _x(3, 2), _sign(3, 1)), ValueError,
     r"CosineEmbeddingLoss: expected a 0-D or 1-D target"),
    (lambda: mg.nn.CosineEmbeddingLoss()(_x(3, 2), _x(3, 4), _sign(3)), ValueError,
     r"a 1-D target of shape \(3,\) expects two 2-D inputs of one shape"),
    (lambda: mg.nn.TripletMarginLoss()(_x(3, 2), _x(2), _x(3, 2)), ValueError,
     r"TripletMarginLoss: anchor, positive and negative must have the same number of dimensions"),
    (lambda: mg.nn.TripletMarginLoss()(_x(3, 2), _x(2, 2), _x(3, 2)), ValueError, r"do not broadcast together"),
], ids=["bce_range", "bce_nan", "shape", "dtype", "integer_input", "mm_range", "mm_float_target", "mm_target_size",
        "mm_weight", "mm_empty_classes", "ranking_shapes", "ranking_target", "ranking_target_dtype",
        "cosine_target_rank", "cosine_shapes", "triplet_rank", "triplet_broadcast"])
def test_bad_inputs_are_refused_naming_the_loss(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_upstream_gradient_is_checked():
    loss = mg.nn.TripletMarginLoss(reduction="none")
    loss(_x(3, 2), _x(3, 2, seed=1), _x(3, 2, seed=2))
    with pytest.raises(ValueError, match=r"TripletMarginLoss: expected grad of shape \(3,\)"):
        loss.backward(np.ones(2))
    loss = mg.nn.CosineEmbeddingLoss()
    loss(_x(3, 2), _x(3, 2, seed=1), _sign(3))
    with pytest.raises(TypeError, match="CosineEmbeddingLoss: grad must be a number or an array"):
        loss.backward("1")


def test_cosine_of_a_zero_vector_uses_pytorchs_float_epsilon():
    """PyTorch adds its float EPSILON = 1e-12 (9.99999996e-13 as a double) to the squared norms: with a zero row
    the gradient is x2 / sqrt(EPSILON |x2|^2), which shows whether the constant is the same to the last bit."""
    x1, x2 = np.zeros((2, 3)), np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    x1[1] = [1.0, 2.0, 3.0]
    y = np.array([1.0, 1.0])
    a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    torch.nn.functional.cosine_embedding_loss(a, b, torch.from_numpy(y), reduction="sum").backward()
    loss = mg.nn.CosineEmbeddingLoss(reduction="sum")
    assert loss(x1, x2, y) == 2.0
    g1, g2 = loss.backward()
    np.testing.assert_allclose(g1, a.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(g2, b.grad.numpy(), rtol=1e-14, atol=1e-300)
