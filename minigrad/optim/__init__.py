"""Optimizers (``mg.optim``), separate from backward: they read ``param.grad`` and update ``param.data``.

PyTorch names, signatures, defaults and exact update formulas: SGD, Adam, AdamW, RMSprop;
schedulers in ``mg.optim.lr_scheduler``; gradient clipping ``clip_grad_norm_`` / ``clip_grad_value_``.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler", "clip_grad_norm_", "clip_grad_value_"]
