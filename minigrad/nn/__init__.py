"""Layers (``mg.nn``): explicit forward/backward, PyTorch names and signatures."""
from .conv import Conv2d
from .layer import Layer, is_grad_enabled, no_grad
from .forward_record import GradientOwnershipError
from .parameter import Parameter
from .linear import Flatten, Linear
from .container import Sequential
from .module_list import ModuleDict, ModuleList
from .graph import Graph
from .merge import Add, Concat, Mul

__all__ = ["Layer", "Parameter", "no_grad", "is_grad_enabled", "GradientOwnershipError", "Conv2d", "Linear", "Flatten",
           "Sequential", "ModuleList", "ModuleDict", "Graph", "Add", "Mul", "Concat"]

from .activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh  # noqa: E402
__all__ += ["ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: E402
__all__ += ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: E402
__all__ += ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
from .misc import Dropout, Identity  # noqa: E402
__all__ += ["Dropout", "Identity"]
from .conv_transpose import ConvTranspose2d  # noqa: E402
__all__ += ["ConvTranspose2d"]
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss  # noqa: E402
__all__ += ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]
# Added layers, one block per family (each block imports its module and extends __all__):
# -- activations --
from .activation_more import (CELU, ELU, SELU, Hardsigmoid, Hardswish, Hardtanh, Mish, PReLU, ReLU6,  # noqa: E402
                              SiLU, Softplus, Softsign, Tanhshrink, Threshold)
__all__ += ["SiLU", "Mish", "Hardswish", "Hardsigmoid", "ELU", "SELU", "CELU", "Softplus", "ReLU6", "Hardtanh",
            "PReLU", "Softsign", "Tanhshrink", "Threshold"]
# -- normalisation --
from .norm_more import GroupNorm, InstanceNorm2d, LocalResponseNorm  # noqa: E402
__all__ += ["GroupNorm", "InstanceNorm2d", "LocalResponseNorm"]
# -- regularisation, resampling and padding --
from .dropout_more import AlphaDropout, Dropout2d  # noqa: E402
from .resample import PixelShuffle, PixelUnshuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402
from .padding import CircularPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d, ZeroPad2d  # noqa: E402
__all__ += ["Dropout2d", "AlphaDropout", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
            "PixelUnshuffle", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"]
# -- pooling and 1-d signals --
from .pooling_more import AdaptiveMaxPool2d, LPPool2d  # noqa: E402
from .conv1d import Conv1d  # noqa: E402
from .pooling1d import AdaptiveAvgPool1d, AdaptiveMaxPool1d, AvgPool1d, LPPool1d, MaxPool1d  # noqa: E402
__all__ += ["AdaptiveMaxPool2d", "LPPool2d", "Conv1d", "MaxPool1d", "AvgPool1d", "LPPool1d",
            "AdaptiveAvgPool1d", "AdaptiveMaxPool1d"]
# -- embeddings and losses --
from .embedding import Embedding  # noqa: E402
from .loss_more import (BCELoss, CosineEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss,  # noqa: E402
                        MultiMarginLoss, SmoothL1Loss, TripletMarginLoss)
__all__ += ["Embedding", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "KLDivLoss", "CosineEmbeddingLoss",
            "MarginRankingLoss", "MultiMarginLoss", "TripletMarginLoss"]
from . import init  # noqa: E402
__all__ += ["init"]
