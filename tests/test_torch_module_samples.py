"""PyTorch's own module test samples, run against minigrad.

``torch.testing._internal.common_modules.module_db`` is the list of ModuleInfos PyTorch's test_modules.py
runs: for each module class, a function that builds samples (constructor arguments, forward inputs, a
description). For every class minigrad also has (``hasattr(mg.nn, name)``, so a new layer is picked up
without editing this file), and for training and eval mode where the ModuleInfo says they differ, each
sample is run on the torch module and on the minigrad layer built from the same arguments:

* the torch module is built in float64; its parameters and running statistics are then set to seeded
  random values (default ones make BatchNorm's eval mode an identity), and the minigrad layer, cast to
  float64, loads torch's state dict;
* both run forward on the same inputs (NumPy copies, keeping the memory layout, for minigrad), then
  backward with a seeded random upstream gradient (1.0 through ``loss.backward()`` for a 0-d loss);
* output, input gradient (a loss: of its inputs, not of its target, which is data: torch runs on a detached copy
  of the target, so one tensor passed as both input and target counts as input only), every parameter gradient
  (none for integer inputs such as Embedding's indices) and every buffer
  after the step (running statistics) must agree at rtol 1e-10, atol 1e-12, with the same shape and dtype.

A sample minigrad refuses (TypeError, ValueError, NotImplementedError or KeyError at construction, forward
or backward) must be refused on purpose: the message names the layer and the sample is listed in
DELIBERATE with the reason. KNOWN_GAPS lists the samples minigrad should handle but does not yet (strict
xfails: fixing one makes its test fail until the entry is removed). docs/from_pytorch.md carries the
DELIBERATE table and the count of matching samples; the last tests keep both true.
"""
from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")   # common_modules imports it
common_modules = pytest.importorskip("torch.testing._internal.common_modules")
# Importing torch's test utilities freezes torch.backends' global flags for the whole process (its own test
# runner sets them through context managers). Other tests here set them directly (minigrad.bench.cases.full_fp32
# turns TF32 off), so undo the freeze this import made.
if torch.backends.flags_frozen():
    torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True   # torch.backends' own
assert not torch.backends.flags_frozen()

RTOL, ATOL = 1e-10, 1e-12
REFUSALS = (TypeError, ValueError, NotImplementedError, KeyError)
DOC = Path(__file__).resolve().parents[1] / "docs" / "from_pytorch.md"
DOC_HEADING = "### PyTorch's own module samples"

# (class name, regex searched in the sample id) -> why minigrad refuses that sample on purpose.
# The sample id is "Class(constructor arguments)-desc[-train|-eval]", see _sample_id. docs/from_pytorch.md
# repeats each entry as a row "| Class | `regex` | reason |" (so neither may contain a "|").
DELIBERATE: dict[tuple[str, str], str] = {
}

# (class name, regex searched in the sample id) -> what is wrong. Samples minigrad should match but does
# not (a mismatch, or a refusal that is not deliberate); each is a strict xfail until fixed.
KNOWN_GAPS: dict[tuple[str, str], str] = {}


# -- the samples -----------------------------------------------------------------------------------------

def _short(value):
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _sample_id(name, module_input, training, both_modes):
    constructor = module_input.constructor_input
    arguments = [_short(a) for a in constructor.args] + [f"{k}={_short(v)}" for k, v in constructor.kwargs.items()]
    mode = ("-train" if training else "-eval") if both_modes else ""
    return f"{name}({', '.join(arguments)})-{module_input.desc or 'default'}{mode}"


def _module_infos():
    return [info for info in common_modules.module_db if hasattr(mg.nn, info.module_cls.__name__)]


def _collect():
    """{sample id: (ModuleInfo, training, ModuleInput)}, generated under a fixed torch seed."""
    samples = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for info in _module_infos():
            modes = (True, False) if info.train_and_eval_differ else (True,)
            for training in modes:
                for module_input in info.module_inputs_func(info, device="cpu", dtype=torch.float64,
                                                            requires_grad=True, training=training):
                    key = _sample_id(info.module_cls.__name__, module_input, training, len(modes) > 1)
                    while key in samples:                       # identical descriptions: number them
                        key += "'"
                    samples[key] = (info, training, module_input)
    return samples


SAMPLES = _collect()


def _entry(table, name, sample_id):
    hits = [key for key in table if key[0] == name and re.search(key[1], sample_id)]
    assert len(hits) <= 1, f"{sample_id} matches several entries: {hits}"
    return hits[0] if hits else None


# -- running one sample ----------------------------------------------------------------------------------

def _to_numpy(value):
    """A constructor argument as minigrad takes it: tensors -> arrays, torch dtypes -> names."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy().copy()
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _input_copy(value):
    """A forward input for minigrad: a NumPy copy with the tensor's dtype and memory layout."""
    if isinstance(value, torch.Tensor):
        return np.array(value.detach().numpy(), copy=True, order="K")
    return value


def _randomize(torch_module, rng):
    """Seeded random parameters and running statistics (loss weights stay the sample's)."""
    with torch.no_grad():
        for name, tensor in list(torch_module.named_parameters()) + list(torch_module.named_buffers()):
            leaf = name.rsplit(".", 1)[-1]
            if not tensor.dtype.is_floating_point or (name not in dict(torch_module.named_parameters())
                                                      and not leaf.startswith("running_")):
                continue
            values = rng.standard_normal(tuple(tensor.shape))
            if leaf == "running_var":
                values = np.abs(values) + 0.5
            tensor.copy_(torch.from_numpy(values))


def _compare(ours, ref, what):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != torch's {ref.shape}"
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != torch's {ref.dtype}"
    if ref.size:
        err = np.abs(ours - ref)
        ok = (err <= ATOL + RTOL * np.abs(ref)) | (np.isnan(ours) & np.isnan(ref)) | (ours == ref)
        assert ok.all(), f"{what}: max difference {np.nanmax(err):.3g} (torch's largest {np.nanmax(np.abs(ref)):.3g})"


class Refused(Exception):
    """minigrad refused the sample: ``stage`` (construct, forward, backward) and the original error."""

    def __init__(self, stage, error):
        super().__init__(f"{stage}: {type(error).__name__}: {error}")
        self.stage, self.error = stage, error


def _run(sample_id):
    """Run one sample on both sides; raise Refused, or AssertionError for a mismatch."""
    info, training, module_input = SAMPLES[sample_id]
    name = info.module_cls.__name__
    constructor, forward = module_input.constructor_input, module_input.forward_input
    rng = np.random.default_rng(0)

    torch_module = info.module_cls(*constructor.args, **constructor.kwargs).double()
    _randomize(torch_module, rng)
    torch_module.train(training)
    try:
        args = [_to_numpy(a) for a in constructor.args]
        kwargs = {k: _to_numpy(v) for k, v in constructor.kwargs.items() if k != "device"}
        layer = getattr(mg.nn, name)(*args, **kwargs)
        layer.to(dtype="float64")
        layer.load_state_dict({k: v.detach().numpy().copy() for k, v in torch_module.state_dict().items()})
        layer.train(training)
    except REFUSALS as error:
        raise Refused("construct", error) from error

    forward_args = () if forward is None else forward.args
    if name.endswith("Loss"):            # the target is data: torch's gradient of the inputs must not flow through it
        names = list(inspect.signature(info.module_cls.forward).parameters)[1:]
        forward_args = tuple(a.detach() if n == "target" and isinstance(a, torch.Tensor) else a
                             for a, n in zip(forward_args, names + [None] * len(forward_args)))
    forward_kwargs = {} if forward is None else forward.kwargs
    out_torch = torch_module(*forward_args, **forward_kwargs)
    try:
        out = layer(*[_input_copy(a) for a in forward_args], **{k: _input_copy(v) for k, v in forward_kwargs.items()})
    except REFUSALS as error:
        raise Refused("forward", error) from error
    if isinstance(out_torch, tuple):
        assert isinstance(out, tuple) and len(out) == len(out_torch), f"output: {type(out)} != torch's tuple"
        for index, (a, b) in enumerate(zip(out, out_torch)):
            _compare(a, b, f"output {index}")
        out, out_torch = out[0], out_torch[0]
    else:
        _compare(out, out_torch, "output")
    torch_state = torch_module.state_dict()
    for key, value in layer.state_dict().items():
        _compare(value, torch_state[key], f"buffer {key} after forward")

    is_loss = name.endswith("Loss")      # a loss: backward() returns the gradient of its input(s) (a tuple for several)
    inputs = [t for t in list(forward_args) + list(forward_kwargs.values())
              if isinstance(t, torch.Tensor) and t.requires_grad]
    parameters = dict(torch_module.named_parameters())
    if is_loss and out_torch.ndim == 0:
        grad_torch = torch.ones_like(out_torch)
        backward = layer.backward
    else:
        grad = rng.standard_normal(tuple(out_torch.shape))
        grad_torch = torch.from_numpy(grad.copy())
        backward = functools.partial(layer.backward, grad)
    grads_torch = torch.autograd.grad(out_torch, inputs + list(parameters.values()), grad_torch, allow_unused=True)
    try:
        dx = backward()
    except REFUSALS as error:
        raise Refused("backward", error) from error
    input_grads = grads_torch[:len(inputs)]
    if dx is None and not inputs:        # integer inputs (Embedding's indices): no input gradient on either side
        dx = ()
    elif (is_loss and not isinstance(dx, tuple)) or len(inputs) == 1:
        dx = (dx,)
        input_grads = input_grads[:1]
    assert len(dx) == len(input_grads), f"{len(dx)} input gradients, torch has {len(input_grads)}"
    for index, (ours, ref) in enumerate(zip(dx, input_grads)):
        _compare(ours, ref, f"gradient of input {index}")
    ours_parameters = dict(layer.named_parameters())
    assert set(ours_parameters) == set(parameters), f"parameters {set(ours_parameters)} != torch's {set(parameters)}"
    for (key, parameter), ref in zip(parameters.items(), grads_torch[len(inputs):]):
        ours = ours_parameters[key].grad
        ref = torch.zeros_like(parameter) if ref is None else ref
        _compare(np.zeros(ref.shape) if ours is None else ours, ref, f"gradient of {key}")
    for key, value in layer.state_dict().items():
        _compare(value, torch_state[key], f"buffer {key} after backward")


@functools.lru_cache(maxsize=None)
def _outcome(sample_id):
    """("match", ""), ("refused", message) or ("mismatch", message); cached for the summary tests."""
    try:
        _run(sample_id)
    except Refused as refusal:
        return "refused", str(refusal)
    except AssertionError as error:
        return "mismatch", str(error)
    except Exception as error:  # noqa: BLE001 - an error that is not a refusal is a failure
        return "error", f"{type(error).__name__}: {error}"
    return "match", ""


# -- the tests -------------------------------------------------------------------------------------------

def _params():
    for sample_id, (info, _, _) in SAMPLES.items():
        gap = _entry(KNOWN_GAPS, info.module_cls.__name__, sample_id)
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[gap])] if gap else []
        yield pytest.param(sample_id, id=sample_id, marks=marks)


def test_every_minigrad_class_in_module_db_has_samples():
    names = {info.module_cls.__name__ for info, _, _ in SAMPLES.values()}
    assert names == {info.module_cls.__name__ for info in _module_infos()}
    assert len(names) >= 20, sorted(names)


@pytest.mark.parametrize("sample_id", list(_params()))
def test_sample_matches_torch_or_is_refused_deliberately(sample_id):
    name = SAMPLES[sample_id][0].module_cls.__name__
    kind, message = _outcome(sample_id)
    if kind == "refused":
        assert re.search(rf"\b{name}\b", message), f"the refusal does not name {name}: {message}"
        assert _entry(DELIBERATE, name, sample_id), f"refused, and not listed in DELIBERATE: {message}"
    else:
        assert kind == "match", message
        assert not _entry(DELIBERATE, name, sample_id), "listed in DELIBERATE, but minigrad handles it: remove it"


def _summary():
    outcomes = {sample_id: _outcome(sample_id) for sample_id in SAMPLES}
    return outcomes, sum(kind == "match" for kind, _ in outcomes.values())


def test_every_deliberate_entry_is_hit():
    outcomes, _ = _summary()
    for (name, pattern) in DELIBERATE:
        hits = [s for s, (kind, _) in outcomes.items()
                if kind == "refused" and SAMPLES[s][0].module_cls.__name__ == name and re.search(pattern, s)]
        assert hits, f"DELIBERATE entry {(name, pattern)} is stale: no sample is refused under it"


def _doc_section():
    text = DOC.read_text(encoding="utf-8")
    assert DOC_HEADING in text, f"{DOC.name} has no {DOC_HEADING!r} subsection"
    start = text.index(DOC_HEADING)
    end = text.find("\n#", start + len(DOC_HEADING))
    return text[start:] if end < 0 else text[start:end]


def test_doc_table_lists_every_deliberate_refusal():
    section = _doc_section()
    rows = set()
    for line in section.splitlines():
        match = re.match(r"^\| (\w+) \| `(.+)` \| (.+) \|$", line)
        if match:
            rows.add((match.group(1), match.group(2), match.group(3)))
    expected = {(name, pattern, reason) for (name, pattern), reason in DELIBERATE.items()}
    placeholder = "| – | – | none today: minigrad refuses no sample on purpose |" in section
    assert placeholder == (not DELIBERATE), "the table's 'none today' row must be there exactly when DELIBERATE is empty"
    assert expected <= rows, f"missing from {DOC.name}'s table: {sorted(expected - rows)}"
    assert rows <= expected, f"{DOC.name}'s table lists entries DELIBERATE does not: {sorted(rows - expected)}"


def test_doc_states_the_sample_counts():
    _, matched = _summary()
    section = _doc_section()
    expected = f"{matched} of the {len(SAMPLES)} samples match"
    assert expected in section, (f"{DOC.name} ({DOC_HEADING}) should say {expected!r} "
                                 "(the counts of this PyTorch version's module_db)")
