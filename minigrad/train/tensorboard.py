"""TensorBoard for those who use it: a ``fit`` callback writing event files with tensorboardX.

    mg.train.fit(model, loss, opt, loader, epochs=4, callbacks=[mg.train.TensorBoard("runs/tb")])
    minigrad train --tensorboard runs/tb          # the same from the command line
    tensorboard --logdir runs/tb                  # a stock TensorBoard reads them

What is written, under the step count as TensorBoard's step:

- scalars ``train/loss``, ``train/acc``, ``lr`` at every log point of ``fit`` (``log_every`` steps), and per
  epoch ``epoch/train_loss``, ``epoch/train_acc``, ``epoch/val_loss``, ``epoch/val_acc``, ``epoch/images_per_s``;
- per epoch, a histogram of every parameter (``weights/<name>``) and of its gradient of the epoch's last step
  (``grads/<name>``);
- per epoch, the first convolution's filters as one image (``filters/<layer name>``): a grid of one tile per
  output channel (the mean over input channels, or RGB for 3), each scaled to its own range.

Arrays on a GPU are copied to the host to be written. tensorboardX is the optional extra ``[tensorboard]``;
without it the callback's constructor says what to install.
"""
from __future__ import annotations

import math

import numpy

from ..runtime.backend import to_backend
from ..runtime.optional import require
from .state import Callback

__all__ = ["TensorBoard", "filter_grid"]


def filter_grid(weight) -> numpy.ndarray:
    """A conv weight (O, C, kh, kw) -> one image (3, rows*(kh+1)+1, cols*(kw+1)+1) in [0, 1]: a tile per output
    channel (RGB for C == 3, else the mean over C in grey), each scaled to its own min..max, on a white grid."""
    w = numpy.asarray(to_backend(weight, "numpy"), dtype=numpy.float64)
    out_channels, in_channels, kh, kw = w.shape
    tiles = w if in_channels == 3 else numpy.repeat(w.mean(axis=1, keepdims=True), 3, axis=1)   # (O, 3, kh, kw)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    tiles = (tiles - low) / numpy.where(span > 0, span, 1.0)
    cols = math.ceil(math.sqrt(out_channels))
    rows = math.ceil(out_channels / cols)
    grid = numpy.ones((3, rows * (kh + 1) + 1, cols * (kw + 1) + 1))
    for index in range(out_channels):
        top, left = 1 + (index // cols) * (kh + 1), 1 + (index % cols) * (kw + 1)
        grid[:, top:top + kh, left:left + kw] = tiles[index]
    return grid


def _host(array) -> numpy.ndarray:
    return numpy.asarray(to_backend(array, "numpy"))


class TensorBoard(Callback):
    """Write scalars, histograms and the first convolution's filters for TensorBoard (see the module text).

    log_dir: the directory of the event files (created); histograms / filters: turn those off.
    """

    def __init__(self, log_dir, histograms: bool = True, filters: bool = True):
        tensorboardx = require("tensorboardX", "mg.train.TensorBoard")
        self.writer = tensorboardx.SummaryWriter(str(log_dir))
        self.log_dir, self.histograms, self.filters = str(log_dir), histograms, filters

    def on_log(self, state, logs):
        for key, tag in (("loss", "train/loss"), ("acc", "train/acc"), ("lr", "lr")):
            if logs.get(key) is not None:
                self.writer.add_scalar(tag, float(logs[key]), state.step)

    def on_epoch_end(self, state, logs):
        step = state.step
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "lr"):
            if logs.get(key) is not None:
                self.writer.add_scalar(f"epoch/{key}", float(logs[key]), step)
        if self.histograms:
            for name, param in state.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", _host(param.data), step)
                if param.grad is not None:
                    self.writer.add_histogram(f"grads/{name}", _host(param.grad), step)
        if self.filters:
            conv = next(((name, layer) for name, layer in state.model.named_modules()
                         if type(layer).__name__ == "Conv2d"), None)
            if conv is not None:
                self.writer.add_image(f"filters/{conv[0] or 'conv'}", filter_grid(conv[1].weight.data), step)
        self.writer.flush()

    def on_train_end(self, state):
        self.writer.close()
