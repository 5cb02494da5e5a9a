"""``minigrad bench --train``: LeNet-5 trained end to end on MNIST in minigrad and in PyTorch.

Both sides use ``minigrad train``'s defaults (``TRAIN_DEFAULTS``: LeNet-5, Adam with a one-cycle
schedule peaking at lr 0.004, batch 128, 4 epochs, seed 0; ``--quick``: 1 epoch), the same normalized
MNIST arrays, and the same number of threads. minigrad trains with ``mg.train.fit`` (what ``minigrad
train`` runs); PyTorch as a user would write it: ``TensorDataset`` + ``DataLoader(shuffle=True)``, a
``torch.nn.Sequential`` LeNet-5, ``torch.optim.Adam`` + ``OneCycleLR``, ``cross_entropy``. Reported:
training seconds (the epochs' loops only, no evaluation), images/s and test accuracy of each, and the
time ratio. The two take turns epoch by epoch (minigrad's epoch, a pause, PyTorch's epoch, a pause, ...),
so a machine whose speed drifts during the run slows both alike.
"""
from __future__ import annotations

import time

import numpy as np

# The defaults of `minigrad train` (cli.DEFAULTS / DEFAULT_LR; a test checks they agree).
TRAIN_DEFAULTS = {"model": "lenet5", "epochs": 4, "batch_size": 128, "optimizer": "adam", "lr": 4e-3,
                  "scheduler": "onecycle", "seed": 0}


def mnist_arrays(limit_train=None, limit_test=None):
    """(train images, train labels, test images, test labels): normalized float32 (N, 1, 28, 28) and int64."""
    from ..data import MNIST
    arrays = []
    for split, limit in (("train", limit_train), ("test", limit_test)):
        data = MNIST(split, limit=limit)
        images, labels = data[np.arange(len(data))]               # (N, 1, 28, 28) float32, (N,)
        arrays += [np.ascontiguousarray(images), labels.astype(np.int64)]
    return tuple(arrays)


def train_minigrad(arrays, epochs, config=TRAIN_DEFAULTS, after_epoch=None) -> dict:
    """Train with mg.train.fit; after_epoch() runs after each epoch, outside the timed loop."""
    import minigrad as mg
    from ..data import ArrayDataset, DataLoader
    train_x, train_y, test_x, test_y = arrays
    mg.manual_seed(config["seed"])
    model = mg.models.lenet5()
    loader = DataLoader(ArrayDataset(train_x, train_y), batch_size=config["batch_size"], shuffle=True,
                        seed=config["seed"])
    optimizer = mg.optim.Adam(model.parameters(), lr=config["lr"])
    scheduler = mg.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=epochs * len(loader))
    callbacks = [lambda state, logs: after_epoch()] if after_epoch is not None else []
    history = mg.train.fit(model, mg.nn.CrossEntropyLoss(), optimizer, loader, epochs, scheduler=scheduler,
                           callbacks=callbacks, progress=False)
    test = DataLoader(ArrayDataset(test_x, test_y), batch_size=1000)
    accuracy = mg.train.evaluate(model, test)["accuracy"]
    return {"train_seconds": float(sum(history["seconds"])), "test_accuracy": float(accuracy)}


def train_torch(arrays, epochs, config=TRAIN_DEFAULTS):
    """A generator: trains one epoch per next(), then returns the result dict (StopIteration.value)."""
    import torch
    from torch import nn
    train_x, train_y, test_x, test_y = arrays
    from .cases import torch_lenet5
    torch.manual_seed(config["seed"])
    model = torch_lenet5(torch)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=config["batch_size"], shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=epochs * len(loader))
    seconds = 0.0
    for _ in range(epochs):
        yield
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
        seconds += time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(x).argmax(1) for x in torch.from_numpy(test_x).split(1000)])
    accuracy = (predicted.numpy() == test_y).mean()
    return {"train_seconds": seconds, "test_accuracy": float(accuracy)}


def run_training(quick=False, pause=0.25, use_torch=True, limit_train=None, limit_test=None) -> dict:
    """Train both, epochs taking turns (minigrad first); return the report's "train_e2e" section."""
    epochs = 1 if quick else TRAIN_DEFAULTS["epochs"]
    arrays = mnist_arrays(limit_train, limit_test)
    images = len(arrays[0]) * epochs
    results = {"config": {**TRAIN_DEFAULTS, "epochs": epochs}, "train_images": len(arrays[0]),
               "test_images": len(arrays[2]), "protocol": "epochs alternate: minigrad, pause, PyTorch, pause"}
    torch_run = train_torch(arrays, epochs) if use_torch else None
    torch_result = {}

    def torch_epoch():
        time.sleep(pause)
        try:
            next(torch_run)                      # runs the previous turn's epoch, stops before the next one
        except StopIteration as done:
            torch_result.update(done.value)
        time.sleep(pause)

    if torch_run is not None:
        next(torch_run)                          # build the model and stop before its first epoch
    time.sleep(pause)
    results["minigrad"] = train_minigrad(arrays, epochs, after_epoch=torch_epoch if torch_run is not None else None)
    if torch_run is not None:
        results["torch"] = torch_result          # its last epoch and evaluation ran after minigrad's last epoch
    for name in ("minigrad", "torch"):
        if name in results:
            results[name]["images_per_s"] = images / results[name]["train_seconds"]
    if "torch" in results:
        results["ratio"] = results["minigrad"]["train_seconds"] / results["torch"]["train_seconds"]
    return results


def format_training(results) -> str:
    lines = [f"\n== train end to end: LeNet-5, MNIST {results['train_images']} training images, "
             f"{results['config']['epochs']} epoch(s), Adam + one-cycle (peak {results['config']['lr']}), "
             f"batch {results['config']['batch_size']} ==",
             f"{'library':<10} {'train s':>8} {'images/s':>9} {'test accuracy':>14}"]
    for name in ("minigrad", "torch"):
        if name in results:
            r = results[name]
            lines.append(f"{name:<10} {r['train_seconds']:8.1f} {r['images_per_s']:9.0f} {100 * r['test_accuracy']:13.2f}%")
    if results.get("ratio"):
        lines.append(f"training time minigrad / PyTorch = {results['ratio']:.2f}")
    return "\n".join(lines)
