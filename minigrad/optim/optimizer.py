"""Optimizer base class: PyTorch-style parameter groups, state and state dicts.

An optimizer is separate from backward: layers add gradients into ``param.grad``,
``optimizer.step()`` reads them and updates ``param.data`` in place with the array module
of the parameter (NumPy, CuPy, or the strict test backend), so the same code runs everywhere.

State (momentum buffers, Adam moments) is kept per Parameter, on the parameter's backend and
in its dtype. When a model moves (``model.to("cupy")``) the state follows on the next ``step()``.

``state_dict()`` has PyTorch's structure::

    {"state": {0: {"step": 3, "exp_avg": array, ...}, ...},        # index -> per-parameter state
     "param_groups": [{"lr": 0.1, ..., "params": [0, 1]}, ...]}    # options + parameter indices

Indices count parameters across groups in order. ``step`` is a Python int (PyTorch: a 0-d tensor).
"""
from __future__ import annotations

import copy
import math

from ..runtime.backend import BackendMismatchError, backend_of, is_array, to_backend
from ..nn.module_tree import add_hook
from ..nn.parameter import Parameter

__all__ = ["Optimizer", "required"]


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _as_state_array(value, param, where: str, key: str):
    """``value`` (any backend) as a fresh array on ``param``'s backend with ``param``'s dtype."""
    if tuple(value.shape) != param.shape:
        raise ValueError(f"{where}: state '{key}' has shape {tuple(value.shape)} but its parameter has shape "
                         f"{param.shape}")
    return to_backend(value, param.backend).astype(param.dtype, copy=True)


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts) and ``state`` (Parameter -> dict).

    ``params`` is an iterable of Parameters, or of dicts ``{"params": [...], **options}`` whose
    options override ``defaults`` for that group (e.g. a smaller lr for a backbone).
    Subclasses implement ``_update(group, param, grad, state)``.
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list[dict] = []
        if isinstance(params, (Parameter, dict)) or is_array(params):
            raise TypeError(f"{self.name}: params must be an iterable of Parameters or of dicts, got "
                            f"{type(params).__name__}; pass model.parameters()")
        if hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(f"{self.name}: got a {type(params).__name__}; pass model.parameters() instead")
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{self.name}: params must be an iterable of Parameters or of dicts, got "
                            f"{type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{self.name}: got an empty parameter list (nothing to optimize)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- groups ------------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict):
        """Add a group ``{"params": [...], **options}``; missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self.name}: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{self.name}: parameters of a group must be an ordered sequence, not a set")
        params = list(params) if params is not None else []
        if not params:
            raise ValueError(f"{self.name}: parameter group {len(self.param_groups)} is empty")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{self.name}: parameter {i} of group {len(self.param_groups)} is a "
                                f"{type(p).__name__}, not a minigrad Parameter")
            if p.dtype.kind != "f":
                raise TypeError(f"{self.name}: can only optimize floating-point parameters, got dtype {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{self.name}: a parameter appears twice in one parameter group")
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{self.name}: parameter group didn't specify a value of required option {key!r}")
            group.setdefault(key, default)
        self._validate_group(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{self.name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _validate_group(self, group: dict):
        """Check the options of one group; raise ValueError naming the optimizer."""
        lr = group.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0.0 <= lr < math.inf:
            raise ValueError(f"{self.name}: invalid learning rate lr={lr!r} (expected a finite number >= 0)")
        wd = group.get("weight_decay", 0.0)
        if not 0.0 <= wd < math.inf:
            raise ValueError(f"{self.name}: invalid weight_decay={wd!r} (expected a finite number >= 0)")

    # -- the loop ------------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Reset the gradients of this optimizer's parameters, as ``torch.optim.Optimizer.zero_grad``: to None
        (the default; the next backward writes them, and ``step`` skips a parameter still without one) or,
        with ``set_to_none=False``, to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                p.zero_grad(set_to_none)

    def register_step_pre_hook(self, hook):
        """``hook(optimizer, args, kwargs)`` runs before each ``step``, as torch's; returns a handle whose
        ``remove()`` unregisters it."""
        return self._add_step_hook("_step_pre_hooks", hook)

    def register_step_post_hook(self, hook):
        """``hook(optimizer, args, kwargs)`` runs after each ``step``, as torch's; returns a removable handle."""
        return self._add_step_hook("_step_post_hooks", hook)

    def _add_step_hook(self, table, hook):
        return add_hook(self, table, hook, self.name)

    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` (re-evaluates the loss) is optional."""
        for hook in list(self.__dict__.get("_step_pre_hooks", {}).values()):
            hook(self, (closure,) if closure is not None else (), {})
        loss = self._step(closure)
        for hook in list(self.__dict__.get("_step_post_hooks", {}).values()):
            hook(self, (closure,) if closure is not None else (), {})
        return loss

    def _step(self, closure):
        loss = closure() if closure is not None else None
        # Check every gradient before touching any parameter: a bad one leaves the model unchanged.
        work = [(group, p, self._checked_grad(p, index), index)
                for index, (group, p) in enumerate(self._indexed_params())
                if p.grad is not None and p.requires_grad]       # frozen parameters are left unchanged
        for group, p, grad, index in work:
            state = self.state.setdefault(p, {})
            self._follow_param(p, state, index)
            self._update(group, p, grad, state)
        return loss

    def _update(self, group, param, grad, state):
        raise NotImplementedError(f"{self.name} does not implement _update")

    def _indexed_params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def _checked_grad(self, p, index):
        grad = p.grad
        if not is_array(grad):
            raise TypeError(f"{self.name}: gradient of parameter {index} is a {type(grad).__name__}, not an array")
        if backend_of(grad) != backend_of(p.data):
            raise BackendMismatchError(f"{self.name}: parameter {index} lives on {backend_of(p.data)} but its "
                                       f"gradient on {backend_of(grad)}; move them to one backend")
        if tuple(grad.shape) != p.shape:
            raise ValueError(f"{self.name}: gradient of parameter {index} has shape {tuple(grad.shape)} but the "
                             f"parameter has shape {p.shape}")
        if grad.dtype != p.dtype:
            raise TypeError(f"{self.name}: gradient of parameter {index} has dtype {grad.dtype} but the "
                            f"parameter has dtype {p.dtype}")
        return grad

    def _follow_param(self, p, state, index):
        """Move/cast state arrays onto the parameter's backend and dtype (after ``model.to(...)``)."""
        target = backend_of(p.data)
        for key, value in state.items():
            if is_array(value) and (backend_of(value) != target or value.dtype != p.dtype):
                state[key] = _as_state_array(value, p, f"{self.name}: parameter {index}", key)

    # -- state dicts -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"state": {index: {name: array copy | number}}, "param_groups": [{options, "params": [indices]}]}.

        Arrays are copies on the parameter's backend, so later steps do not change a saved state dict.
        """
        index_of, groups = {}, []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
                packed["params"].append(index_of[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index_of[id(p)]] = {k: (v.copy() if is_array(v) else copy.deepcopy(v))
                                              for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Restore options and state from ``state_dict`` (arrays of any backend).

        Everything is checked first (group count and sizes, indices, state shapes); on any
        mismatch a ValueError is raised and this optimizer is left unchanged. State arrays
        are copied onto each parameter's backend and cast to its dtype.
        """
        self._commit_state_dict(self._prepare_state_dict(state_dict))

    def _prepare_state_dict(self, state_dict: dict):
        """Check ``state_dict`` against this optimizer and build (new state, new groups) without applying."""
        where = f"{self.name}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{where}: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved_groups)} parameter groups but the optimizer "
                             f"has {len(self.param_groups)}")
        id_map = {}
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{where}: parameter group {gi} has {len(saved['params'])} parameters in the state "
                                 f"dict but {len(group['params'])} in the optimizer")
            for index, p in zip(saved["params"], group["params"]):
                id_map[int(index)] = p
        new_state = {}
        for index, entry in state_dict["state"].items():
            index = int(index)
            if index not in id_map:
                raise ValueError(f"{where}: state for parameter index {index}, which no parameter group lists")
            p = id_map[index]
            new_state[p] = {k: (_as_state_array(v, p, f"{where}: parameter {index}", k) if is_array(v)
                                else copy.deepcopy(v)) for k, v in entry.items()}
        new_groups = []
        for saved, group in zip(saved_groups, self.param_groups):
            options = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            if isinstance(options.get("betas"), list):
                options["betas"] = tuple(options["betas"])
            merged = {**options, "params": group["params"]}
            self._validate_group(merged)
            new_groups.append(merged)
        return new_state, new_groups

    def _commit_state_dict(self, prepared):
        self.state, self.param_groups = prepared

    def __repr__(self):
        lines = [f"{self.name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"
