"""Files (``mg.io``): checkpoints, safetensors weights and PyTorch state dicts; every write atomic.

    mg.save(model, "ckpt.npz", optimizer=opt)     # one .npz, no pickle; loading is bounded and checked
    ckpt = mg.load("ckpt.npz"); mg.load_into("ckpt.npz", model, optimizer=opt)
    mg.io.save_safetensors(model, "w.safetensors") # the weights, in PyTorch's names and layouts
    mg.torch_compat.from_torch_state_dict(torch_model.state_dict())

Modules: ``checkpoint`` (mg.save / mg.load), ``checkpoint_read`` (the verified reading of one), ``tree``
(dicts of state dicts and values in a checkpoint), ``safetensors_file``, ``torch_compat``, ``archive``
(bounded reading of .npz members), ``regular_file`` (loaders open only regular files) and ``atomic_write``
(temp file, fsync, rename).
"""
from . import archive, atomic_write, checkpoint, checkpoint_read, regular_file, safetensors_file, torch_compat, tree
from .checkpoint import FORMAT, VERSION, Checkpoint, CheckpointError, load, load_into, save
from .safetensors_file import SafetensorsError, load_safetensors, save_safetensors

__all__ = ["CheckpointError", "Checkpoint", "save", "load", "load_into", "FORMAT", "VERSION", "save_safetensors",
           "load_safetensors", "SafetensorsError", "torch_compat", "checkpoint", "safetensors_file", "archive",
           "atomic_write"]
