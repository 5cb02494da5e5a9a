"""Layer pairs that a container runs in a cheaper order, with the same output, input and parameter gradients bit for
bit.

ReLU followed by MaxPool2d runs as MaxPool2d, then ReLU on the pooled output:

    forward:  y = relu(max_pool(x))            instead of  max_pool(relu(x))
    backward: MaxPool2d.backward masks dy with the ReLU it ran, then routes it; ReLU.backward passes it on

The two are the same function, bit for bit. ReLU is monotone, so the largest relu(x) of a window is relu of
its largest x: where the maximum is positive it is the same element (ties resolved in the same order,
NaN where it was), and where it is <= 0 both give +0 (minigrad's ReLU maps every x <= 0 to +0). The
gradient reaches the same element: in a window whose maximum is positive, the argmax of x is the argmax of
relu(x) and its ReLU mask passes dy; in a window whose maximum is <= 0 both orders give +0 (the plain
order masks the element, the fused one masks dy before routing it). Sums at an element that several
windows route to add the same terms in the same order. The ReLU's work and its mask shrink to the pooled
elements: a quarter with a 2x2 pool.

Both layers keep caches that their usual backward order undoes: the pool's holds the ReLU's mask (of the
pooled output) and applies it first, the ReLU's says that its mask was applied (its backward checks the
gradient's shape, dtype and backend and returns it). So a Sequential's or Graph's backward, and a user
stepping through the layers' backward by hand, give the same input and parameter gradients, bit for bit. What
differs is the gradient between the two: MaxPool2d.backward returns it already masked, where the layers run
one by one return it unmasked, routed to the first element of a window whose maximum is <= 0 (its ReLU
backward then zeroes it there).

The pair is fused only where the result is the same: both layers of exactly these classes (not subclasses),
used once in the container, without forward hooks or a replaced ``forward`` (``summary`` records each
layer's output that way), MaxPool2d without ``return_indices`` and without both padding and dilation (a
window could then lie in the padding alone), a float32 or float64 NumPy input (anything else takes the plain
order, so errors read as before), and neither ``mg.trace()`` nor ``detect_anomaly`` running (they show the
layers run as written).
"""
from __future__ import annotations

from ..debug.anomaly import is_anomaly_enabled
from ..debug.tracing import is_tracing
from ..kernels.cpu_runtime import supported
from .activation import MaskApplied, ReLU
from .pooling import MaxPool2d

__all__ = ["fuses", "relu_then_pool"]


def _plain(layer) -> bool:
    """No forward hooks and no instance-level forward/backward (summary's recording wrapper)."""
    state = layer.__dict__
    return not (state.get("_forward_pre_hooks") or state.get("_forward_hooks")
                or "forward" in state or "backward" in state)


def fuses(activation, pool, x) -> bool:
    """Whether ``pool(activation(x))`` may run as ``relu_then_pool`` (see the module docstring); the caller
    checks that each layer is used once. ``supported(x)``: a float32/float64 NumPy array, where maximum(x, 0.0)
    gives +0 for every x <= 0 (the premise, tested); float16's keeps -0, CuPy's is not measured here."""
    return (type(activation) is ReLU and type(pool) is MaxPool2d and not pool.return_indices
            and supported(x) and _every_window_inside(pool)
            and _plain(activation) and _plain(pool) and not is_tracing() and not is_anomaly_enabled())


def _every_window_inside(pool) -> bool:
    """Every pooling window holds at least one input element: true without padding (a window starts inside the
    input) or without dilation (padding is at most half the kernel). With both, a window can fall in the padding
    alone, where max_pool(relu(x)) is -inf and relu(max_pool(x)) would be 0."""
    return pool.padding == (0, 0) or pool.dilation == (1, 1)


def relu_then_pool(relu, pool, x):
    """pool(relu(x)), computed as relu(pool(x)); each layer left with the cache its backward undoes."""
    y = pool._forward_relu(x)
    relu._cache = (MaskApplied(x), x.dtype)
    return y
