"""Every layer, loss and optimizer gives the same result on each backend as on NumPy.

The numpy cases check the harness itself; the cupy cases run on a GPU machine (and skip
with the reason elsewhere). Layers are built once on NumPy, copied to the backend under
test with ``.to()``, run on the same input and compared after moving results back.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import to_backend
from support.grads import set_grad

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
            set_grad(p_ref, grad)
            set_grad(p, to_backend(grad, backend))
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


# The same layers in PyTorch, run on CUDA when the backend under test is cupy and PyTorch has a
# GPU (on the CPU otherwise: the simulated CuPy, or a CPU-only PyTorch on a GPU machine).
def _torch_layers():
    import torch
    from torch import nn as tnn

    from support import torch_twins
    return {
        "conv2d": lambda: tnn.Conv2d(3, 4, 3, stride=2, padding=1),
        "conv2d_grouped_reflect": lambda: tnn.Conv2d(4, 4, 3, groups=2, padding=1, padding_mode="reflect"),
        "conv2d_depthwise": lambda: tnn.Conv2d(4, 4, 3, groups=4, padding=1),
        "conv2d_1x1": lambda: tnn.Conv2d(4, 6, 1),
        "conv2d_dilated": lambda: tnn.Conv2d(2, 3, (3, 2), dilation=(2, 3), padding=2),
        "conv_transpose2d": lambda: tnn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
        "linear": lambda: tnn.Linear(6, 3),
        "flatten": lambda: tnn.Flatten(),
        "maxpool": lambda: tnn.MaxPool2d(3, stride=2, padding=1),
        "maxpool_ceil_dilated": lambda: tnn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True),
        "avgpool": lambda: tnn.AvgPool2d(3, stride=2, padding=1),
        "avgpool_no_pad_count": lambda: tnn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False,
                                                      ceil_mode=True),
        "adaptive_avgpool": lambda: tnn.AdaptiveAvgPool2d((2, 3)),
        "global_avgpool": lambda: tnn.AdaptiveAvgPool2d(1),
        "batchnorm2d": lambda: tnn.BatchNorm2d(3),
        "batchnorm1d": lambda: tnn.BatchNorm1d(5),
        "layernorm": lambda: tnn.LayerNorm(6),
        "relu": lambda: tnn.ReLU(),
        "leaky_relu": lambda: tnn.LeakyReLU(0.1),
        "gelu": lambda: tnn.GELU(),
        "gelu_tanh": lambda: tnn.GELU(approximate="tanh"),
        "sigmoid": lambda: tnn.Sigmoid(),
        "tanh": lambda: tnn.Tanh(),
        "softmax": lambda: tnn.Softmax(dim=1),
        "log_softmax": lambda: tnn.LogSoftmax(dim=1),
        "lenet5": torch_twins.lenet5,
    }, torch


@pytest.fixture
def torch_fp32():
    """PyTorch without TF32 (its default for float32 convolutions on Ampere+ GPUs), restored afterwards."""
    torch = pytest.importorskip("torch")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    from minigrad.bench.cases import full_fp32
    full_fp32(torch)
    yield torch
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_pytorch_on_the_device(name, backend, torch_fp32):
    """Forward, input gradient, parameter gradients and buffers against PyTorch (float32, train mode)."""
    from minigrad.torch_compat import to_torch_state_dict
    twins, torch = _torch_layers()
    assert set(twins) == set(LAYERS), "a layer was added without its PyTorch twin"
    device = "cuda" if backend == "cupy" and torch.cuda.is_available() else "cpu"
    make, shape = LAYERS[name]
    mg.set_backend("numpy")
    ours = make().to(backend)
    theirs = twins[name]().to(device)
    theirs.load_state_dict(to_torch_state_dict(ours))
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    y = ours(to_backend(x, backend))
    tx = torch.tensor(x, device=device, requires_grad=True)
    ty = theirs(tx)
    dy = np.random.default_rng(1).standard_normal(ty.shape).astype("float32")
    dx = ours.backward(to_backend(dy, backend))
    ty.backward(torch.tensor(dy, device=device))
    np.testing.assert_allclose(_host(y), ty.detach().cpu().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_host(dx), tx.grad.cpu().numpy(), rtol=1e-4, atol=1e-5)
    torch_params = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        np.testing.assert_allclose(_host(p.grad), torch_params[pname].grad.cpu().numpy(), rtol=1e-3, atol=1e-4,
                                   err_msg=pname)
    torch_buffers = dict(theirs.named_buffers())
    for bname, b in ours.named_buffers():
        np.testing.assert_allclose(_host(b), torch_buffers[bname].cpu().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=bname)


TORCH_LOSSES = {
    "cross_entropy": lambda tnn: tnn.CrossEntropyLoss(),
    "cross_entropy_ignore": lambda tnn: tnn.CrossEntropyLoss(ignore_index=2),
    "cross_entropy_sum": lambda tnn: tnn.CrossEntropyLoss(reduction="sum"),
    "cross_entropy_smooth": lambda tnn: tnn.CrossEntropyLoss(label_smoothing=0.1),
    "nll": lambda tnn: tnn.NLLLoss(),
    "mse": lambda tnn: tnn.MSELoss(),
    "bce_logits": lambda tnn: tnn.BCEWithLogitsLoss(),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_pytorch_on_the_device(name, backend, torch_fp32):
    torch = torch_fp32
    assert set(TORCH_LOSSES) == set(LOSSES), "a loss was added without its PyTorch twin"
    device = "cuda" if backend == "cupy" and torch.cuda.is_available() else "cpu"
    make, kind = LOSSES[name]
    rng = np.random.default_rng(2)
    pred = (rng.standard_normal((8, 5)) * 4).astype("float32")
    target = {"index": rng.integers(0, 5, 8), "float": rng.standard_normal((8, 5)).astype("float32"),
              "binary": (rng.random((8, 5)) > 0.5).astype("float32")}[kind]
    value = make()
    ours = value(to_backend(pred, backend), to_backend(target, backend))
    grad = value.backward()
    tpred = torch.tensor(pred, device=device, requires_grad=True)
    theirs = TORCH_LOSSES[name](torch.nn)(tpred, torch.tensor(target, device=device))
    theirs.backward()
    np.testing.assert_allclose(float(_host(ours)), theirs.item(), rtol=1e-5)
    np.testing.assert_allclose(_host(grad), tpred.grad.cpu().numpy(), rtol=1e-4, atol=1e-6)


TORCH_OPTIMIZERS = {
    "sgd": lambda optim, p: optim.SGD(p, lr=0.1),
    "sgd_nesterov_wd": lambda optim, p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": lambda optim, p: optim.Adam(p, lr=1e-2),
    "adamw": lambda optim, p: optim.AdamW(p, lr=1e-2),
    "adam_amsgrad": lambda optim, p: optim.Adam(p, lr=1e-2, amsgrad=True),
    "rmsprop": lambda optim, p: optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_pytorch_on_the_device(name, backend, torch_fp32):
    torch = torch_fp32
    from minigrad.torch_compat import to_torch_state_dict
    assert set(TORCH_OPTIMIZERS) == set(OPTIMIZERS), "an optimizer was added without its PyTorch twin"
    device = "cuda" if backend == "cupy" and torch.cuda.is_available() else "cpu"
    mg.set_backend("numpy")
    ours = nn.Linear(6, 3).to(backend)
    theirs = torch.nn.Linear(6, 3).to(device)
    theirs.load_state_dict(to_torch_state_dict(ours))
    opt, torch_opt = OPTIMIZERS[name](ours.parameters()), TORCH_OPTIMIZERS[name](torch.optim, theirs.parameters())
    rng = np.random.default_rng(3)
    for _ in range(4):
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            grad = rng.standard_normal(tp.shape).astype("float32")
            set_grad(p, to_backend(grad, backend))
            tp.grad = torch.tensor(grad, device=device)
        opt.step()
        torch_opt.step()
    for p, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(_host(p.data), tp.detach().cpu().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float64_results_match_numpy_to_1e10(name, backend):
    """In double precision the backend gives NumPy's forward and gradients to ~1e-10 relative
    (only the summation order of its kernels and GEMMs differs)."""
    make, shape = LAYERS[name]
    mg.set_backend("numpy")
    reference = make().to(dtype="float64")
    moved = make().to(dtype="float64")
    moved.load_state_dict(reference.state_dict())
    moved.to(backend)
    x = np.random.default_rng(5).standard_normal(shape)
    y_ref = reference(x)
    y = moved(to_backend(x, backend))
    assert y.dtype == np.float64
    dy = np.random.default_rng(6).standard_normal(y_ref.shape)
    dx_ref = reference.backward(dy)
    dx = moved.backward(to_backend(dy, backend))
    scale = max(float(np.abs(y_ref).max()), 1.0)
    np.testing.assert_allclose(_host(y), y_ref, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(_host(dx), dx_ref, rtol=1e-10, atol=1e-12 * float(np.abs(dx_ref).max()))
    for (pname, p_ref), (_, p) in zip(reference.named_parameters(), moved.named_parameters()):
        np.testing.assert_allclose(_host(p.grad), p_ref.grad, rtol=1e-10,
                                   atol=1e-12 * float(np.abs(p_ref.grad).max()), err_msg=pname)


@pytest.mark.gpu
def test_numpy_input_to_a_moved_layer_fails_loudly():
    if not mg.backend.cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    layer = nn.Conv2d(1, 2, 3).to("cupy")
    with pytest.raises(mg.BackendMismatchError, match="Conv2d.*numpy.*cupy|Conv2d.*cupy.*numpy"):
        layer(np.zeros((1, 1, 5, 5), dtype="float32"))
