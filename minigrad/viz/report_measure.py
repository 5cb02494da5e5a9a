"""What the run report measures on the model itself: per-layer times and gradient norms, test predictions.

    rows = layer_profile(model, batches, loss)    # {node name: LayerRow}: forward/backward medians, grad norm
    pred = predict(model, loader, limit=1000)     # Predictions: labels, predicted, confidence, images

``layer_profile`` runs a few training steps without the optimizer (forward, loss, ``backward_parameters``
as ``mg.train.fit`` does) and times every top-level layer use: the forward with forward hooks, the backward
by wrapping the layer's ``backward`` / ``backward_parameters`` for the duration. The gradient norm of a layer
is the 2-norm of all its parameters' gradients after the last batch (one batch at the model's weights).
The model should be a copy: its caches, gradients and BatchNorm running statistics change (the global random
state is put back, so Dropout does not shift the caller's stream).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import numpy

from ..nn.graph import Graph
from ..nn.grad_mode import no_grad
from ..runtime import random as mg_random
from ..runtime.backend import backend_of, is_array, is_gpu_array, to_backend
from .confusion import count_confusions

__all__ = ["LayerRow", "Predictions", "layer_profile", "predict", "top_level_layers", "keep_random_state"]


@dataclass
class LayerRow:
    """One top-level layer use: forward and backward seconds per batch (each run), its gradient 2-norm."""

    forward: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    grad_norm: float | None = None

    @property
    def forward_median(self):
        return statistics.median(self.forward) if self.forward else None

    @property
    def backward_median(self):
        return statistics.median(self.backward) if self.backward else None


class keep_random_state:
    """``with keep_random_state():`` minigrad's global random state is the same after the block as before."""

    def __enter__(self):
        self.state = mg_random.get_state()

    def __exit__(self, *exc):
        mg_random.set_state(self.state)


def top_level_layers(model) -> list:
    """The distinct layers the report's table has rows for: a Graph's node layers, a container's children,
    or the model itself."""
    if isinstance(model, Graph):
        layers = [layer for _, layer, _ in model.nodes]
    else:
        layers = [layer for _, layer in model.named_children()] or [model]
    unique = {}
    for layer in layers:
        unique.setdefault(id(layer), layer)
    return list(unique.values())


def _sync(value):
    """Wait for the GPU (a one-element copy to the host) so that a clock reading covers the work."""
    first = value[0] if isinstance(value, (tuple, list)) and value else value
    if is_array(first) and is_gpu_array(first):
        to_backend(first.ravel()[:1], "numpy")


def _key(layer, model) -> str:
    return (layer.name or type(layer).__name__) if layer is not model else "model"


def layer_profile(model, batches, loss) -> dict:
    """{node name: LayerRow} over ``batches`` ([(x, y), ...]); the first batch is a warm-up, not counted.
    Returns {} when there are no batches."""
    if not batches:
        return {}
    layers = top_level_layers(model)
    rows, starts, counting = {}, {}, [False]

    def before(layer, args):
        starts.setdefault(id(layer), []).append(time.perf_counter())

    def after(layer, args, output):
        _sync(output)
        elapsed = time.perf_counter() - starts[id(layer)].pop()
        if counting[0]:
            rows.setdefault(_key(layer, model), LayerRow()).forward.append(elapsed)

    def timed(layer, method):
        def run(grad):
            start = time.perf_counter()
            out = method(grad)
            _sync(out if out is not None else [p.grad for p in layer.parameters() if p.grad is not None][-1:])
            if counting[0]:
                rows.setdefault(_key(layer, model), LayerRow()).backward.append(time.perf_counter() - start)
            return out
        return run

    handles, wrapped = [], []
    for layer in layers:
        handles += [layer.register_forward_pre_hook(before), layer.register_forward_hook(after)]
        if layer is not model:
            for name in ("backward", "backward_parameters"):
                object.__setattr__(layer, name, timed(layer, getattr(layer, name)))
                wrapped.append((layer, name))
    modes = [(layer, layer.training) for layer in model.modules()]
    try:
        model.train()
        with keep_random_state():
            for index, (x, y) in enumerate(batches):
                counting[0] = index > 0 or len(batches) == 1
                model.zero_grad()
                out = model(x)
                loss(out, y)
                model.backward_parameters(loss.backward())
    finally:
        for handle in handles:
            handle.remove()
        for layer, name in wrapped:
            layer.__dict__.pop(name, None)
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
        model.clear_cache()
    for layer in layers:
        grads = [p.grad for p in layer.parameters() if p.grad is not None]
        if grads:
            total = sum(float((to_backend(g, "numpy").astype(numpy.float64) ** 2).sum()) for g in grads)
            rows.setdefault(_key(layer, model), LayerRow()).grad_norm = math.sqrt(total)
    model.zero_grad()
    return rows


@dataclass
class Predictions:
    """The model's answers on test images: labels, predicted, confidence (softmax max), matrix (K, K);
    images: the input of each wrong answer kept, {index: (C, H, W) host array}."""

    labels: numpy.ndarray
    predicted: numpy.ndarray
    confidence: numpy.ndarray
    matrix: numpy.ndarray
    images: dict

    @property
    def count(self) -> int:
        return int(self.labels.size)

    @property
    def accuracy(self) -> float:
        return float((self.labels == self.predicted).mean()) if self.count else 0.0

    def most_confident_wrong(self, n: int) -> list:
        """[(index, true, predicted, confidence)] of the n wrong answers given with the highest confidence."""
        wrong = numpy.flatnonzero(self.labels != self.predicted)
        order = wrong[numpy.argsort(-self.confidence[wrong], kind="stable")][:n]
        return [(int(i), int(self.labels[i]), int(self.predicted[i]), float(self.confidence[i])) for i in order]


def predict(model, loader, limit: int) -> Predictions | None:
    """Run ``model`` (eval mode, no_grad) over ``loader``'s (x, y) batches up to ``limit`` images; None when the
    loader gives none or the model does not return logits (N, K)."""
    labels, predicted, confidence, images, seen, width = [], [], [], {}, 0, None
    modes = [(layer, layer.training) for layer in model.modules()]
    params = model.parameters()
    try:
        model.eval()
        with no_grad():
            for x, y in loader:
                if seen >= limit:
                    break
                x, y = x[:limit - seen], y[:limit - seen]
                if params:
                    x = to_backend(x, backend_of(params[0].data))
                logits = model(x)
                if not is_array(logits) or logits.ndim != 2:
                    return None
                z = numpy.asarray(to_backend(logits, "numpy"), dtype=numpy.float64)
                z = numpy.exp(z - z.max(axis=1, keepdims=True))
                p = z / z.sum(axis=1, keepdims=True)
                label = numpy.asarray(to_backend(y, "numpy")).reshape(-1).astype(numpy.int64)
                guess = p.argmax(axis=1)
                host_x = numpy.asarray(to_backend(x, "numpy"))
                for i in numpy.flatnonzero(label != guess):
                    images[seen + int(i)] = host_x[i]
                labels.append(label)
                predicted.append(guess)
                confidence.append(p.max(axis=1))
                seen += len(label)
                width = p.shape[1]
    finally:
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
    if not labels:
        return None
    labels, predicted = numpy.concatenate(labels), numpy.concatenate(predicted)
    k = max(width, int(labels.max()) + 1)
    matrix = count_confusions(labels, predicted, k, "mg.viz.report")
    return Predictions(labels, predicted, numpy.concatenate(confidence), matrix, images)
