"""Optional dependencies: imported only when a function needs them, with an error naming the extra.

    onnx = require("onnx", "mg.onnx.export")     # ImportError: ... pip install -e ".[onnx]" (from the checkout)
"""
from __future__ import annotations

import importlib

__all__ = ["require", "EXTRA_OF"]

EXTRA_OF = {"onnx": "onnx", "onnxruntime": "onnx", "safetensors": "onnx", "safetensors.numpy": "onnx",
            "matplotlib": "plot", "matplotlib.figure": "plot", "tensorboardX": "tensorboard"}


def require(module: str, where: str):
    """Import and return ``module``; if it is missing, raise ImportError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRA_OF.get(module, module.split(".")[0])
        raise ImportError(f"{where} needs the '{module.split('.')[0]}' package, which is not installed ({exc}); "
                          f'install it with: pip install -e ".[{extra}]" (from the minigrad checkout)') from exc
