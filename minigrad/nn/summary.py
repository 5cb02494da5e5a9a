"""Model summary: output shape and parameter count of every layer, for a given input shape.

    model.summary((1, 1, 28, 28))      # prints the table and returns a Summary

A forward pass on zeros runs under ``no_grad`` with every layer temporarily in eval mode
(so BatchNorm running statistics and the random generator are left untouched); each layer's
forward is wrapped for the duration to record its output shape. A layer shared by several
graph nodes gets one row per use, its parameters counted at the first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.backend import active_module, get_array_module
from .grad_mode import no_grad

__all__ = ["Summary", "summary"]


@dataclass
class Summary:
    """rows: (depth, name, type, output shape, parameter count or None for a repeated use)."""

    model_type: str
    input_shapes: list
    rows: list = field(default_factory=list)
    total_params: int = 0
    param_bytes: int = 0
    output_shape: object = None

    def table(self) -> str:
        headers = ("Layer", "Type", "Output shape", "Params")
        body = [(f"{'  ' * depth}{name}", kind, _shape_text(shape),
                 "shared" if params is None else f"{params:,}")
                for depth, name, kind, shape, params in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
        line = lambda cells: "  ".join(  # noqa: E731
            c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        rule = "-" * len(line(headers))
        inputs = ", ".join(_shape_text(s) for s in self.input_shapes)
        out = [f"{self.model_type} summary for input {inputs}", rule, line(headers), rule]
        out += [line(r) for r in body]
        out += [rule, f"Output shape: {_shape_text(self.output_shape)}",
                f"Total params: {self.total_params:,}",
                f"Params size: {self.param_bytes / 2 ** 20:.2f} MiB"]
        return "\n".join(out)

    __str__ = table
    __repr__ = table


def _shape_text(shape) -> str:
    if isinstance(shape, list):
        return ", ".join(_shape_text(s) for s in shape)
    return "(" + ", ".join(str(d) for d in shape) + ")" if isinstance(shape, tuple) else str(shape)


def _shape_of(out):
    if isinstance(out, (tuple, list)):
        return [_shape_of(o) for o in out]
    return tuple(int(d) for d in out.shape) if hasattr(out, "shape") else type(out).__name__


def summary(model, input_shape, dtype=None, verbose: bool = True) -> Summary:
    """Run ``model`` on zeros of ``input_shape`` (a tuple, or a list of tuples for several
    inputs) and tabulate name, type, output shape and parameter count of every layer.

    dtype: of the zeros (default: the model's parameter dtype); verbose: print the table.
    """
    multi = isinstance(input_shape, list) or (
        isinstance(input_shape, tuple) and input_shape and isinstance(input_shape[0], (tuple, list)))
    shapes = [tuple(s) for s in input_shape] if multi else [tuple(input_shape)]
    for shape in shapes:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ValueError(f"{model.label}.summary: input_shape must be a tuple of positive ints (or a list of "
                             f"such tuples), got {input_shape!r}")
    params = model.parameters()
    xp = get_array_module(params[0].data) if params else active_module()
    dtype = dtype or (params[0].dtype if params else "float32")
    inputs = [xp.zeros(shape, dtype=dtype) for shape in shapes]

    result = Summary(type(model).__name__, shapes)
    depth = [0]
    counted = set()
    modules = [m for m in model.modules() if m is not model] or [model]   # a lone layer: one row
    modes = [(m, m.training) for m in model.modules()]

    def wrap(layer, forward):
        def recording_forward(*args):
            row = [depth[0], layer.name or type(layer).__name__, type(layer).__name__, None, None]
            if id(layer) not in counted:
                counted.add(id(layer))
                row[4] = layer.num_parameters()
            result.rows.append(row)
            depth[0] += 1
            try:
                out = forward(*args)
            finally:
                depth[0] -= 1
            row[3] = _shape_of(out)
            return out
        return recording_forward

    for layer in modules:
        layer.__dict__["forward"] = wrap(layer, layer.forward)   # instance attribute shadows the method
    try:
        model.eval()
        with no_grad():
            out = model(*inputs)
    finally:
        for layer in modules:
            layer.__dict__.pop("forward", None)
        for layer, mode in modes:
            object.__setattr__(layer, "training", mode)
    result.rows = [tuple(row) for row in result.rows]
    result.output_shape = _shape_of(out)
    result.total_params = sum(p.size for p in params)
    result.param_bytes = sum(p.size * p.dtype.itemsize for p in params)
    if verbose:
        print(result.table())
    return result
