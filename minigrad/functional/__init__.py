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
from .activation_forms import (celu, elu, hardsigmoid, hardswish, hardtanh, mish, prelu, relu6,  # noqa: E402
                              selu, silu, softplus, softsign, tanhshrink, threshold)
hardswish, hardsigmoid, relu6, hardtanh, prelu, softsign, tanhshrink, threshold = (guarded(f, 3) for f in (
    hardswish, hardsigmoid, relu6, hardtanh, prelu, softsign, tanhshrink, threshold))
elu, selu, celu, mish = (guarded(f, 4) for f in (elu, selu, celu, mish))
silu, softplus = guarded(silu, 5), guarded(softplus, 5)     # (measured peaks: 4.25 inputs)
TORCH_FORMS += ["silu", "mish", "hardswish", "hardsigmoid", "elu", "selu", "celu", "softplus", "relu6", "hardtanh",
                "prelu", "softsign", "tanhshrink", "threshold"]
# -- normalisation --
from .norm_more import group_norm, instance_norm, local_response_norm  # noqa: E402
group_norm, instance_norm, local_response_norm = (guarded(f, 4) for f in (group_norm, instance_norm,
                                                                          local_response_norm))
TORCH_FORMS += ["group_norm", "instance_norm", "local_response_norm"]
# -- regularisation, resampling and padding --
from .padding import pad  # noqa: E402
from .resample import interpolate, pixel_shuffle, pixel_unshuffle  # noqa: E402
pixel_shuffle, pixel_unshuffle = guarded(pixel_shuffle, 2), guarded(pixel_unshuffle, 2)   # (pad, interpolate: exact)
TORCH_FORMS += ["pad", "interpolate", "pixel_shuffle", "pixel_unshuffle"]
# -- pooling and 1-d signals --
from .pool_more import adaptive_max_pool2d, lp_pool2d  # noqa: E402
from .signal1d import (adaptive_avg_pool1d, adaptive_max_pool1d, avg_pool1d, conv1d, lp_pool1d,  # noqa: E402
                       max_pool1d)
lp_pool2d, lp_pool1d = guarded(lp_pool2d, 3), guarded(lp_pool1d, 3)   # x^p, averages, output (the others: exact)
TORCH_FORMS += ["adaptive_max_pool2d", "lp_pool2d", "conv1d", "max_pool1d", "avg_pool1d", "lp_pool1d",
                "adaptive_avg_pool1d", "adaptive_max_pool1d"]
# -- embeddings and losses --
from .embedding import embedding  # noqa: E402
from .loss_more import (binary_cross_entropy, huber_loss, kl_div, l1_loss, margin_ranking_loss,  # noqa: E402
                        smooth_l1_loss)
from .loss_pairs import cosine_embedding_loss, multi_margin_loss, triplet_margin_loss  # noqa: E402
l1_loss, smooth_l1_loss, huber_loss, margin_ranking_loss, multi_margin_loss = (
    guarded(f, 3) for f in (l1_loss, smooth_l1_loss, huber_loss, margin_ranking_loss, multi_margin_loss))
binary_cross_entropy, kl_div, cosine_embedding_loss, triplet_margin_loss = (
    guarded(f, 4) for f in (binary_cross_entropy, kl_div, cosine_embedding_loss, triplet_margin_loss))
TORCH_FORMS += ["embedding", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "kl_div",
                "cosine_embedding_loss", "margin_ranking_loss", "multi_margin_loss", "triplet_margin_loss"]

__all__ = TORCH_FORMS + ["conv2d_input", "conv2d_weight", "pad2d", "pad2d_backward", "erf", "erfc"]
