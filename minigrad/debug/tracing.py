"""A step-by-step trace of every layer's forward and backward: the tool for "why are my shapes wrong?".

    with mg.trace():                       # or MINIGRAD_TRACE=1 python train.py
        loss = criterion(model(x), y)
        model.backward(criterion.backward())

prints, for each layer call, its name (its node name inside a container), the phase, the shapes going in
and out, the dtype, the backend and the time; a backward also prints the norms of the incoming gradient,
of the gradient it returns and of each parameter's accumulated ``.grad``. A layer may add lines of its own
(``Layer.trace_details``): a convolution shows its unfold shapes (the column matrix, the reshaped weight,
the GEMM and how its result becomes the output), a linear layer its product. Containers print a line when
they start and one when they end, their children indented between them::

    Sequential forward  in (2, 1, 28, 28) float32 numpy
      Conv2d '0' forward  in (2, 1, 28, 28) -> out (2, 6, 28, 28)  float32 numpy  <time> ms
        unfold   x (2, 1, 28, 28) -> columns (2, 25, 784)  = (N, C/groups*kh*kw, OH*OW)
        ...

Lines go to ``sys.stderr`` (``mg.trace(file=...)`` to choose). Outside a trace the cost is one flag test per
layer call, shared with ``mg.detect_anomaly``. On a GPU the time of each call includes a device
synchronisation (the kernels run asynchronously otherwise), so a traced run is slower.
"""
from __future__ import annotations

import functools
import math
import sys
import threading
import time
from contextlib import contextmanager

from ..runtime import settings
from ..runtime.backend import backend_of, get_array_module, is_array, is_gpu_array

__all__ = ["trace", "is_tracing", "untraced", "state", "resolve_environment", "traced_call", "shape_text", "norm_text", "gemm_text"]

_lock = threading.Lock()
# The trace's switch, shared with anomaly.checked (one dict lookup per layer call): on (None until
# MINIGRAD_TRACE is read), the file lines go to, the nesting depth of the layer being traced.
state = {"on": None, "file": None, "depth": 0}


def is_tracing() -> bool:
    """True inside ``mg.trace()`` (or with MINIGRAD_TRACE=1)."""
    return bool(state["on"])


@contextmanager
def trace(file=None):
    """Print every layer's forward and backward inside this block (see the module text). file: where the
    lines go (default sys.stderr, looked up at each line)."""
    previous = (state["on"], state["file"])
    state["on"], state["file"] = True, file
    try:
        yield
    finally:
        state["on"], state["file"] = previous


def untraced(function):
    """Decorator: run ``function`` with the trace paused (gradcheck's hundreds of finite-difference forwards
    would bury the trace of the call being looked at); one line says so."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not state["on"]:
            return function(*args, **kwargs)
        _emit(f"{function.__name__}: its internal forwards and backwards are not traced")
        state["on"] = False
        try:
            return function(*args, **kwargs)
        finally:
            state["on"] = True
    return wrapper


def resolve_environment() -> None:
    """Read MINIGRAD_TRACE once (the first layer built calls this): on turns the trace on for the whole
    process; a bad value raises SettingError naming it, like every MINIGRAD_* setting at its first use."""
    if state["on"] is None:
        state["on"] = settings.trace_on()


def shape_text(value) -> str:
    """'(2, 6, 28, 28)' for an array, a tuple of those for several, the type name for anything else."""
    if is_array(value):
        return str(tuple(value.shape))
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(shape_text(v) for v in value) + ")"
    return "None" if value is None else type(value).__name__


def norm_text(array) -> str:
    """The L2 norm of an array in 3 significant digits (one device read), or '-'."""
    if not is_array(array) or array.dtype.kind not in "fc":
        return "-"
    xp = get_array_module(array)
    return f"{float(xp.sqrt(xp.sum(xp.square(array, dtype=array.dtype)))):.3g}"


def _first_array(values):
    for value in values:
        if is_array(value):
            return value
        if isinstance(value, (tuple, list)):
            found = _first_array(value)
            if found is not None:
                return found
    return None


def _kind(array) -> str:
    return "" if array is None else f"{array.dtype} {backend_of(array)}"


def _emit(text: str) -> None:
    out = state["file"] if state["file"] is not None else sys.stderr
    print("  " * state["depth"] + text, file=out)


def _synchronize(array) -> None:
    if array is not None and is_gpu_array(array):
        try:
            get_array_module(array).cuda.Stream.null.synchronize()
        except AttributeError:  # a stand-in for CuPy without streams
            pass


def traced_call(layer, phase: str, method, args, kwargs):
    """Run ``method(layer, *args, **kwargs)`` printing the trace lines of one call (layer.trace_details adds
    the layer's own)."""
    with _lock:
        inputs = _first_array(args)
        container = bool(layer._layers)
        if container:
            _emit(f"{layer.label} {phase}  in {shape_text(args[0] if len(args) == 1 else args)}  {_kind(inputs)}")
        state["depth"] += 1
    _synchronize(inputs)
    start = time.perf_counter()
    shown_in = shape_text(args[0] if len(args) == 1 else args) if args else "1 (a loss: d loss / d loss)"
    try:
        out = method(layer, *args, **kwargs)
        _synchronize(_first_array([out]))
    except Exception as exc:                      # the line the user is looking for: where the shapes broke
        with _lock:
            state["depth"] -= 1
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _emit(f"{layer.label} {phase}  in {shown_in}  {_kind(inputs)}  FAILED: {type(exc).__name__}: {message}")
        raise
    elapsed = time.perf_counter() - start
    with _lock:
        state["depth"] -= 1
        ms = f"{elapsed * 1e3:.2f} ms"
        kind = _kind(inputs if inputs is not None else _first_array([out]))
        if phase == "forward":
            line = f"{layer.label} {phase}  in {shown_in} -> out {shape_text(out)}  {kind}  {ms}"
        else:
            returned = "nothing (input gradient not needed)" if out is None else shape_text(out)
            line = (f"{layer.label} {phase}  grad_out {shown_in} -> grad_in {returned}  {kind}  {ms}"
                    f"  |grad_out| {norm_text(inputs)}  |grad_in| {norm_text(out)}")
            grads = [f"|{name}.grad| {norm_text(p.grad)}" for name, p in layer._parameters.items()
                     if p is not None and p.grad is not None]
            if grads:
                line += "  " + "  ".join(grads)
        _emit(("end " if container else "") + line)
        details = layer.trace_details(phase, args, out) if not container else None
        for detail in details or ():
            _emit("  " + detail)
    return out


def gemm_text(a_shape, b_shape) -> str:
    """'(6, 25) @ (25, 784) -> (6, 784)' for two matrix shapes, and the multiply-adds."""
    rows, inner, cols = a_shape[-2], a_shape[-1], b_shape[-1]
    lead = tuple(a_shape[:-2]) or tuple(b_shape[:-2])
    flops = 2 * math.prod(lead or (1,)) * rows * inner * cols
    batch = f"{lead} x " if lead else ""
    return f"{batch}{tuple(a_shape[-2:])} @ {tuple(b_shape[-2:])} -> {(rows, cols)}  ({flops / 1e6:.3g} MFLOP)"
