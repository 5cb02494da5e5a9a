"""Layer pairs that a container runs in a cheaper order, with the same output and gradients bit for bit.

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
stepping through the layers' backward by hand, run unchanged.

The pair is fused only where nobody could tell: both layers of exactly these classes (not subclasses),
used once in the container, without forward hooks or a replaced ``forward`` (``summary`` records each
layer's output that way), MaxPool2d without ``return_indices``, a floating input (anything else takes the
plain order, so errors read as before), and neither ``mg.trace()`` nor ``detect_anomaly`` running (they
show the layers run as written).
"""
from __future__ import annotations

from ..debug.anomaly import is_anomaly_enabled
from ..debug.tracing import is_tracing
from ..runtime.backend import is_array
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
    checks that each layer is used once."""
    return (type(activation) is ReLU and type(pool) is MaxPool2d and not pool.return_indices
            and is_array(x) and x.dtype.kind == "f" and _plain(activation) and _plain(pool)
            and not is_tracing() and not is_anomaly_enabled())


def relu_then_pool(relu, pool, x):
    """pool(relu(x)), computed as relu(pool(x)); each layer left with the cache its backward undoes."""
    y = pool._forward_relu(x)
    relu._cache = (MaskApplied(x), x.dtype)
    return y
