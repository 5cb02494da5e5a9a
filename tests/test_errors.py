"""A battery of bad inputs: each must raise a specific exception whose message names the layer
(its node name inside a Graph/Sequential), what was expected and what was given.

Never a raw NumPy error, never silent garbage. The "other backend" is the strict test backend
(tests/support/strict_backend.py), which stands in for CuPy on a machine without a GPU.
Each case is one entry of CASES: (id, function making the mistake, exception type, key words).
"""
import re

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.data import ArrayDataset, DataLoader
from support.strict_backend import strict_layer, to_strict

R = np.random.default_rng(0)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


def labels(*values):
    return np.array(values, dtype=np.int64)


def backward_with(layer, x, make_grad):
    """forward(x), then backward(make_grad(y))."""
    y = layer(x)
    return layer.backward(make_grad(y))


def backward_twice(layer, *inputs):
    y = layer(*inputs)
    grad = np.ones_like(y)
    layer.backward(grad)
    layer.backward(grad)


def loss_backward_twice(loss, x, target):
    loss(x, target)
    loss.backward()
    loss.backward()


def cross_entropy_backward(grad):
    """Per-example cross-entropy of 4 examples, then backward(grad)."""
    loss = nn.CrossEntropyLoss(reduction="none")
    loss(f32(4, 3), labels(0, 1, 2, 2))
    return loss.backward(grad)


def small_graph(layer, name="stem"):
    g = nn.Graph()
    x = g.input("image")
    g.output(g.add(name, layer, x))
    return g


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))


def strict(array):
    return to_strict(array)


def bad_checkpoint(tmp_path, payload: bytes):
    path = tmp_path / "model.npz"
    path.write_bytes(payload)
    return path


CASES = [
    # ---- wrong number of dimensions
    ("conv2d-2d-input", lambda: nn.Conv2d(3, 4, 3)(f32(8, 8)),
     ValueError, ["Conv2d", "expected 3-D or 4-D input", "(N, C, H, W) or (C, H, W)", "got 2-D", "(8, 8)"]),
    ("convtranspose-5d-input", lambda: nn.ConvTranspose2d(3, 4, 3)(f32(1, 3, 8, 8, 1)),
     ValueError, ["ConvTranspose2d", "expected 3-D or 4-D input", "got 5-D"]),
    ("maxpool-2d-input", lambda: nn.MaxPool2d(2)(f32(8, 8)),
     ValueError, ["MaxPool2d", "3-D or 4-D", "got 2-D", "(8, 8)"]),
    ("batchnorm2d-3d-input", lambda: nn.BatchNorm2d(3)(f32(2, 3, 5)),
     ValueError, ["BatchNorm2d", "expected 4-D", "got 3-D", "(2, 3, 5)"]),
    ("batchnorm1d-4d-input", lambda: nn.BatchNorm1d(3)(f32(2, 3, 5, 5)),
     ValueError, ["BatchNorm1d", "2-D or 3-D", "got 4-D"]),
    ("unfold-2d-input", lambda: mg.functional.unfold(f32(4, 4), 2),
     ValueError, ["unfold", "3-D or 4-D", "got 2-D"]),
    # ---- channel / feature mismatch
    ("conv2d-channels", lambda: nn.Conv2d(3, 4, 3)(f32(2, 1, 8, 8)),
     ValueError, ["Conv2d", "expected input with 3 channels", "(4, 3, 3, 3)", "got input of shape (2, 1, 8, 8)"]),
    ("conv2d-grouped-channels", lambda: nn.Conv2d(4, 4, 3, groups=2)(f32(1, 2, 8, 8)),
     ValueError, ["Conv2d", "expected input with 4 channels", "groups=2", "(1, 2, 8, 8)"]),
    ("convtranspose-channels", lambda: nn.ConvTranspose2d(3, 4, 3)(f32(1, 2, 8, 8)),
     ValueError, ["ConvTranspose2d", "expected input with 3 channels", "(1, 2, 8, 8)"]),
    ("linear-features", lambda: nn.Linear(4, 2)(f32(3, 5)),
     ValueError, ["Linear", "in_features=4", "(3, 5)"]),
    ("batchnorm-channels", lambda: nn.BatchNorm2d(3)(f32(2, 4, 5, 5)),
     ValueError, ["BatchNorm2d", "3 channels", "num_features=3", "(2, 4, 5, 5)"]),
    ("layernorm-trailing-shape", lambda: nn.LayerNorm(4)(f32(2, 5)),
     ValueError, ["LayerNorm", "normalized_shape=(4,)", "(2, 5)"]),
    ("sequential-linear-after-flatten", lambda: cnn()(f32(1, 1, 12, 12)),
     ValueError, ["Linear '4'", "in_features=36", "(1, 100)"]),
    ("add-shapes", lambda: nn.Add()(f32(2, 3), f32(2, 4)),
     ValueError, ["Add", "same shape", "(2, 3)", "(2, 4)"]),
    ("concat-shapes", lambda: nn.Concat(1)(f32(2, 3, 4), f32(2, 3, 5)),
     ValueError, ["Concat", "except dim=1", "(2, 3, 4)", "(2, 3, 5)"]),
    # ---- spatial size too small for kernel / padding
    ("conv2d-input-smaller-than-kernel", lambda: nn.Conv2d(3, 4, 5)(f32(2, 3, 3, 3)),
     ValueError, ["Conv2d", "kernel of size (5, 5)", "larger than the padded input (3, 3)"]),
    ("conv2d-dilated-kernel-too-wide", lambda: nn.Conv2d(1, 1, 3, dilation=4)(f32(1, 1, 8, 8)),
     ValueError, ["Conv2d", "dilation (4, 4)", "spans (9, 9)", "(8, 8)"]),
    ("conv2d-reflect-padding-too-large",
     lambda: nn.Conv2d(3, 4, 3, padding=3, padding_mode="reflect")(f32(1, 3, 2, 2)),
     ValueError, ["Conv2d", "reflect padding", "smaller than the input's spatial size (2, 2)"]),
    ("convtranspose-empty-output", lambda: nn.ConvTranspose2d(3, 4, 1, padding=2)(f32(1, 3, 1, 1)),
     ValueError, ["ConvTranspose2d", "empty output", "padding (2, 2)"]),
    ("maxpool-input-smaller-than-kernel", lambda: nn.MaxPool2d(5)(f32(1, 3, 3, 3)),
     ValueError, ["MaxPool2d", "too small for kernel_size (5, 5)", "(1, 3, 3, 3)"]),
    ("maxpool-dilation-too-large", lambda: nn.MaxPool2d(3, dilation=3)(f32(1, 3, 5, 5)),
     ValueError, ["MaxPool2d", "kernel_size (3, 3)", "dilation (3, 3)", "0x0"]),
    ("avgpool-input-smaller-than-kernel", lambda: nn.AvgPool2d(4)(f32(1, 1, 3, 3)),
     ValueError, ["AvgPool2d", "too small for kernel_size (4, 4)"]),
    ("maxpool-padding-over-half-kernel", lambda: nn.MaxPool2d(2, padding=2),
     ValueError, ["MaxPool2d", "at most half of the kernel size", "padding (2, 2)"]),
    ("unfold-too-small", lambda: mg.functional.unfold(f32(1, 1, 2, 2), 3),
     ValueError, ["unfold", "kernel (3, 3)", "does not fit", "(1, 1, 2, 2)"]),
    ("fold-wrong-block-count", lambda: mg.functional.fold(f32(1, 4, 5), (4, 4), 2),
     ValueError, ["fold", "9 blocks", "L=5"]),
    # ---- integer and complex input (check_float_array in every layer)
    ("conv2d-int-input", lambda: nn.Conv2d(3, 4, 3)(np.ones((2, 3, 8, 8), np.int64)),
     TypeError, ["Conv2d", "floating-point input", "int64"]),
    ("conv2d-complex-input", lambda: nn.Conv2d(3, 4, 3)(np.ones((2, 3, 8, 8), np.complex64)),
     TypeError, ["Conv2d", "floating-point input", "complex64"]),
    ("convtranspose-complex-input", lambda: nn.ConvTranspose2d(3, 4, 3)(np.ones((1, 3, 4, 4), np.complex128)),
     TypeError, ["ConvTranspose2d", "floating-point", "complex128"]),
    ("linear-int-input", lambda: nn.Linear(4, 2)(np.ones((3, 4), np.int32)),
     TypeError, ["Linear", "floating-point input", "int32"]),
    ("linear-python-list", lambda: nn.Linear(4, 2)([[1.0, 2.0, 3.0, 4.0]]),
     TypeError, ["Linear", "NumPy or CuPy array", "list"]),
    ("conv2d-dtype-differs-from-weight", lambda: nn.Conv2d(3, 4, 3)(R.standard_normal((1, 3, 8, 8))),
     TypeError, ["Conv2d", "input has dtype float64", "weight has dtype float32"]),
    ("unfold-int-input", lambda: mg.functional.unfold(np.ones((1, 1, 4, 4), np.int64), 2),
     TypeError, ["unfold", "floating-point", "int64"]),
    ("mul-int-second-input", lambda: nn.Mul()(f32(2, 3), np.ones((2, 3), np.int64)),
     TypeError, ["Mul", "input 1", "int64"]),
    ("mse-int-target", lambda: nn.MSELoss()(f32(4, 3), np.ones((4, 3), np.int64)),
     TypeError, ["MSELoss", "floating-point target", "int64"]),
    ("cross-entropy-complex-logits", lambda: nn.CrossEntropyLoss()(np.ones((4, 3), np.complex64), labels(0, 1, 2, 2)),
     TypeError, ["CrossEntropyLoss", "floating-point input", "complex64"]),
    # ---- labels: out of range, float, wrong length (on both backends)
    ("cross-entropy-label-too-large", lambda: nn.CrossEntropyLoss()(f32(4, 3), labels(0, 1, 3, 2)),
     ValueError, ["CrossEntropyLoss", "class indices in [0, 3)", "got 3"]),
    ("cross-entropy-negative-label", lambda: nn.CrossEntropyLoss()(f32(4, 3), labels(0, -1, 1, 2)),
     ValueError, ["CrossEntropyLoss", "[0, 3)", "ignore_index=-100", "got -1"]),
    ("cross-entropy-label-too-large-strict-backend",
     lambda: nn.CrossEntropyLoss()(strict(f32(4, 3)), strict(labels(0, 1, 7, 2))),
     ValueError, ["CrossEntropyLoss", "[0, 3)", "got 7"]),
    ("cross-entropy-float-labels", lambda: nn.CrossEntropyLoss()(f32(4, 3), np.array([0, 1, 2, 2], np.float32)),
     TypeError, ["CrossEntropyLoss", "integer dtype", "float32", "(4,)"]),
    ("cross-entropy-bool-labels", lambda: nn.CrossEntropyLoss()(f32(4, 3), np.array([0, 1, 1, 0], bool)),
     TypeError, ["CrossEntropyLoss", "integer dtype", "bool"]),
    ("cross-entropy-wrong-length", lambda: nn.CrossEntropyLoss()(f32(4, 3), labels(0, 1, 2)),
     ValueError, ["CrossEntropyLoss", "expected target of shape (4,)", "got target of shape (3,)"]),
    ("cross-entropy-list-target", lambda: nn.CrossEntropyLoss()(f32(4, 3), [0, 1, 2, 2]),
     TypeError, ["CrossEntropyLoss", "target to be an array", "list"]),
    ("cross-entropy-weight-classes",
     lambda: nn.CrossEntropyLoss(weight=np.ones(4, np.float32))(f32(4, 3), labels(0, 1, 2, 2)),
     ValueError, ["CrossEntropyLoss", "weight has 4 entries", "3 classes"]),
    ("nll-label-too-large", lambda: nn.NLLLoss()(f32(4, 3), labels(0, 1, 5, 2)),
     ValueError, ["NLLLoss", "[0, 3)", "got 5"]),
    ("nll-label-out-of-range-strict-backend", lambda: nn.NLLLoss()(strict(f32(2, 3)), strict(labels(3, 0))),
     ValueError, ["NLLLoss", "[0, 3)", "got 3"]),
    ("nll-float-labels", lambda: nn.NLLLoss()(f32(4, 3), np.array([0, 1, 2, 2], np.float64)),
     TypeError, ["NLLLoss", "integer dtype", "float64"]),
    ("nll-wrong-length", lambda: nn.NLLLoss()(f32(4, 3), labels(0, 1, 2, 2, 1)),
     ValueError, ["NLLLoss", "shape (4,)", "(5,)"]),
    ("mse-target-shape", lambda: nn.MSELoss()(f32(4, 3), f32(4, 2)),
     ValueError, ["MSELoss", "(4, 3)", "(4, 2)"]),
    ("bce-pos-weight-shape", lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(5, np.float32))(f32(4, 3), f32(4, 3)),
     ValueError, ["BCEWithLogitsLoss", "pos_weight of shape (5,)", "(4, 3)"]),
    # ---- backward before forward / twice after one forward
    ("conv2d-backward-before-forward", lambda: nn.Conv2d(3, 4, 3).backward(f32(1, 4, 6, 6)),
     RuntimeError, ["Conv2d", "backward called before forward"]),
    ("conv2d-backward-twice", lambda: backward_twice(nn.Conv2d(3, 4, 3), f32(1, 3, 8, 8)),
     RuntimeError, ["Conv2d", "twice after one forward"]),
    ("maxpool-backward-twice", lambda: backward_twice(nn.MaxPool2d(2), f32(1, 1, 4, 4)),
     RuntimeError, ["MaxPool2d", "twice after one forward"]),
    ("flatten-backward-before-forward", lambda: nn.Flatten().backward(f32(2, 3)),
     RuntimeError, ["Flatten", "before forward"]),
    ("cross-entropy-backward-before-forward", lambda: nn.CrossEntropyLoss().backward(),
     RuntimeError, ["CrossEntropyLoss", "before forward"]),
    ("nll-backward-twice", lambda: loss_backward_twice(nn.NLLLoss(), f32(4, 3), labels(0, 1, 2, 2)),
     RuntimeError, ["NLLLoss", "twice after one forward"]),
    ("graph-backward-twice-names-graph",
     lambda: backward_twice(small_graph(nn.Linear(2, 2), "fc"), f32(3, 2)),
     RuntimeError, ["Graph", "twice after one forward"]),
    # ---- gradient of the wrong shape / dtype
    ("conv2d-grad-shape", lambda: backward_with(nn.Conv2d(3, 4, 3), f32(1, 3, 8, 8), lambda y: f32(1, 4, 5, 5)),
     ValueError, ["Conv2d", "expected grad_out of shape (1, 4, 6, 6)", "got (1, 4, 5, 5)"]),
    ("convtranspose-grad-shape", lambda: backward_with(nn.ConvTranspose2d(3, 4, 3), f32(1, 3, 4, 4),
                                                       lambda y: f32(1, 4, 4, 4)),
     ValueError, ["ConvTranspose2d", "(1, 4, 6, 6)", "got (1, 4, 4, 4)"]),
    ("linear-grad-shape", lambda: backward_with(nn.Linear(4, 2), f32(3, 4), lambda y: f32(3, 3)),
     ValueError, ["Linear", "grad_out of shape (3, 2)", "got (3, 3)"]),
    ("maxpool-grad-shape", lambda: backward_with(nn.MaxPool2d(2), f32(1, 1, 4, 4), lambda y: f32(1, 1, 4, 4)),
     ValueError, ["MaxPool2d", "grad_out of shape (1, 1, 2, 2)", "got (1, 1, 4, 4)"]),
    ("flatten-grad-shape", lambda: backward_with(nn.Flatten(), f32(2, 3, 4), lambda y: f32(2, 11)),
     ValueError, ["Flatten", "grad_out of shape (2, 12)", "got (2, 11)"]),
    ("leaky-relu-grad-shape", lambda: backward_with(nn.LeakyReLU(), f32(3), lambda y: f32(4)),
     ValueError, ["LeakyReLU", "(3,)", "(4,)"]),
    ("maxpool-int-grad", lambda: backward_with(nn.MaxPool2d(2), f32(1, 1, 4, 4),
                                               lambda y: np.ones(y.shape, np.int64)),
     TypeError, ["MaxPool2d", "grad_out has dtype int64", "float32"]),
    ("avgpool-float64-grad", lambda: backward_with(nn.AvgPool2d(2), f32(1, 1, 4, 4), lambda y: np.ones(y.shape)),
     TypeError, ["AvgPool2d", "grad_out has dtype float64", "float32"]),
    ("tanh-float64-grad", lambda: backward_with(nn.Tanh(), f32(3), lambda y: np.ones(3)),
     TypeError, ["Tanh", "grad_out has dtype float64", "float32"]),
    ("cross-entropy-grad-shape", lambda: cross_entropy_backward(np.ones(3, np.float32)),
     ValueError, ["CrossEntropyLoss", "grad of shape (4,)", "got (3,)"]),
    ("graph-grad-shape", lambda: backward_with(small_graph(nn.Linear(2, 2), "fc"), f32(3, 2), lambda y: f32(2, 2)),
     ValueError, ["Graph", "output 'fc'", "(2, 2)", "expected (3, 2)"]),
    # ---- gradient of the wrong backend
    ("conv2d-grad-other-backend", lambda: backward_with(nn.Conv2d(3, 4, 3), f32(1, 3, 8, 8),
                                                        lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["Conv2d", "grad_out is a strict array", "input is a numpy array"]),
    ("linear-grad-other-backend", lambda: backward_with(nn.Linear(4, 2), f32(3, 4), lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["Linear", "grad_out is a strict array", "numpy"]),
    ("batchnorm-grad-other-backend", lambda: backward_with(nn.BatchNorm2d(3), f32(2, 3, 4, 4),
                                                           lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["BatchNorm2d", "strict", "numpy"]),
    ("maxpool-grad-other-backend", lambda: backward_with(nn.MaxPool2d(2), f32(1, 1, 4, 4),
                                                         lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["MaxPool2d", "grad_out is a strict array", "input was a numpy array"]),
    ("adaptive-avgpool-grad-other-backend", lambda: backward_with(nn.AdaptiveAvgPool2d(2), f32(1, 1, 4, 4),
                                                                  lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["AdaptiveAvgPool2d", "strict", "numpy"]),
    ("flatten-grad-other-backend", lambda: backward_with(nn.Flatten(), f32(2, 3, 4), lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["Flatten", "strict", "numpy"]),
    ("identity-grad-other-backend", lambda: backward_with(nn.Identity(), f32(2, 3), lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["Identity", "strict", "numpy"]),
    ("cross-entropy-grad-other-backend", lambda: cross_entropy_backward(strict(np.ones(4, np.float32))),
     mg.BackendMismatchError, ["CrossEntropyLoss", "grad is a strict array", "input is a numpy array"]),
    ("dropout-grad-other-backend", lambda: backward_with(nn.Dropout(), f32(30), lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["Dropout", "strict", "numpy"]),
    ("sequential-grad-other-backend",
     lambda: backward_with(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), f32(4, 2), lambda y: strict(np.ones_like(y))),
     mg.BackendMismatchError, ["ReLU '1'", "grad_out is a strict array"]),
    # ---- parameters of one backend, inputs of another
    ("conv2d-numpy-params-strict-input", lambda: nn.Conv2d(3, 4, 3)(strict(f32(1, 3, 8, 8))),
     mg.BackendMismatchError, ["Conv2d", "input is a strict array", "weight is a numpy array"]),
    ("linear-strict-params-numpy-input", lambda: strict_layer(nn.Linear(4, 2))(f32(3, 4)),
     mg.BackendMismatchError, ["Linear", "input is a numpy array", "weight is a strict array"]),
    ("layernorm-numpy-params-strict-input", lambda: nn.LayerNorm(4)(strict(f32(2, 4))),
     mg.BackendMismatchError, ["LayerNorm", "strict", "numpy"]),
    ("graph-node-params-other-backend", lambda: small_graph(nn.Conv2d(1, 2, 3), "stem")(strict(f32(1, 1, 5, 5))),
     mg.BackendMismatchError, ["Conv2d 'stem'", "strict", "numpy"]),
    ("add-inputs-on-two-backends", lambda: nn.Add()(f32(2, 3), strict(f32(2, 3))),
     mg.BackendMismatchError, ["Add", "input 0 is a numpy array", "input 1 is a strict array"]),
    ("cross-entropy-target-other-backend", lambda: nn.CrossEntropyLoss()(f32(4, 3), strict(labels(0, 1, 2, 2))),
     mg.BackendMismatchError, ["CrossEntropyLoss", "target is a strict array"]),
    # ---- the node name inside a Graph appears in the message
    ("graph-conv-node-name", lambda: small_graph(nn.Conv2d(3, 4, 3), "stem")(f32(1, 2, 8, 8)),
     ValueError, ["Conv2d 'stem'", "3 channels", "(1, 2, 8, 8)"]),
    ("graph-pool-node-name", lambda: small_graph(nn.MaxPool2d(3), "pool1")(f32(1, 1, 2, 2)),
     ValueError, ["MaxPool2d 'pool1'", "too small", "(1, 1, 2, 2)"]),
    ("graph-node-complex-input", lambda: small_graph(nn.ReLU(), "act")(np.ones((2, 2), np.complex64)),
     TypeError, ["ReLU 'act'", "complex64"]),
    ("graph-wrong-input-count", lambda: small_graph(nn.ReLU())(f32(2), f32(2)),
     TypeError, ["Graph", "expected 1 input(s)", "image", "got 2"]),
    # ---- optimizers
    ("sgd-non-parameter", lambda: mg.optim.SGD([np.ones(3)], lr=0.1),
     TypeError, ["SGD", "parameter 0", "ndarray", "not a minigrad Parameter"]),
    ("sgd-layer-instead-of-parameters", lambda: mg.optim.SGD(nn.Linear(2, 2), lr=0.1),
     TypeError, ["SGD", "got a Linear", "model.parameters()"]),
    ("sgd-negative-lr", lambda: mg.optim.SGD(nn.Linear(2, 2).parameters(), lr=-1),
     ValueError, ["SGD", "learning rate lr=-1", ">= 0"]),
    ("adam-negative-lr", lambda: mg.optim.Adam(nn.Linear(2, 2).parameters(), lr=-0.5),
     ValueError, ["Adam", "lr=-0.5"]),
    ("adam-beta-above-one", lambda: mg.optim.Adam(nn.Linear(2, 2).parameters(), betas=(1.5, 0.9)),
     ValueError, ["Adam", "beta parameter at index 0", "1.5"]),
    ("sgd-empty-parameters", lambda: mg.optim.SGD([], lr=0.1),
     ValueError, ["SGD", "empty parameter list"]),
    ("optimizer-state-dict-mismatch",
     lambda: mg.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1).load_state_dict(
         mg.optim.SGD(nn.Linear(2, 2, bias=False).parameters(), lr=0.1).state_dict()),
     ValueError, ["SGD.load_state_dict", "1 parameters in the state dict", "2 in the optimizer"]),
    # ---- data loader
    ("dataloader-batch-size-0", lambda: DataLoader(ArrayDataset(f32(4, 2)), batch_size=0),
     ValueError, ["DataLoader", "batch_size must be a positive int", "got 0"]),
    ("dataloader-batch-size-float", lambda: DataLoader(ArrayDataset(f32(4, 2)), batch_size=2.5),
     ValueError, ["DataLoader", "batch_size", "2.5"]),
    ("dataloader-empty-dataset", lambda: DataLoader(ArrayDataset(f32(0, 2)), batch_size=2),
     ValueError, ["DataLoader", "dataset is empty"]),
    ("dataset-length-mismatch", lambda: ArrayDataset(f32(4, 2), np.arange(3)),
     ValueError, ["ArrayDataset", "same length", "[4, 3]"]),
    # ---- state dicts
    ("state-dict-shape", lambda: nn.Linear(2, 2).load_state_dict(nn.Linear(3, 2).state_dict()),
     ValueError, ["Linear.load_state_dict", "'weight' has shape (2, 3)", "(2, 2) in the model"]),
    ("state-dict-missing-key", lambda: nn.Linear(2, 2).load_state_dict(nn.Linear(2, 2, bias=False).state_dict()),
     KeyError, ["Linear.load_state_dict", "missing keys", "bias"]),
    ("state-dict-int-into-float",
     lambda: nn.Linear(2, 2).load_state_dict({k: v.astype(np.int64) for k, v in nn.Linear(2, 2).state_dict().items()}),
     TypeError, ["Linear.load_state_dict", "'weight' has dtype int64", "float32 in the model"]),
    ("state-dict-list-value",
     lambda: nn.Linear(2, 2).load_state_dict({k: v.tolist() for k, v in nn.Linear(2, 2).state_dict().items()}),
     TypeError, ["Linear.load_state_dict", "'weight' is a list"]),
]


def check_message(excinfo, words):
    message = str(excinfo.value)
    for word in words:
        assert re.search(re.escape(word), message), f"{word!r} not in the message: {message}"


@pytest.mark.parametrize("make_mistake, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(make_mistake, error, words):
    with pytest.raises(error) as excinfo:
        make_mistake()
    check_message(excinfo, words)


def test_the_battery_is_large_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40


def test_every_float_checking_layer_refuses_complex_input():
    """check_float_array in every public layer: complex (and integer) input is a TypeError naming it."""
    layers = {
        "Conv2d": (nn.Conv2d(2, 2, 1), (1, 2, 3, 3)), "ConvTranspose2d": (nn.ConvTranspose2d(2, 2, 1), (1, 2, 3, 3)),
        "Linear": (nn.Linear(3, 2), (2, 3)), "MaxPool2d": (nn.MaxPool2d(2), (1, 1, 4, 4)),
        "AvgPool2d": (nn.AvgPool2d(2), (1, 1, 4, 4)), "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d(1), (1, 1, 4, 4)),
        "BatchNorm1d": (nn.BatchNorm1d(3), (2, 3)), "BatchNorm2d": (nn.BatchNorm2d(2), (2, 2, 3, 3)),
        "LayerNorm": (nn.LayerNorm(3), (2, 3)), "ReLU": (nn.ReLU(), (3,)), "LeakyReLU": (nn.LeakyReLU(), (3,)),
        "GELU": (nn.GELU(), (3,)), "Sigmoid": (nn.Sigmoid(), (3,)), "Tanh": (nn.Tanh(), (3,)),
        "Softmax": (nn.Softmax(1), (2, 3)), "LogSoftmax": (nn.LogSoftmax(1), (2, 3)), "Dropout": (nn.Dropout(), (3,)),
    }
    for name, (layer, shape) in layers.items():
        for dtype in (np.complex64, np.int64):
            with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input.*{np.dtype(dtype)}"):
                layer(np.ones(shape, dtype))
    for name, layer in (("Add", nn.Add()), ("Mul", nn.Mul()), ("Concat", nn.Concat())):
        with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input 1.*complex64"):
            layer(f32(2, 3), np.ones((2, 3), np.complex64))
    for name, loss in (("CrossEntropyLoss", nn.CrossEntropyLoss()), ("NLLLoss", nn.NLLLoss())):
        with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input.*complex64"):
            loss(np.ones((2, 3), np.complex64), labels(0, 1))
    for name, loss in (("MSELoss", nn.MSELoss()), ("BCEWithLogitsLoss", nn.BCEWithLogitsLoss())):
        with pytest.raises(TypeError, match=rf"{name}: expected a floating-point input.*complex64"):
            loss(np.ones((2, 3), np.complex64), f32(2, 3))


def test_failed_state_dict_load_leaves_the_model_untouched():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["1.weight"] = np.zeros((2, 4), np.float32)          # the last entry is the wrong shape
    with pytest.raises(ValueError, match=r"'1.weight' has shape \(2, 4\)"):
        model.load_state_dict(bad)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize("payload, words", [
    (b"", ["cannot read the checkpoint"]),
    (b"hello, not a zip archive", ["cannot read the checkpoint"]),
], ids=["empty-file", "text-file"])
def test_unreadable_checkpoint_files_are_refused(tmp_path, payload, words):
    path = bad_checkpoint(tmp_path, payload)
    model = nn.Linear(2, 2)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(mg.CheckpointError) as excinfo:
        mg.load_into(path, model)
    check_message(excinfo, [str(path)] + words)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "linear.npz"
    mg.save(path, nn.Linear(2, 2))
    with pytest.raises(mg.CheckpointError) as excinfo:
        mg.load_into(path, nn.Linear(3, 2))
    check_message(excinfo, [str(path), "'weight' has shape (2, 2) in the checkpoint", "(2, 3) in Linear",
                            "the model was not changed"])
    with pytest.raises(mg.CheckpointError) as excinfo:
        mg.load_into(path, nn.Sequential(nn.Linear(2, 2)))
    check_message(excinfo, ["another architecture", "missing keys", "0.weight"])
