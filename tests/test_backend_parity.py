"""Every layer, loss and optimizer gives the same result on each backend as on NumPy.

The numpy cases check the harness itself; the cupy cases run on a GPU machine (and skip
with the reason elsewhere). Layers are built once on NumPy, copied to the backend under
test with ``.to()``, run on the same input and compared after moving results back.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import to_backend

nn = mg.nn

LAYERS = {
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 9, 8)),
    "conv2d_grouped_reflect": (lambda: nn.Conv2d(4, 4, 3, groups=2, padding=1, padding_mode="reflect"),
                               (2, 4, 6, 6)),
    "conv2d_depthwise": (lambda: nn.Conv2d(4, 4, 3, groups=4, padding=1), (2, 4, 6, 6)),
    "conv2d_1x1": (lambda: nn.Conv2d(4, 6, 1), (2, 4, 5, 5)),
    "conv2d_dilated": (lambda: nn.Conv2d(2, 3, (3, 2), dilation=(2, 3), padding=2), (1, 2, 9, 10)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
                         (2, 4, 5, 5)),
    "linear": (lambda: nn.Linear(6, 3), (4, 6)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 4, 4)),
    "maxpool": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    "maxpool_ceil_dilated": (lambda: nn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True), (1, 2, 9, 8)),
    "avgpool": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 9, 9)),
    "avgpool_no_pad_count": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False,
                                                  ceil_mode=True), (1, 2, 8, 7)),
    "adaptive_avgpool": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 8)),
    "global_avgpool": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 7, 8)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(5), (6, 5)),
    "layernorm": (lambda: nn.LayerNorm(6), (3, 4, 6)),
    "relu": (lambda: nn.ReLU(), (3, 7)),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), (3, 7)),
    "gelu": (lambda: nn.GELU(), (3, 7)),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), (3, 7)),
    "sigmoid": (lambda: nn.Sigmoid(), (3, 7)),
    "tanh": (lambda: nn.Tanh(), (3, 7)),
    "softmax": (lambda: nn.Softmax(dim=1), (3, 7)),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), (3, 7)),
    "lenet5": (lambda: mg.models.lenet5(), (2, 1, 28, 28)),
}


def _host(a):
    return to_backend(a, "numpy")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_same_on_every_backend(name, backend):
    make, shape = LAYERS[name]
    mg.set_backend("numpy")
    reference = make()
    moved = make()
    moved.load_state_dict(reference.state_dict())
    moved.to(backend)
    assert moved.backend in (None, backend)
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    y_ref = reference(x)
    y = moved(to_backend(x, backend))
    dy = np.random.default_rng(1).standard_normal(y_ref.shape).astype("float32")
    dx_ref = reference.backward(dy)
    dx = moved.backward(to_backend(dy, backend))
    np.testing.assert_allclose(_host(y), y_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_host(dx), dx_ref, rtol=1e-4, atol=1e-5)
    for (pname, p_ref), (_, p) in zip(reference.named_parameters(), moved.named_parameters()):
        assert p.backend == backend, pname
        np.testing.assert_allclose(_host(p.grad), p_ref.grad, rtol=1e-3, atol=1e-4, err_msg=pname)
    for (bname, b_ref), (_, b) in zip(reference.named_buffers(), moved.named_buffers()):
        np.testing.assert_allclose(_host(b), b_ref, rtol=1e-5, atol=1e-6, err_msg=bname)


LOSSES = {
    "cross_entropy": (lambda: nn.CrossEntropyLoss(), "index"),                      # fused kernels on GPU
    "cross_entropy_ignore": (lambda: nn.CrossEntropyLoss(ignore_index=2), "index"),
    "cross_entropy_sum": (lambda: nn.CrossEntropyLoss(reduction="sum"), "index"),
    "cross_entropy_smooth": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1), "index"),
    "nll": (lambda: nn.NLLLoss(), "index"),
    "mse": (lambda: nn.MSELoss(), "float"),
    "bce_logits": (lambda: nn.BCEWithLogitsLoss(), "binary"),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_same_on_every_backend(name, backend):
    make, kind = LOSSES[name]
    rng = np.random.default_rng(2)
    pred = (rng.standard_normal((8, 5)) * 4).astype("float32")
    target = {"index": rng.integers(0, 5, 8), "float": rng.standard_normal((8, 5)).astype("float32"),
              "binary": (rng.random((8, 5)) > 0.5).astype("float32")}[kind]
    reference, moved = make(), make()
    value_ref = reference(pred, target)
    value = moved(to_backend(pred, backend), to_backend(target, backend))
    np.testing.assert_allclose(float(_host(value)), float(value_ref), rtol=1e-5)
    np.testing.assert_allclose(_host(moved.backward()), reference.backward(), rtol=1e-4, atol=1e-6)


OPTIMIZERS = {
    "sgd": lambda p: mg.optim.SGD(p, lr=0.1),
    "sgd_nesterov_wd": lambda p: mg.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": lambda p: mg.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: mg.optim.AdamW(p, lr=1e-2),
    "adam_amsgrad": lambda p: mg.optim.Adam(p, lr=1e-2, amsgrad=True),
    "rmsprop": lambda p: mg.optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_same_on_every_backend(name, backend):
    mg.set_backend("numpy")
    reference, moved = nn.Linear(6, 3), nn.Linear(6, 3)
    moved.load_state_dict(reference.state_dict())
    moved.to(backend)
    opt_ref, opt = OPTIMIZERS[name](reference.parameters()), OPTIMIZERS[name](moved.parameters())
    rng = np.random.default_rng(3)
    for _ in range(4):
        for p_ref, p in zip(reference.parameters(), moved.parameters()):
            grad = rng.standard_normal(p_ref.shape).astype("float32")
            p_ref.grad[...] = grad
            p.grad[...] = to_backend(grad, backend)
        opt_ref.step()
        opt.step()
    for p_ref, p in zip(reference.parameters(), moved.parameters()):
        np.testing.assert_allclose(_host(p.data), p_ref.data, rtol=1e-5, atol=1e-6)


def test_moving_model_moves_everything_and_saving_keeps_it_there(backend, tmp_path):
    mg.set_backend("numpy")
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    opt = mg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = nn.CrossEntropyLoss()
    x = np.random.default_rng(4).standard_normal((2, 1, 28, 28)).astype("float32")
    loss(model(x), np.array([1, 2]))
    model.backward(loss.backward())
    opt.step()
    model.to(backend)
    assert all(p.backend == backend and mg.backend.backend_of(p.grad) == backend for p in model.parameters())
    assert all(mg.backend.backend_of(b) == backend for _, b in model.named_buffers())
    xb = to_backend(x, backend)
    loss(model(xb), to_backend(np.array([1, 2]), backend))
    model.backward(loss.backward())
    opt.step()                                   # optimizer state follows the parameters
    for state in opt.state_dict()["state"].values():
        for value in state.values():
            if mg.backend.is_array(value):
                assert mg.backend.backend_of(value) == backend
    mg.save(tmp_path / "ckpt.npz", model, opt)
    assert all(p.backend == backend for p in model.parameters())   # saving never moves the model
    loaded = mg.load(tmp_path / "ckpt.npz", backend="numpy")
    assert all(mg.backend.backend_of(v) == "numpy" for v in loaded["model"].values())
