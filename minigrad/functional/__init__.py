"""Stateless functions on arrays (``mg.functional``, also ``minigrad.nn.functional``): one namespace.

- ``torch.nn.functional``'s forms, forward only: ``relu``, ``leaky_relu``, ``gelu``, ``sigmoid``, ``tanh``,
  ``softmax``, ``log_softmax``, ``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d``, ``linear``,
  ``cross_entropy``, ``nll_loss``, ``mse_loss``, ``binary_cross_entropy_with_logits``, ``conv2d``;
- the convolution kernels and their gradients (``unfold``, ``fold``, ``conv2d_input``, ``conv2d_weight``,
  as ``torch.nn.functional`` / ``torch.nn.grad``), padding and ``erf``.

The layers of ``mg.nn`` run the same code (each module here holds a layer's forward and backward math),
so ``F.relu(x)`` equals ``mg.nn.ReLU()(x)`` bit for bit. There is no autograd tape: to train through an
operation, use its layer, whose ``backward`` gives the gradients.

    y = F.relu(x)                                   # x: any shape -> same shape
    p = F.softmax(logits, dim=1)                    # (N, C) -> (N, C), rows sum to 1
    y = F.max_pool2d(x, 2)                          # (N, C, H, W) -> (N, C, H/2, W/2)
    y = F.linear(x, weight, bias)                   # (*, in) @ (out, in).T + (out,) -> (*, out)
    loss = F.cross_entropy(logits, target)          # 0-d array (reduction='mean')
"""
from .activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv2d, conv2d_input, conv2d_weight, fold, unfold
from .linear import linear
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .padding import pad2d, pad2d_backward
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .special import erf, erfc
from ..runtime.memory import guarded

# The forms whose output and temporaries follow their inputs' size check it against the memory guard first
# (about how many input-sized arrays each makes); the others (convolutions, pooling, unfold/fold, linear,
# pad2d) compute their exact bytes themselves.
relu, leaky_relu, sigmoid, tanh, nll_loss = (guarded(f, 2) for f in (relu, leaky_relu, sigmoid, tanh, nll_loss))
softmax, log_softmax, cross_entropy, mse_loss = (guarded(f, 3) for f in (softmax, log_softmax, cross_entropy,
                                                                         mse_loss))
gelu, erf, erfc, binary_cross_entropy_with_logits = (guarded(f, 4) for f in (gelu, erf, erfc,
                                                                            binary_cross_entropy_with_logits))

TORCH_FORMS = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "max_pool2d",
               "avg_pool2d", "adaptive_avg_pool2d", "linear", "cross_entropy", "nll_loss", "mse_loss",
               "binary_cross_entropy_with_logits", "conv2d", "unfold", "fold"]

# torch.nn.functional forms of the added layers, one block per family (each extends TORCH_FORMS):
# -- activations --
# -- normalisation --
# -- regularisation, resampling and padding --
# -- pooling and 1-d signals --
# -- embeddings and losses --

__all__ = TORCH_FORMS + ["conv2d_input", "conv2d_weight", "pad2d", "pad2d_backward", "erf", "erfc"]
