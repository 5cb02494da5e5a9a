"""minigrad: a small deep-learning framework with explicit forward/backward layers.

Convolution is unfold (im2col) + matrix multiply; the same code runs on NumPy (CPU) or
CuPy (CUDA) behind one switch, ``mg.set_backend("numpy" | "cupy")``.

The packages, from the bottom up (docs/architecture.md): ``runtime`` (backend, threads, memory guard,
random state, checks) and ``debug`` (gradcheck, detect_anomaly); ``kernels``; ``functional``, ``data`` and
``io``; ``nn``, ``optim``, ``onnx`` and ``distributed``; ``train``, ``bench`` and ``viz`` (pictures of a
network); ``cli`` on top.
"""
import sys

from . import data, debug, functional, io, nn, optim, runtime, train
from . import models
from .runtime import backend, random, threads
from .debug import anomaly
from .io import torch_compat
from .runtime.backend import BackendMismatchError, BackendUnavailableError, get_backend, set_backend
from .debug import AnomalyError, GradcheckError, detect_anomaly, gradcheck, trace
from .io import CheckpointError, load, load_into, save
from .kernels.dispatch import get_conv_algorithm, set_conv_algorithm
from .nn.grad_mode import no_grad
from .runtime.random import manual_seed
from .runtime.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

# Modules that users import by their path (``from minigrad.backend import get_array_module``) and that now
# live inside a package: the same module objects under their public names.
PUBLIC_MODULES = {"backend": backend, "threads": threads, "random": random, "anomaly": anomaly,
                  "torch_compat": torch_compat}
for _name, _module in PUBLIC_MODULES.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module

__all__ = [
    "backend", "data", "debug", "functional", "io", "nn", "optim", "models", "runtime", "train", "torch_compat",
    "save", "load", "load_into", "CheckpointError", "set_backend", "get_backend", "BackendMismatchError",
    "BackendUnavailableError", "gradcheck", "GradcheckError", "detect_anomaly", "AnomalyError", "trace", "manual_seed",
    "no_grad", "set_num_threads", "get_num_threads", "set_conv_algorithm", "get_conv_algorithm", "__version__",
]

from . import distributed  # noqa: E402  (mg.distributed; imports no MPI until mg.distributed.init())
__all__ += ["distributed"]
from . import onnx  # noqa: E402  (mg.onnx; imports the onnx package only when a function needs it)
__all__ += ["onnx"]
from . import viz  # noqa: E402  (mg.viz; imports matplotlib only when a picture is drawn)
from .viz import report  # noqa: E402  (mg.report(run_dir): run_dir/report.html, the run in one offline page)
__all__ += ["viz", "report"]
