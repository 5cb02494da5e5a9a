"""Losses vs PyTorch: CrossEntropyLoss (class indices and probabilities; weight, ignore_index,
label_smoothing, every reduction, (N, C), (N, C, d...) and unbatched), NLLLoss, MSELoss,
BCEWithLogitsLoss (weight, pos_weight, stability); values and gradients in float64 and float32,
finite differences, the strict backend, target validation and error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run

torch = pytest.importorskip("torch")

SHAPES = [(6, 4), (3, 4, 5), (2, 4, 3, 2), (4,)]  # logits; classes C = 4 on dim 1 (dim 0 if unbatched)
REDUCTIONS = ["mean", "sum", "none"]


def _logits_and_targets(shape, dtype, seed=0, ignore_index=-100, with_ignored=True):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng.integers(0, classes, target_shape).astype("int64")
    if with_ignored and t.ndim:
        t.reshape(-1)[::3] = ignore_index
    return x, t


def _upstream(loss_shape, dtype, seed=9):
    return np.random.default_rng(seed).standard_normal(loss_shape).astype(dtype)


def _compare_loss(ours, ref, x, target, dtype, torch_target=None):
    """Value and gradient of pred vs torch for a random upstream gradient."""
    xt = torch.tensor(x, requires_grad=True)
    expected = ref(xt, torch.tensor(target) if torch_target is None else torch_target)
    value = ours(x, target)
    assert_close(value, expected, dtype, "loss")
    g = _upstream(tuple(expected.shape), dtype)
    expected.backward(torch.tensor(g))
    grad = ours.backward(g if g.ndim else float(g))
    assert_close(grad, xt.grad, dtype, "gradient of pred")
    return value


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_cross_entropy_class_indices_match_torch(shape, weighted, smoothing, reduction, dtype):
    x, t = _logits_and_targets(shape, dtype)
    weight = np.random.default_rng(1).uniform(0.2, 2.0, 4).astype(dtype) if weighted else None
    ours = mg.nn.CrossEntropyLoss(weight=weight, reduction=reduction, label_smoothing=smoothing)
    ref = torch.nn.CrossEntropyLoss(weight=None if weight is None else torch.tensor(weight), reduction=reduction,
                                    label_smoothing=smoothing)
    value = _compare_loss(ours, ref, x, t, dtype)
    assert isinstance(value, np.ndarray) and value.shape == (() if reduction != "none" else t.shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_custom_ignore_index_matches_torch(reduction):
    x, t = _logits_and_targets((8, 5), "float64", ignore_index=2)
    weight = np.linspace(0.5, 1.5, 5)
    ours = mg.nn.CrossEntropyLoss(weight, ignore_index=2, reduction=reduction, label_smoothing=0.1)
    ref = torch.nn.CrossEntropyLoss(torch.tensor(weight), ignore_index=2, reduction=reduction, label_smoothing=0.1)
    _compare_loss(ours, ref, x, t, "float64")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing,weighted", [(0.0, False), (0.2, False), (0.0, True), (0.3, True)])
@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
def test_cross_entropy_probability_targets_match_torch(shape, smoothing, weighted, reduction, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    q = rng.uniform(0, 1, shape)
    q = (q / q.sum(axis=1, keepdims=True)).astype(dtype)
    weight = rng.uniform(0.2, 2.0, 4).astype(dtype) if weighted else None
    ours = mg.nn.CrossEntropyLoss(weight=weight, reduction=reduction, label_smoothing=smoothing)
    ref = torch.nn.CrossEntropyLoss(weight=None if weight is None else torch.tensor(weight), reduction=reduction,
                                    label_smoothing=smoothing)
    _compare_loss(ours, ref, x, q, dtype)


def test_cross_entropy_is_stable_and_all_ignored_gives_nan_like_torch():
    x = np.array([[1000.0, 0.0, -1000.0], [-5e3, 5e3, 0.0]])
    t = np.array([2, 0])
    ours = mg.nn.CrossEntropyLoss()
    ref = torch.nn.CrossEntropyLoss()
    _compare_loss(ours, ref, x, t, "float64")
    assert np.isfinite(ours(x, t))
    with np.errstate(invalid="ignore"):
        value = mg.nn.CrossEntropyLoss()(x, np.array([-100, -100]))
    assert np.isnan(value) and torch.isnan(ref(torch.tensor(x), torch.tensor([-100, -100])))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_nll_loss_matches_torch(shape, weighted, reduction, dtype):
    x, t = _logits_and_targets(shape, dtype, seed=3)
    logp = torch.log_softmax(torch.tensor(x), dim=0 if len(shape) == 1 else 1).numpy()
    weight = np.random.default_rng(4).uniform(0.2, 2.0, 4).astype(dtype) if weighted else None
    ours = mg.nn.NLLLoss(weight=weight, reduction=reduction)
    ref = torch.nn.NLLLoss(weight=None if weight is None else torch.tensor(weight), reduction=reduction)
    _compare_loss(ours, ref, logp, t, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction, dtype):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal((2, 3, 4)).astype(dtype)
    _compare_loss(mg.nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), x, y, dtype)


BCE_OPTIONS = [dict(), dict(weight=(3,)), dict(weight=(2, 1)), dict(pos_weight=(3,)),
               dict(weight=(3,), pos_weight=(1,))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", BCE_OPTIONS, ids=str)
def test_bce_with_logits_matches_torch(options, reduction, dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((2, 3)) * 4).astype(dtype)
    y = rng.uniform(0, 1, (2, 3)).astype(dtype)
    y[0, :2] = [0.0, 1.0]
    arrays = {k: rng.uniform(0.3, 3.0, shape).astype(dtype) for k, shape in options.items()}
    ours = mg.nn.BCEWithLogitsLoss(reduction=reduction, **arrays)
    ref = torch.nn.BCEWithLogitsLoss(reduction=reduction, **{k: torch.tensor(v) for k, v in arrays.items()})
    _compare_loss(ours, ref, x, y, dtype)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([[-1000.0, 1000.0, 40.0, -40.0]])
    y = np.array([[1.0, 0.0, 0.3, 0.7]])
    ours = mg.nn.BCEWithLogitsLoss(pos_weight=np.array([2.0, 0.5, 1.0, 3.0]))
    ref = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0, 0.5, 1.0, 3.0], dtype=torch.float64))
    value = _compare_loss(ours, ref, x, y, "float64")
    assert np.isfinite(value)


def test_losses_return_0d_arrays_and_keep_float32():
    x, t = _logits_and_targets((4, 4), "float32")
    for loss, target in [(mg.nn.CrossEntropyLoss(), t), (mg.nn.NLLLoss(), t), (mg.nn.MSELoss(), x * 0.5),
                         (mg.nn.BCEWithLogitsLoss(), np.abs(np.tanh(x)))]:
        value = loss(x, target)
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float32
        grad = loss.backward()
        assert grad.dtype == np.float32 and grad.shape == x.shape


def test_loss_state_dicts_match_torch_keys():
    w = np.ones(3)
    assert list(mg.nn.CrossEntropyLoss(w).state_dict()) == list(torch.nn.CrossEntropyLoss(torch.ones(3)).state_dict())
    assert list(mg.nn.CrossEntropyLoss().state_dict()) == []
    ours = mg.nn.BCEWithLogitsLoss(w, pos_weight=w)
    assert list(ours.state_dict()) == list(torch.nn.BCEWithLogitsLoss(torch.ones(3), pos_weight=torch.ones(3)).state_dict())


def _fd(loss, x, target):
    """gradcheck of pred only (the target is data)."""
    return mg.gradcheck((lambda pred: loss(pred, target), lambda dy, pred: loss.backward(dy)), (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_finite_differences(reduction):
    x, t = _logits_and_targets((3, 4, 2), "float64", seed=7)
    weight = np.array([0.5, 1.0, 2.0, 1.5])
    assert _fd(mg.nn.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=0.2), x, t)
    q = np.random.default_rng(8).dirichlet(np.ones(4), (3, 2)).transpose(0, 2, 1)
    assert _fd(mg.nn.CrossEntropyLoss(weight, reduction=reduction, label_smoothing=0.1), x, q)
    assert _fd(mg.nn.NLLLoss(weight, reduction=reduction), x, t)
    y = np.random.default_rng(9).uniform(0, 1, x.shape)
    assert _fd(mg.nn.MSELoss(reduction=reduction), x, y)
    assert _fd(mg.nn.BCEWithLogitsLoss(np.array([1.0, 2.0]), reduction=reduction, pos_weight=np.array([3.0, 0.5])), x, y)


STRICT_CASES = [
    lambda x, t, y: (mg.nn.CrossEntropyLoss(np.linspace(0.5, 2, 4), label_smoothing=0.1), t),
    lambda x, t, y: (mg.nn.CrossEntropyLoss(reduction="none"), t),
    lambda x, t, y: (mg.nn.CrossEntropyLoss(label_smoothing=0.1), y / y.sum(axis=1, keepdims=True)),
    lambda x, t, y: (mg.nn.NLLLoss(np.linspace(0.5, 2, 4), reduction="sum"), t),
    lambda x, t, y: (mg.nn.MSELoss(), y),
    lambda x, t, y: (mg.nn.BCEWithLogitsLoss(pos_weight=np.ones(3, "float32") * 2), y),
]


@pytest.mark.parametrize("index", range(len(STRICT_CASES)))
def test_loss_strict_backend(index):
    x, t = _logits_and_targets((2, 4, 3), "float32")
    y = np.random.default_rng(1).uniform(0, 1, x.shape).astype("float32")
    loss, target = STRICT_CASES[index](x, t, y)
    grad = np.ones(t.shape, "float32") if loss.reduction == "none" else 1.0
    strict_run(loss, [x, target], grad)


def test_losses_on_each_backend(backend, xp):
    x, t = _logits_and_targets((4, 3, 2), "float32")
    loss = mg.nn.CrossEntropyLoss(np.ones(3, "float32"), label_smoothing=0.1)  # weight moved to the input's backend
    value = loss(xp.asarray(x), xp.asarray(t))
    grad = loss.backward()
    assert mg.backend.backend_of(value) == backend and value.shape == () and mg.backend.backend_of(grad) == backend
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        loss(xp.asarray(x), xp.asarray(t * 0 + 3))


def test_target_validation_errors():
    x = np.zeros((4, 3))
    ce = mg.nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match="class indices of an integer dtype.*got target of dtype float64"):
        ce(x, np.zeros(4))
    with pytest.raises(TypeError, match="class indices of an integer dtype.*dtype bool"):
        ce(x, np.zeros(4, bool))
    with pytest.raises(ValueError, match=r"target values must be class indices in \[0, 3\) or ignore_index=-100; got 3"):
        ce(x, np.array([0, 1, 3, -100]))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\).*got -1"):
        ce(x, np.array([0, 1, -1, 2]))
    with pytest.raises(ValueError, match=r"expected target of shape \(4,\) for input of shape \(4, 3\).*got target of "
                                         r"shape \(4, 1\)"):
        ce(x, np.zeros((4, 1), "int64"))
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 5\) for input of shape \(2, 3, 5\)"):
        ce(np.zeros((2, 3, 5)), np.zeros((2, 4), "int64"))
    with pytest.raises(ValueError, match=r"expected target of shape \(\) for input of shape \(3,\)"):
        ce(np.zeros(3), np.zeros(2, "int64"))
    with pytest.raises(TypeError, match="floating-point input.*int64"):
        ce(np.zeros((4, 3), "int64"), np.zeros(4, "int64"))
    with pytest.raises(ValueError, match="0-d input"):
        ce(np.zeros(()), np.zeros((), "int64"))
    with pytest.raises(TypeError, match="NLLLoss: expected target to hold class indices of an integer dtype"):
        mg.nn.NLLLoss()(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weight has 2 entries but the input has 3 classes"):
        mg.nn.CrossEntropyLoss(np.ones(2))(x, np.zeros(4, "int64"))


def test_loss_argument_and_shape_errors():
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        mg.nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        mg.nn.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="weight must be a 1-D array"):
        mg.nn.CrossEntropyLoss(np.ones((2, 2)))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        mg.nn.NLLLoss(ignore_index=0.5)
    with pytest.raises(ValueError, match=r"MSELoss: expected target of the input's shape \(2, 3\), got target of shape \(3,\)"):
        mg.nn.MSELoss()(np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(TypeError, match="input has dtype float64 but target has dtype float32"):
        mg.nn.MSELoss()(np.zeros(3), np.zeros(3, "float32"))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast to the input of shape \(2, 3\)"):
        mg.nn.BCEWithLogitsLoss(pos_weight=np.ones(2))(np.zeros((2, 3)), np.zeros((2, 3)))
    loss = mg.nn.CrossEntropyLoss(reduction="none")
    loss(np.zeros((4, 3)), np.zeros(4, "int64"))
    with pytest.raises(ValueError, match=r"expected grad of shape \(4,\).*reduction='none'.*got \(\)"):
        loss.backward(np.array(1.0))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        mg.nn.MSELoss().backward()


def test_loss_works_in_a_training_step():
    mg.manual_seed(0)
    model = mg.nn.Linear(5, 3, dtype="float64")
    x, t = np.random.default_rng(0).standard_normal((8, 5)), np.arange(8) % 3
    loss = mg.nn.CrossEntropyLoss()
    first = float(loss(model(x), t))
    for _ in range(20):
        model.zero_grad()
        loss(model(x), t)
        model.backward(loss.backward())
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    assert float(loss(model(x), t)) < 0.5 * first


@pytest.mark.parametrize("make", [
    lambda mod, w: mod.CrossEntropyLoss(ignore_index=1),
    lambda mod, w: mod.CrossEntropyLoss(weight=w, ignore_index=1),
    lambda mod, w: mod.CrossEntropyLoss(ignore_index=1, label_smoothing=0.1),
    lambda mod, w: mod.NLLLoss(ignore_index=1),
    lambda mod, w: mod.NLLLoss(weight=w, ignore_index=1),
])
def test_a_batch_of_only_ignored_targets_gives_nan_loss_and_zero_gradient(make):
    """Like PyTorch: the mean over nothing is nan, but the gradient is 0, not nan (one such batch would
    otherwise poison every weight)."""
    import warnings
    torch = pytest.importorskip("torch")
    x = np.array([[-1.6, 2.5, 4.6], [-7.3, 0.2, 2.7]])
    target = np.array([1, 1])
    weight = np.array([1.0, 2.0, 3.0])
    loss = make(mg.nn, weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # no divide-by-zero or invalid-value warnings either
        value = loss(x, target)
        grad = loss.backward()
    tx = torch.tensor(x, requires_grad=True)
    reference = make(torch.nn, torch.tensor(weight))(tx, torch.tensor(target))
    reference.backward()
    assert np.isnan(value) and np.isnan(reference.item())
    np.testing.assert_array_equal(grad, tx.grad.numpy())
    assert grad.dtype == x.dtype and not np.any(grad)
