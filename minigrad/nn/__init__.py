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
# -- normalisation --
# -- regularisation, resampling and padding --
# -- pooling and 1-d signals --
# -- embeddings and losses --
from . import init  # noqa: E402
__all__ += ["init"]
