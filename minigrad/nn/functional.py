"""``import minigrad.nn.functional as F``, as in PyTorch: the same functions as ``mg.functional`` (defined
there, once), under the same names."""
from ..functional import *  # noqa: F401,F403
from ..functional import TORCH_FORMS

__all__ = list(TORCH_FORMS)
