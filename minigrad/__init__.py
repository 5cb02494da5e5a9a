"""minigrad: a small deep-learning framework with explicit forward/backward layers.

Convolution is unfold (im2col) + matrix multiply; the same code runs on NumPy (CPU) or
CuPy (CUDA) behind one switch, ``mg.set_backend("numpy" | "cupy")``.
"""
from . import backend, data, functional, nn, optim, threads, torch_compat
from . import models, train
from .backend import BackendMismatchError, BackendUnavailableError, get_backend, set_backend
from .anomaly import AnomalyError, detect_anomaly
from .gradcheck import GradcheckError, gradcheck
from .io import CheckpointError, load, load_into, save
from .kernels.dispatch import get_conv_algorithm, set_conv_algorithm
from .nn.layer import no_grad
from .random import manual_seed
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "backend", "data", "functional", "nn", "optim", "models", "train", "torch_compat", "save", "load", "load_into",
    "CheckpointError", "set_backend", "get_backend", "BackendMismatchError",
    "BackendUnavailableError", "gradcheck", "GradcheckError", "detect_anomaly", "AnomalyError", "manual_seed", "no_grad", "set_num_threads", "get_num_threads",
    "set_conv_algorithm", "get_conv_algorithm", "__version__",
]

from . import distributed  # noqa: E402  (mg.distributed; imports no MPI until mg.distributed.init())
__all__ += ["distributed"]
from . import onnx  # noqa: E402  (mg.onnx; imports the onnx package only when a function needs it)
__all__ += ["onnx"]
