"""Every layer minigrad shares with torch.nn takes PyTorch's constructor parameters: the same names, in the same
order, of the same kinds (positional-or-keyword vs keyword-only), with the same defaults -- so a call written for
PyTorch, positional or by keyword, means the same here. The only differences are listed in DOCUMENTED, each with
its reason (and checked below to still be what the reason says).

The names of ``*args`` / ``**kwargs`` are not compared: no caller can pass them by name (Sequential's ``*layers``
is PyTorch's ``*args``).

minigrad's old order put dtype before device (``Linear(in, out, bias=True, dtype="float32", *, device=None)``) and
reduction before the losses' deprecated size_average / reduce; a call written for it that now lands a dtype in
the device slot, or a reduction / ignore_index / label_smoothing / pos_weight in a size_average / reduce slot,
is refused with a TypeError naming the keyword form, never silently reinterpreted.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest
from minigrad.backend import BackendUnavailableError, cupy_available

import minigrad as mg

torch = pytest.importorskip("torch")

# layer name -> why its constructor's parameters differ from torch.nn's (the tests below check each claim)
DOCUMENTED = {
    "Parameter": "torch.nn.Parameter takes its arguments in __new__(data=None, requires_grad=True) (its __init__ is "
                 "Tensor's *args, **kwargs); minigrad's Parameter.__init__(data, requires_grad=True) has the same "
                 "names, order and kinds, but data is required: a Parameter wraps an existing NumPy/CuPy array "
                 "(torch's data=None makes an empty tensor)",
    "Sigmoid": "torch's Sigmoid has no __init__ and inherits Module.__init__(*args, **kwargs), which refuses every "
               "argument; minigrad's takes none: the same calls work and the same are refused (TypeError)",
    "Tanh": "as Sigmoid: torch inherits Module.__init__(*args, **kwargs), which refuses every argument",
}

# torch parameters minigrad has but does not implement: a non-default value raises NotImplementedError
UNSUPPORTED = {
    "CrossEntropyLoss": ("size_average", "reduce"), "NLLLoss": ("size_average", "reduce"),
    "MSELoss": ("size_average", "reduce"), "BCEWithLogitsLoss": ("size_average", "reduce"),
    **{name: ("size_average", "reduce") for name in ("L1Loss", "SmoothL1Loss", "BCELoss", "KLDivLoss",
                                                     "MarginRankingLoss", "CosineEmbeddingLoss", "MultiMarginLoss",
                                                     "TripletMarginLoss")},
}

SHARED = [name for name in mg.nn.__all__ if hasattr(torch.nn, name) and inspect.isclass(getattr(mg.nn, name))]

# the smallest required arguments of the layers with PyTorch's (..., device=None, dtype=None) pair
REQUIRED = {"Linear": (4, 2), "Conv2d": (1, 2, 3), "Conv1d": (1, 2, 3), "ConvTranspose2d": (1, 2, 3),
            "BatchNorm1d": (3,), "BatchNorm2d": (3,), "LayerNorm": (4,), "Embedding": (5, 3)}


def _params(fn):
    """(name, kind, default) of each parameter but self; *args / **kwargs by kind only."""
    out = []
    for p in list(inspect.signature(fn).parameters.values())[1:]:
        name = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, p.name)
        out.append((name, p.kind, p.default))
    return out


def test_the_shared_layers_are_the_expected_ones():
    """A layer added to mg.nn that torch.nn also has is compared here automatically; this pins the count."""
    assert "Linear" in SHARED and "CrossEntropyLoss" in SHARED and "init" not in SHARED
    assert set(DOCUMENTED) <= set(SHARED) and set(UNSUPPORTED) <= set(SHARED) and set(REQUIRED) <= set(SHARED)


@pytest.mark.parametrize("name", SHARED)
def test_constructor_parameters_are_pytorchs(name):
    ours, theirs = _params(getattr(mg.nn, name).__init__), _params(getattr(torch.nn, name).__init__)
    if name in DOCUMENTED:
        assert ours != theirs, f"{name} now matches PyTorch: drop it from DOCUMENTED"
        return
    assert [(n, k) for n, k, _ in ours] == [(n, k) for n, k, _ in theirs], \
        f"{name}: names/order/kinds {[(n, k.name) for n, k, _ in ours]} != torch's {[(n, k.name) for n, k, _ in theirs]}"
    assert [d for *_, d in ours] == [d for *_, d in theirs], f"{name}: defaults differ from torch's"


def test_parameter_matches_torchs_new_but_for_the_required_data():
    ours = _params(mg.nn.Parameter.__init__)
    theirs = _params(torch.nn.Parameter.__new__)
    assert [(n, k) for n, k, _ in ours] == [(n, k) for n, k, _ in theirs] == [
        ("data", inspect.Parameter.POSITIONAL_OR_KEYWORD), ("requires_grad", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    assert ours[0][2] is inspect.Parameter.empty and theirs[0][2] is None and ours[1][2] is theirs[1][2] is True
    assert mg.nn.Parameter(np.ones(2), False).requires_grad is False


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh"])
def test_argumentless_activations_refuse_arguments_like_torch(name):
    getattr(mg.nn, name)()
    for args, kwargs in (((1,), {}), ((), {"inplace": True})):
        with pytest.raises(TypeError):
            getattr(torch.nn, name)(*args, **kwargs)
        with pytest.raises(TypeError):
            getattr(mg.nn, name)(*args, **kwargs)


# -- device and dtype in PyTorch's order -----------------------------------------------------------------------------

def _up_to_device(name):
    """The positional arguments before device: the required ones, then each default, in PyTorch's order."""
    params = list(inspect.signature(getattr(torch.nn, name).__init__).parameters.values())[1:]
    names = [p.name for p in params]
    args = list(REQUIRED[name])
    args += [p.default for p in params[len(args):names.index("device")]]
    return args


def test_linear_device_then_dtype_positionally():
    layer = mg.nn.Linear(4, 2, True, "cpu")
    assert layer.backend == "numpy" and layer.dtype == np.float32
    layer = mg.nn.Linear(4, 2, True, None, "float64")
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    assert mg.nn.Linear(4, 2, True, "numpy", np.float64).dtype == np.float64
    assert mg.nn.Linear(4, 2).dtype == np.float32           # dtype=None: float32, as torch's default dtype


def test_linear_refuses_a_dtype_in_the_device_slot_naming_the_keyword_form():
    with pytest.raises(TypeError, match=r'Linear\(4, 2, True, dtype="float64"\)') as info:
        mg.nn.Linear(4, 2, True, "float64")
    assert "4th positional argument is device" in str(info.value)
    for dtype in (np.float64, np.dtype("float32"), torch.float64, "float16"):
        with pytest.raises(TypeError, match="is a dtype, not a device.*dtype="):
            mg.nn.Linear(4, 2, True, dtype)
    with pytest.raises(TypeError, match="device=dtype|is a dtype"):
        mg.nn.Linear(4, 2, device="float64")


def test_a_device_name_in_the_dtype_slot_is_refused():
    with pytest.raises(TypeError, match="dtype='cpu' is a device.*device='cpu'"):
        mg.nn.Linear(4, 2, True, None, "cpu")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_positional_device_and_dtype_like_torch(name):
    cls = getattr(mg.nn, name)
    args = _up_to_device(name)
    torch_layer = getattr(torch.nn, name)(*args, "cpu", torch.float64)
    mg.manual_seed(0)
    layer = cls(*args, "cpu", "float64")
    assert layer.backend == "numpy" and layer.dtype == np.float64
    assert set(layer.state_dict()) == set(torch_layer.state_dict())
    mg.manual_seed(0)
    reference = cls(*REQUIRED[name], device="cpu", dtype="float64")   # the keyword form builds the same layer
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[key], value)
    for device in (None, "numpy"):
        assert cls(*args, device).dtype == np.float32
    with pytest.raises(TypeError, match=rf"is a dtype, not a device.*{name}\(.*dtype=\"float64\"\)"):
        cls(*args, "float64")                     # minigrad's old order: dtype where PyTorch has device
    if cupy_available():
        assert cls(*args, "cuda").backend == "cupy"
    else:
        with pytest.raises(BackendUnavailableError):
            cls(*args, "cuda")                    # a device, as device="cuda" is


def test_batchnorm_bias_stays_keyword_only():
    assert mg.nn.BatchNorm1d(3, bias=False).bias is None
    with pytest.raises(TypeError):
        mg.nn.BatchNorm1d(3, 1e-5, 0.1, True, True, None, None, False)


# -- losses: PyTorch's order, with the deprecated size_average / reduce slots ----------------------------------------

@pytest.mark.parametrize("name,options", sorted(UNSUPPORTED.items()))
def test_unsupported_torch_options_exist_and_raise(name, options):
    cls = getattr(mg.nn, name)
    for option in options:
        assert option in inspect.signature(cls.__init__).parameters
        for value in (True, False):
            with pytest.raises(NotImplementedError, match=f"{option}="):
                cls(**{option: value})


def test_losses_take_pytorchs_positional_order():
    weight = np.array([1.0, 2.0, 0.5])
    ce = mg.nn.CrossEntropyLoss(weight, None, 1, None, "sum", 0.1)
    theirs = torch.nn.CrossEntropyLoss(torch.from_numpy(weight), None, 1, None, "sum", 0.1)
    assert (ce.ignore_index, ce.reduction, ce.label_smoothing) == (theirs.ignore_index, theirs.reduction,
                                                                    theirs.label_smoothing)
    nll = mg.nn.NLLLoss(None, None, 2, None, "none")
    assert (nll.ignore_index, nll.reduction) == (2, "none")
    assert mg.nn.MSELoss(None, None, "sum").reduction == "sum"
    bce = mg.nn.BCEWithLogitsLoss(None, None, None, "none", np.array([3.0, 0.5]))
    assert bce.reduction == "none" and bce.pos_weight.tolist() == [3.0, 0.5]


@pytest.mark.parametrize("make,keyword", [
    (lambda: mg.nn.MSELoss("sum"), "reduction='sum'"),
    (lambda: mg.nn.CrossEntropyLoss(None, -1), "ignore_index=-1"),
    (lambda: mg.nn.CrossEntropyLoss(None, None, -100, 0.1), "label_smoothing=0.1"),
    (lambda: mg.nn.NLLLoss(None, "none"), "reduction='none'"),
    (lambda: mg.nn.BCEWithLogitsLoss(None, "sum"), "reduction='sum'"),
    (lambda: mg.nn.BCEWithLogitsLoss(None, None, np.array([3.0])), "pos_weight="),
], ids=["MSELoss-reduction", "CrossEntropyLoss-ignore_index", "CrossEntropyLoss-label_smoothing",
        "NLLLoss-reduction", "BCEWithLogitsLoss-reduction", "BCEWithLogitsLoss-pos_weight"])
def test_losses_refuse_minigrads_old_positional_order(make, keyword):
    """An argument of the old order (reduction, ignore_index, ... before size_average / reduce) is refused."""
    with pytest.raises(TypeError, match=rf"takes None or a bool.*PyTorch's order is .*{keyword}"):
        make()
