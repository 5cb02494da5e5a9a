"""Every layer and loss against PyTorch at the edges: every constructor option PyTorch documents, and for
each an ordinary batch, a zero-size batch, an unbatched input (where PyTorch accepts one), a
non-contiguous input and a negative-stride input.

Each case builds the torch module in float64, randomises its parameters and buffers, copies them into the
minigrad layer with ``load_state_dict`` (the names are the same) and compares, at 1e-10 relative:
the output, the input gradient, every parameter gradient and every buffer after the step (BatchNorm's
running statistics). Options minigrad deliberately does not implement are checked to raise
NotImplementedError naming the option (docs/from_pytorch.md lists them).
"""
from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np
import pytest

import minigrad as mg
from minigrad.backend import BackendUnavailableError, cupy_available

torch = pytest.importorskip("torch")

RTOL = 1e-10
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Case(NamedTuple):
    name: str                 # the class name, the same in mg.nn and torch.nn
    args: tuple
    kwargs: dict
    shape: tuple              # a batched input shape
    unbatched: bool = False   # torch also accepts the input without its batch dimension
    train: bool = True


def _layer_cases():
    conv = (2, 4, 7, 8)
    yield Case("Linear", (5, 3), {}, (4, 5), unbatched=True)
    yield Case("Linear", (5, 3), {"bias": False}, (2, 3, 5), unbatched=True)
    for kwargs in ({}, {"stride": 2}, {"padding": 1}, {"padding": (1, 2)}, {"stride": (2, 1), "padding": (0, 1)},
                   {"dilation": 2}, {"dilation": (1, 2), "padding": 2}, {"groups": 2}, {"groups": 2, "padding": 1, "stride": 2},
                   {"bias": False}, {"padding": "valid"}, {"padding": "same"}, {"padding": "same", "dilation": 2}):
        yield Case("Conv2d", (4, 6, 3), kwargs, conv, unbatched=True)
    for mode in PADDING_MODES[1:]:
        yield Case("Conv2d", (4, 6, 3), {"padding": 1, "padding_mode": mode}, conv, unbatched=True)
        yield Case("Conv2d", (4, 6, (3, 2)), {"padding": "same", "padding_mode": mode}, conv, unbatched=True)
    for kwargs in ({}, {"stride": 2}, {"stride": 2, "padding": 1}, {"stride": 2, "output_padding": 1},
                   {"stride": (2, 3), "output_padding": (1, 2)}, {"groups": 2}, {"dilation": 2},
                   {"dilation": 2, "stride": 3, "output_padding": 2}, {"bias": False}):
        yield Case("ConvTranspose2d", (4, 6, 3), kwargs, conv, unbatched=True)
    for kwargs in ({}, {"stride": 1}, {"stride": 2, "padding": 1}, {"dilation": 2}, {"ceil_mode": True},
                   {"stride": 2, "padding": 1, "ceil_mode": True}, {"return_indices": True}):
        yield Case("MaxPool2d", (3,), kwargs, conv, unbatched=True)
    for kwargs in ({}, {"stride": 1}, {"padding": 1}, {"padding": 1, "count_include_pad": False},
                   {"ceil_mode": True}, {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
                   {"divisor_override": 3}, {"padding": 1, "divisor_override": 2}):
        yield Case("AvgPool2d", (3,), kwargs, conv, unbatched=True)
    for size in (1, 3, (2, 5), (7, 8)):
        yield Case("AdaptiveAvgPool2d", (size,), {}, conv, unbatched=True)
    for train in (True, False):
        for kwargs in ({}, {"affine": False}, {"bias": False}, {"track_running_stats": False}, {"momentum": None},
                       {"momentum": 0.5, "eps": 1e-3}):
            yield Case("BatchNorm1d", (4,), kwargs, (6, 4), train=train)
            yield Case("BatchNorm1d", (4,), kwargs, (3, 4, 5), train=train)
            yield Case("BatchNorm2d", (4,), kwargs, (3, 4, 5, 2), train=train)
    for kwargs in ({}, {"elementwise_affine": False}, {"bias": False}, {"eps": 1e-2}):
        yield Case("LayerNorm", (5,), kwargs, (3, 4, 5), unbatched=True)
        yield Case("LayerNorm", ((4, 5),), kwargs, (3, 4, 5), unbatched=True)
    elementwise = (3, 4, 5)
    yield Case("ReLU", (), {}, elementwise, unbatched=True)
    yield Case("LeakyReLU", (), {}, elementwise, unbatched=True)
    yield Case("LeakyReLU", (0.2,), {}, elementwise, unbatched=True)
    yield Case("GELU", (), {}, elementwise, unbatched=True)
    yield Case("GELU", (), {"approximate": "tanh"}, elementwise, unbatched=True)
    yield Case("Sigmoid", (), {}, elementwise, unbatched=True)
    yield Case("Tanh", (), {}, elementwise, unbatched=True)
    for dim in (0, 1, -1):
        yield Case("Softmax", (), {"dim": dim}, elementwise, unbatched=True)
        yield Case("LogSoftmax", (), {"dim": dim}, elementwise, unbatched=True)
    for kwargs in ({}, {"start_dim": 0}, {"start_dim": 2}, {"end_dim": -2}, {"start_dim": 1, "end_dim": 1}):
        yield Case("Flatten", (), kwargs, (3, 4, 5, 2))
    yield Case("Dropout", (), {"p": 0.0}, elementwise, unbatched=True)
    yield Case("Dropout", (), {"p": 0.5}, elementwise, unbatched=True, train=False)
    yield Case("Identity", (), {}, elementwise, unbatched=True)
    # -- activations --
    # -- normalisation --
    # -- regularisation, resampling and padding --
    # -- pooling and 1-d signals --
    # -- embeddings --


LAYER_CASES = list(_layer_cases())
VARIANTS = ("batch", "empty", "unbatched", "noncontiguous", "negative_stride")


def _case_id(case):
    options = ",".join(f"{k}={v}" for k, v in case.kwargs.items())
    shape = "x".join(map(str, case.shape))
    return f"{case.name}({','.join(map(str, case.args))}{';' if options else ''}{options})-{shape}" + (
        "" if case.train else "-eval")


def _input(shape, variant, rng):
    """A float64 array of ``shape`` laid out as ``variant`` says (the values are what counts)."""
    if variant == "noncontiguous":
        wide = rng.standard_normal(shape[:-1] + (2 * shape[-1],))
        return wide[..., ::2]                                     # every other column: strided, not contiguous
    if variant == "negative_stride":
        return rng.standard_normal(shape)[..., ::-1]              # a reversed view: negative strides
    return rng.standard_normal(shape)


def _dense(a):
    """A fresh C-ordered copy (0-d stays 0-d): what torch.from_numpy/torch.tensor accept."""
    return np.array(a, copy=True, order="C")


def _shape(case, variant):
    if variant == "empty":
        return (0,) + case.shape[1:]
    if variant == "unbatched":
        return case.shape[1:]
    return case.shape


def _close(ours, ref, what):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != torch's {ref.shape}"
    assert ours.dtype == ref.dtype, f"{what}: dtype {ours.dtype} != torch's {ref.dtype}"
    scale = np.abs(ref).max() if ref.size else 0.0
    err = np.abs(ours - ref).max() if ref.size else 0.0
    assert err <= RTOL * (scale + 1e-300) or err == 0, f"{what}: max error {err:.3g} at scale {scale:.3g}"


def _make_pair(case, rng):
    """The torch module in float64 with random parameters/buffers, and the minigrad layer holding the same."""
    torch_module = getattr(torch.nn, case.name)(*case.args, **case.kwargs)
    torch_module = torch_module.double()
    with torch.no_grad():
        for name, tensor in torch_module.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = rng.standard_normal(tuple(tensor.shape))
                if name.endswith("running_var"):
                    values = np.abs(values) + 0.5
                tensor.copy_(torch.from_numpy(values))
    cls = getattr(mg.nn, case.name)
    extra = {"dtype": "float64"} if "dtype" in inspect.signature(cls).parameters else {}
    layer = cls(*case.args, **case.kwargs, **extra)
    layer.load_state_dict({k: v.numpy().copy() for k, v in torch_module.state_dict().items()})
    torch_module.train(case.train)
    layer.train(case.train)
    return layer, torch_module


LAYER_PARAMS = [pytest.param(case, variant, id=f"{_case_id(case)}-{variant}")
                for case in LAYER_CASES for variant in VARIANTS if variant != "unbatched" or case.unbatched]


@pytest.mark.parametrize("case,variant", LAYER_PARAMS)
def test_layer_matches_torch(case, variant):
    rng = np.random.default_rng(0)
    layer, torch_module = _make_pair(case, rng)
    x = _input(_shape(case, variant), variant, rng)
    x_torch = torch.tensor(_dense(x), requires_grad=True)
    try:
        y_torch = torch_module(x_torch)
    except RuntimeError as exc:                                   # e.g. an empty batch with no output pixels
        with pytest.raises((ValueError, RuntimeError), match=case.name):   # our message names the layer
            layer(x)
        return
    y = layer(x)
    if case.kwargs.get("return_indices"):
        (y, indices), (y_torch, indices_torch) = y, y_torch
        np.testing.assert_array_equal(np.asarray(indices), indices_torch.numpy())
    _close(y, y_torch, "output")
    grad = _input(tuple(y_torch.shape), variant, rng)
    y_torch.backward(torch.tensor(_dense(grad)))
    dx = layer.backward(grad)
    _close(dx, x_torch.grad, "input gradient")
    torch_parameters = dict(torch_module.named_parameters())
    for name, parameter in layer.named_parameters():
        expected = torch_parameters[name].grad
        _close(parameter.grad, expected if expected is not None else torch.zeros_like(torch_parameters[name]),
               f"gradient of {name}")
    torch_state = torch_module.state_dict()
    for name, value in layer.state_dict().items():
        _close(value, torch_state[name], f"state {name} after the step")


# -- losses ------------------------------------------------------------------------------------------------

class LossCase(NamedTuple):
    name: str
    kwargs: dict
    shape: tuple              # the input's batched shape; the class dimension is 1
    target: str               # "index", "probability" or "same" (a float target of the input's shape)


def _loss_cases():
    weight = np.array([0.3, 1.0, 2.0, 0.7, 1.5])
    for reduction in ("mean", "sum", "none"):
        for shape in ((6, 5), (3, 5, 4, 2)):
            for kwargs in ({}, {"weight": weight}, {"ignore_index": 2}, {"ignore_index": -1},
                           {"weight": weight, "ignore_index": 0}):
                yield LossCase("NLLLoss", {"reduction": reduction, **kwargs}, shape, "index")
                yield LossCase("CrossEntropyLoss", {"reduction": reduction, **kwargs}, shape, "index")
            for kwargs in ({"label_smoothing": 0.1}, {"label_smoothing": 0.2, "weight": weight},
                           {"label_smoothing": 0.1, "ignore_index": 3}):
                yield LossCase("CrossEntropyLoss", {"reduction": reduction, **kwargs}, shape, "index")
            for kwargs in ({}, {"weight": weight}, {"label_smoothing": 0.3}, {"label_smoothing": 0.1, "weight": weight}):
                yield LossCase("CrossEntropyLoss", {"reduction": reduction, **kwargs}, shape, "probability")
        yield LossCase("MSELoss", {"reduction": reduction}, (3, 5, 2), "same")
        for kwargs in ({}, {"weight": np.array([0.5, 2.0])}, {"pos_weight": np.array([3.0, 0.2])},
                       {"weight": np.array([[0.5], [2.0], [1.0]]), "pos_weight": np.array([3.0, 0.2])}):
            yield LossCase("BCEWithLogitsLoss", {"reduction": reduction, **kwargs}, (3, 2), "same")
        # -- losses --


LOSS_CASES = list(_loss_cases())
LOSS_VARIANTS = ("batch", "empty", "unbatched", "noncontiguous", "negative_stride", "all_ignored")


def _loss_id(case):
    options = ",".join(f"{k}={'w' if isinstance(v, np.ndarray) else v}" for k, v in case.kwargs.items())
    return f"{case.name}({options})-{'x'.join(map(str, case.shape))}-{case.target}"


def _target(case, shape, variant, rng):
    classes = case.shape[1]
    if case.target == "same":
        return _input(shape, variant, rng) if case.name == "MSELoss" else rng.uniform(size=shape)
    class_axis = 0 if variant == "unbatched" else 1
    target_shape = shape[:class_axis] + shape[class_axis + 1:]
    if case.target == "probability":
        p = rng.uniform(size=shape)
        return p / p.sum(axis=class_axis, keepdims=True)
    target = rng.integers(0, classes, size=target_shape)
    ignore = case.kwargs.get("ignore_index")
    if ignore is not None:
        if variant == "all_ignored":
            target = np.full(target_shape, ignore)
        elif target.size > 1:
            target.flat[::3] = ignore                             # a third of the targets ignored
    return target


def _loss_applies(case, variant):
    if variant == "all_ignored":
        return "ignore_index" in case.kwargs
    # PyTorch's unbatched form of a class-index loss is (C,) only; an elementwise loss has no batch dimension
    return variant != "unbatched" or (case.target != "same" and len(case.shape) == 2)


LOSS_PARAMS = [pytest.param(case, variant, id=f"{_loss_id(case)}-{variant}")
               for case in LOSS_CASES for variant in LOSS_VARIANTS if _loss_applies(case, variant)]


@pytest.mark.parametrize("case,variant", LOSS_PARAMS)
def test_loss_matches_torch(case, variant):
    rng = np.random.default_rng(1)
    shape = (0,) + case.shape[1:] if variant == "empty" else case.shape[1:] if variant == "unbatched" else case.shape
    x = _input(shape, variant, rng)
    target = _target(case, shape, variant, rng)
    torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
    criterion = getattr(mg.nn, case.name)(**case.kwargs)
    criterion_torch = getattr(torch.nn, case.name)(**torch_kwargs)
    x_torch = torch.tensor(_dense(x), requires_grad=True)
    try:
        loss_torch = criterion_torch(x_torch, torch.from_numpy(_dense(target)))
    except RuntimeError:                                          # e.g. a weight that no longer broadcasts
        with pytest.raises(ValueError, match=case.name):                   # our message names the loss
            criterion(x, target)
        return
    loss = criterion(x, target)
    ref = loss_torch.detach().numpy()
    assert np.asarray(loss).shape == ref.shape
    np.testing.assert_allclose(np.asarray(loss), ref, rtol=RTOL, atol=1e-300)   # nan where torch has nan
    grad = rng.standard_normal(ref.shape) if case.kwargs["reduction"] == "none" else np.array(1.3)
    loss_torch.backward(torch.from_numpy(grad))
    dx = criterion.backward(grad)
    _close(dx, x_torch.grad, "input gradient")
    assert np.isfinite(np.asarray(dx)).all(), "a gradient must never be nan (torch's is finite here)"


# -- options minigrad does not implement, and device= ------------------------------------------------------

UNSUPPORTED = [
    ("MSELoss", (), {"size_average": False}, "size_average"),
    ("CrossEntropyLoss", (), {"reduce": False}, "reduce"),
    ("NLLLoss", (), {"size_average": True}, "size_average"),
    ("BCEWithLogitsLoss", (), {"reduce": True}, "reduce"),
]


@pytest.mark.parametrize("name,args,kwargs,option", UNSUPPORTED, ids=lambda v: str(v))
def test_unsupported_options_raise_naming_the_option(name, args, kwargs, option):
    with pytest.raises(NotImplementedError, match=f"{option}=.*use reduction="):
        getattr(mg.nn, name)(*args, **kwargs)


def test_conv_transpose_refuses_other_padding_modes_like_torch():
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        mg.nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(ValueError):
        torch.nn.ConvTranspose2d(1, 1, 3, padding_mode="reflect")


@pytest.mark.parametrize("make", [lambda **kw: mg.nn.Linear(3, 2, **kw), lambda **kw: mg.nn.Conv2d(1, 2, 3, **kw),
                                  lambda **kw: mg.nn.ConvTranspose2d(1, 2, 3, **kw),
                                  lambda **kw: mg.nn.BatchNorm2d(2, **kw), lambda **kw: mg.nn.LayerNorm(4, **kw)],
                         ids=["Linear", "Conv2d", "ConvTranspose2d", "BatchNorm2d", "LayerNorm"])
def test_device_argument_places_the_layer_like_to(make):
    """device='cpu' (PyTorch's name) puts parameters and buffers on NumPy; 'cuda' is .to('cuda')."""
    mg.manual_seed(0)
    layer = make(device="cpu", dtype="float64")
    assert layer.backend == "numpy" and layer.dtype == np.float64
    mg.manual_seed(0)
    reference = make(dtype="float64")
    for key, value in reference.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[key], value)
    if not cupy_available():
        with pytest.raises(BackendUnavailableError, match="CuPy"):
            make(device="cuda")
