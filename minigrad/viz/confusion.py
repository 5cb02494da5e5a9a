"""The confusion matrix of a classifier over a data loader: which classes it mistakes for which.

    picture = mg.viz.confusion_matrix(model, test_loader)
    picture.matrix      # (K, K) int64: row = true class, column = predicted class
    picture.accuracy    # trace / total

The model runs under ``mg.no_grad()`` in eval mode (its modes are put back afterwards); each batch's
predictions (argmax over the class axis of the logits (N, K)) and labels are copied to the host once.
"""
from __future__ import annotations

import numpy

from ..nn.grad_mode import no_grad
from ..runtime.backend import backend_of, is_array, to_backend
from .picture import PlotPicture

__all__ = ["confusion_matrix", "ConfusionPicture", "count_confusions"]

MAX_NUMBERED = 30      # above this many classes the cells carry no numbers (they would not fit)


class ConfusionPicture(PlotPicture):
    """A drawn confusion matrix: ``.matrix`` (K, K) int64 (rows true, columns predicted), ``.accuracy``
    (float), ``.num_samples``."""


def count_confusions(labels: numpy.ndarray, predictions: numpy.ndarray, num_classes: int, where: str) -> numpy.ndarray:
    """(K, K) counts of (true, predicted) pairs of two integer arrays (N,); ValueError for a label out of range."""
    for what, values in (("label", labels), ("prediction", predictions)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise ValueError(f"{where}: {what} {int(bad[0])} is out of range for {num_classes} classes "
                             f"(expected 0..{num_classes - 1}); pass num_classes= to say how many there are")
    pairs = labels.astype(numpy.int64) * num_classes + predictions.astype(numpy.int64)
    return numpy.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _batches(model, loader, where):
    try:
        batches = iter(loader)
    except TypeError:
        raise TypeError(f"{where}: loader must be an iterable of (x, y) batches (a DataLoader), "
                        f"got {type(loader).__name__}") from None
    params = model.parameters()
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(f"{where}: each batch must be (x, y, ...), got {type(batch).__name__}")
        x, y = batch[0], batch[1]
        if params and is_array(x):
            x = to_backend(x, backend_of(params[0].data))
        logits = model(x)
        if not is_array(logits) or logits.ndim != 2:
            shape = tuple(logits.shape) if is_array(logits) else type(logits).__name__
            raise ValueError(f"{where}: the model must return logits (N, K), got {shape}")
        labels = numpy.asarray(to_backend(y, "numpy")) if is_array(y) else numpy.asarray(y)
        if labels.ndim == 2:                                           # one-hot labels (N, K)
            labels = labels.argmax(axis=1)
        yield labels.reshape(-1), numpy.asarray(to_backend(logits.argmax(axis=1), "numpy")), logits.shape[1]


def confusion_matrix(model, loader, num_classes: int | None = None) -> ConfusionPicture:
    """Run ``model`` over every (x, y) batch of ``loader`` and count (true class, predicted class) pairs;
    num_classes: K (default: the width of the model's logits (N, K)). Drawn with the counts in the cells."""
    where = "mg.viz.confusion_matrix"
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"{where}: num_classes must be a positive int or None, got {num_classes!r}")
    modes = [(layer, layer.training) for layer in model.modules()]
    matrix = None
    try:
        model.eval()
        with no_grad():
            for labels, predictions, width in _batches(model, loader, where):
                k = num_classes or width
                counts = count_confusions(labels, predictions, k, where)
                matrix = counts if matrix is None else matrix + counts
    finally:
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
    if matrix is None:
        raise ValueError(f"{where}: the loader gave no batches")
    total = int(matrix.sum())
    accuracy = float(numpy.trace(matrix) / total) if total else 0.0
    k = matrix.shape[0]
    title = f"{type(model).__name__}: accuracy {accuracy:.1%} on {total:,} samples"

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
        ticks = range(k) if k <= MAX_NUMBERED else range(0, k, max(1, k // 10))
        ax.set_xticks(list(ticks))
        ax.set_yticks(list(ticks))
        if k <= MAX_NUMBERED:
            threshold = matrix.max() / 2
            size = 9 if k <= 12 else 6
            for (i, j), count in numpy.ndenumerate(matrix):
                ax.text(j, i, str(count), ha="center", va="center", fontsize=size,
                        color="white" if count > threshold else "black")

    side = min(12.0, max(4.5, 0.45 * k + 2))
    picture = ConfusionPicture(draw, (side + 1, side), where, title)
    picture.matrix, picture.accuracy, picture.num_samples = matrix, accuracy, total
    return picture
