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
    refused: tuple = ()       # variants minigrad refuses on purpose (ValueError naming the layer), where torch's
                              # result is broken (InstanceNorm2d's running statistics become NaN on an empty batch)
    positive: bool = False    # the input is |x|: the layer's domain is x >= 0 (LPPool2d with p = 3.5)
    indices: int = 0          # > 0: the input is int64 indices in [0, indices), which get no gradient (Embedding)


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
    for name in ("SiLU", "Mish", "Hardswish", "Hardsigmoid", "SELU", "ReLU6", "Softsign", "Tanhshrink"):
        yield Case(name, (), {}, elementwise, unbatched=True)
    for alpha in ((), (0.5,), (2.0,), (-0.7,)):
        yield Case("ELU", alpha, {}, elementwise, unbatched=True)
        yield Case("CELU", alpha, {}, elementwise, unbatched=True)
    for kwargs in ({}, {"beta": 2.0}, {"beta": 2.0, "threshold": 0.5}, {"beta": 0.5, "threshold": -100.0},
                   {"threshold": 1.0}, {"beta": -1.5, "threshold": 0.3}):      # beta * x above the threshold too
        yield Case("Softplus", (), kwargs, elementwise, unbatched=True)
    for kwargs in ({}, {"min_val": -0.5, "max_val": 0.5}, {"min_val": 0.0, "max_val": 6.0},
                   {"min_val": -2.0, "max_val": 0.25}):
        yield Case("Hardtanh", (), kwargs, elementwise, unbatched=True)
    for args in ((0.1, 20.0), (-0.5, 0.0), (0.0, -1.0), (1.0, 1.0)):
        yield Case("Threshold", args, {}, elementwise, unbatched=True)
    for args, shape in (((), elementwise), ((), (6, 4)), ((), (2, 4, 3, 5)), ((4,), elementwise), ((4,), (6, 4)),
                        ((4,), (2, 4, 3, 5)), ((4, -0.1), (2, 4, 3, 5))):
        yield Case("PReLU", args, {}, shape, unbatched=True)   # unbatched: PyTorch's channel rule (or its error)
    # -- normalisation --
    for groups in (1, 2, 3, 6):
        for kwargs in ({}, {"affine": False}, {"bias": False}, {"eps": 1e-3}):
            for shape in ((4, 6), (3, 6, 5), (2, 6, 3, 4), (2, 6, 2, 3, 2))[groups == 6:]:   # not 1 value a group
                yield Case("GroupNorm", (groups, 6), kwargs, shape)
    yield Case("GroupNorm", (2, 6), {}, (2, 6, 3, 4), train=False)
    for train in (True, False):
        for kwargs in ({}, {"affine": True}, {"affine": True, "bias": False}, {"eps": 1e-3},
                       {"track_running_stats": True}, {"track_running_stats": True, "affine": True},
                       {"track_running_stats": True, "momentum": None}, {"track_running_stats": True, "momentum": 0.5,
                                                                         "eps": 1e-3, "affine": True}):
            refused = ("empty",) if train and kwargs.get("track_running_stats") and not kwargs.get("affine") else ()
            yield Case("InstanceNorm2d", (4,), kwargs, (3, 4, 5, 6), unbatched=True, train=train, refused=refused)
    for size in (1, 2, 3, 5, 6, 9):
        for kwargs in ({}, {"alpha": 0.5, "beta": 0.6, "k": 2.0}, {"alpha": 2.0, "beta": 1.5, "k": 0.5}):
            yield Case("LocalResponseNorm", (size,), kwargs, (2, 6, 5))
            yield Case("LocalResponseNorm", (size,), kwargs, (2, 6, 3, 4), unbatched=True)
            yield Case("LocalResponseNorm", (size,), kwargs, (2, 5, 2, 3, 2), unbatched=True)
    # -- regularisation, resampling and padding --
    image = (2, 4, 7, 8)
    for cls in ("Dropout2d", "AlphaDropout"):     # random masks: only what is deterministic (p=0, p=1, eval)
        for p, train in ((0.0, True), (1.0, True), (0.5, False), (0.2, False)):
            yield Case(cls, (), {"p": p}, image, unbatched=cls == "AlphaDropout", train=train)
    yield Case("AlphaDropout", (), {"p": 0.0, "inplace": True}, elementwise, unbatched=True)
    upsample = [{"size": 5}, {"size": (3, 11)}, {"size": (14, 8)}, {"size": 1}, {"scale_factor": 2},
                {"scale_factor": 3.0}, {"scale_factor": 1.5}, {"scale_factor": 0.5}, {"scale_factor": (2, 1.5)},
                {"scale_factor": (0.7, 2.6)}, {"scale_factor": 1.3, "recompute_scale_factor": True},
                {"scale_factor": (0.6, 1.7), "recompute_scale_factor": False}]
    for mode, corners in (("nearest", None), ("nearest-exact", None), ("bilinear", None), ("bilinear", False),
                          ("bilinear", True)):
        for kwargs in upsample:
            yield Case("Upsample", (), {**kwargs, "mode": mode, "align_corners": corners}, image)
    for mode, corners in (("nearest", None), ("nearest-exact", None), ("linear", False), ("linear", True)):
        for kwargs in ({"size": 5}, {"size": (12,)}, {"scale_factor": 1.5}, {"scale_factor": (0.5,)}):
            yield Case("Upsample", (), {**kwargs, "mode": mode, "align_corners": corners}, (2, 4, 7))
    for cls in ("UpsamplingNearest2d", "UpsamplingBilinear2d"):
        for kwargs in ({"size": (5, 12)}, {"scale_factor": 2}, {"scale_factor": 1.5}):
            yield Case(cls, (), kwargs, image)
    for factor in (1, 2, 3):
        yield Case("PixelShuffle", (factor,), {}, (2, 36, 3, 4), unbatched=True)
        yield Case("PixelUnshuffle", (factor,), {}, (2, 2, 6, 12), unbatched=True)
    yield Case("PixelShuffle", (2,), {}, (2, 3, 8, 2, 3))                   # (*, C r^2, H, W): any leading dims
    pads = (0, 1, 3, (1, 2, 3, 4), (0, 2, 1, 0), (-1, 2, 0, -2), (2, -1, -3, 1), (-2, -1, -1, -2))
    for cls in ("ZeroPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"):
        for padding in pads:
            yield Case(cls, (padding,), {}, (2, 3, 5, 6), unbatched=True)
    for padding, value in ((1, 0.5), ((1, 2, 3, 4), -2.0), ((-1, 2, 0, -3), 3.25), (0, 1.0)):
        yield Case("ConstantPad2d", (padding, value), {}, (2, 3, 5, 6), unbatched=True)
        yield Case("ConstantPad2d", (padding, value), {}, (2, 2, 3, 5, 6))
    # -- pooling and 1-d signals --
    for size in (1, 3, (2, 5), (None, 3), (3, None), (7, 4), (9, 11), (13, 1)):   # (9, 11), (13, 1): larger than 7x8
        yield Case("AdaptiveMaxPool2d", (size,), {}, conv, unbatched=True)
        yield Case("AdaptiveMaxPool2d", (size,), {"return_indices": True}, conv, unbatched=True)
    for size in ((None, 3), (3, None), (None, None), (9, 11), (13, 1)):
        yield Case("AdaptiveAvgPool2d", (size,), {}, conv, unbatched=True)
    for norm, positive in ((1, False), (2, False), (3, True), (3.5, True), (-1.5, True), (float("inf"), False),
                           (-float("inf"), False)):
        for args, kwargs in (((3,), {}), ((2,), {"stride": 1}), (((2, 3),), {"stride": (2, 1)}),
                             ((3,), {"stride": 2, "ceil_mode": True}), ((2,), {"ceil_mode": True})):
            yield Case("LPPool2d", (norm,) + args, kwargs, conv, unbatched=True, positive=positive)
        yield Case("LPPool1d", (norm, 3), {"stride": 2, "ceil_mode": True}, (2, 4, 8), unbatched=True,
                   positive=positive)
    yield Case("LPPool1d", (2, 2), {}, (2, 4, 9), unbatched=True)
    signal = (2, 4, 9)
    for kwargs in ({}, {"stride": 2}, {"padding": 1}, {"padding": (2,)}, {"stride": 3, "padding": 2}, {"dilation": 2},
                   {"dilation": 2, "padding": 2}, {"groups": 2}, {"groups": 2, "padding": 1, "stride": 2},
                   {"bias": False}, {"padding": "valid"}, {"padding": "same"},
                   {"padding": "same", "dilation": 2}):
        yield Case("Conv1d", (4, 6, 3), kwargs, signal, unbatched=True)
    yield Case("Conv1d", (4, 6, 4), {"padding": "same"}, signal, unbatched=True)        # asymmetric 'same'
    yield Case("Conv1d", (4, 8, 3), {"groups": 4, "padding": 1}, signal, unbatched=True)   # depthwise
    for mode in PADDING_MODES[1:]:
        yield Case("Conv1d", (4, 6, 3), {"padding": 2, "padding_mode": mode}, signal, unbatched=True)
        yield Case("Conv1d", (4, 6, 4), {"padding": "same", "padding_mode": mode, "groups": 2}, signal, unbatched=True)
    for kwargs in ({}, {"stride": 1}, {"stride": 2, "padding": 1}, {"dilation": 2}, {"dilation": 2, "padding": 1},
                   {"ceil_mode": True}, {"stride": 2, "padding": 1, "ceil_mode": True}, {"return_indices": True},
                   {"return_indices": True, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}):
        yield Case("MaxPool1d", (3,), kwargs, signal, unbatched=True)
    for kwargs in ({}, {"stride": 1}, {"padding": 1}, {"padding": 1, "count_include_pad": False},
                   {"ceil_mode": True}, {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
                   {"stride": 2, "padding": 1, "ceil_mode": True}):
        yield Case("AvgPool1d", (3,), kwargs, signal, unbatched=True)
    for size in (1, 4, 9, 13):
        yield Case("AdaptiveAvgPool1d", (size,), {}, signal, unbatched=True)
        yield Case("AdaptiveMaxPool1d", (size,), {}, signal, unbatched=True)
        yield Case("AdaptiveMaxPool1d", (size,), {"return_indices": True}, signal, unbatched=True)
    # -- embeddings --
    for kwargs in ({}, {"padding_idx": 0}, {"padding_idx": 3}, {"padding_idx": -1}, {"scale_grad_by_freq": True},
                   {"padding_idx": 2, "scale_grad_by_freq": True}):
        for shape in ((4, 6), (2, 3, 4), (9,)):        # repeated indices: 24 (or 9) of 10 rows
            yield Case("Embedding", (10, 3), kwargs, shape, unbatched=True, indices=10)


LAYER_CASES = list(_layer_cases())
VARIANTS = ("batch", "empty", "unbatched", "noncontiguous", "negative_stride")


def _case_id(case):
    options = ",".join(f"{k}={v}" for k, v in case.kwargs.items())
    shape = "x".join(map(str, case.shape))
    return f"{case.name}({','.join(map(str, case.args))}{';' if options else ''}{options})-{shape}" + (
        "" if case.train else "-eval")


def _input(shape, variant, rng, indices=0):
    """A float64 array of ``shape`` (int64 indices in [0, indices) if indices > 0) laid out as ``variant`` says
    (the values are what counts)."""
    draw = (lambda size: rng.integers(0, indices, size)) if indices else rng.standard_normal
    if variant == "noncontiguous":
        wide = draw(shape[:-1] + (2 * shape[-1],))
        return wide[..., ::2]                                     # every other column: strided, not contiguous
    if variant == "negative_stride":
        return draw(shape)[..., ::-1]                             # a reversed view: negative strides
    return draw(shape)


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


# (class name, variant) -> where torch itself is wrong, so there is nothing to compare with (minigrad's own tests
# check the right answer instead).
TORCH_QUIRKS = {("PixelUnshuffle", "empty"): "torch's pixel_unshuffle returns an empty input unchanged, (0, C, H, W), "
                                             "not (0, C r^2, H/r, W/r) (tests/nn/test_resample.py checks ours)"}


@pytest.mark.parametrize("case,variant", LAYER_PARAMS)
def test_layer_matches_torch(case, variant):
    if (case.name, variant) in TORCH_QUIRKS:
        pytest.skip(TORCH_QUIRKS[case.name, variant])
    rng = np.random.default_rng(0)
    layer, torch_module = _make_pair(case, rng)
    x = _input(_shape(case, variant), variant, rng, case.indices)
    if case.positive:
        np.abs(x, out=x)                                          # in place: the variant's layout stays
    x_torch = torch.tensor(_dense(x), requires_grad=not case.indices)
    if variant in case.refused:
        with pytest.raises(ValueError, match=case.name):
            layer(x)
        return
    try:
        y_torch = torch_module(x_torch)
    except (RuntimeError, IndexError) as exc:     # e.g. an empty batch with no output pixels (InstanceNorm2d: IndexError)
        with pytest.raises((ValueError, RuntimeError), match=case.name):   # our message names the layer
            layer(x)
        return
    y = layer(x)
    if case.kwargs.get("return_indices"):
        (y, indices), (y_torch, indices_torch) = y, y_torch
        np.testing.assert_array_equal(np.asarray(indices), indices_torch.numpy())
    _close(y, y_torch, "output")
    grad = _input(tuple(y_torch.shape), variant, rng)
    try:
        y_torch.backward(torch.tensor(_dense(grad)))
    except RuntimeError:                        # torch's own backward fails on some empty batches (PixelShuffle)
        assert x.size == 0, "torch's backward failed on a non-empty input"
        x_torch.grad = torch.zeros_like(x_torch)  # the gradient of an empty input: empty
    dx = layer.backward(grad)
    if case.indices:
        assert dx is None, "indices get no gradient"
    else:
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
    target: str               # "index", "probability" or "same" (a float target of the input's shape); "sign"
                              # (+-1 of the input's shape), "sign_rows" (+-1 per row: the shape without its last
                              # axis) or "none"
    inputs: int = 1           # float inputs of that shape before the target (MarginRankingLoss 2, TripletMarginLoss 3)
    domain: str = "real"      # "probability": the inputs are in (0, 1) (BCELoss)


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
        yield LossCase("L1Loss", {"reduction": reduction}, (3, 5, 2), "same")
        for beta in (1.0, 0.5, 2.0, 0.0):                 # beta = 0: PyTorch's L1Loss
            yield LossCase("SmoothL1Loss", {"reduction": reduction, "beta": beta}, (3, 5, 2), "same")
        for delta in (1.0, 0.3, 2.5):
            yield LossCase("HuberLoss", {"reduction": reduction, "delta": delta}, (3, 5, 2), "same")
        for kwargs in ({}, {"weight": np.array([0.5, 2.0])}, {"weight": np.array([[0.5], [2.0], [1.0]])}):
            yield LossCase("BCELoss", {"reduction": reduction, **kwargs}, (3, 2), "same", domain="probability")
        for kl_reduction in (reduction, "batchmean") if reduction == "mean" else (reduction,):
            for log_target in (False, True):
                yield LossCase("KLDivLoss", {"reduction": kl_reduction, "log_target": log_target}, (3, 5, 2), "same")
        for margin in ({}, {"margin": 0.5}, {"margin": -0.3}):
            yield LossCase("MarginRankingLoss", {"reduction": reduction, **margin}, (7,), "sign", inputs=2)
            yield LossCase("MarginRankingLoss", {"reduction": reduction, **margin}, (3, 4), "sign", inputs=2)
            yield LossCase("CosineEmbeddingLoss", {"reduction": reduction, **margin}, (6, 5), "sign_rows", inputs=2)
        for p in (1, 2):
            for kwargs in ({}, {"margin": 0.5}, {"margin": 2.0, "weight": weight}, {"weight": weight}):
                yield LossCase("MultiMarginLoss", {"reduction": reduction, "p": p, **kwargs}, (6, 5), "index")
        for kwargs in ({}, {"margin": 0.5}, {"p": 1.0}, {"swap": True}, {"p": 1.0, "swap": True, "margin": 2.0},
                       {"eps": 0.0}, {"eps": 1e-3, "margin": 3.0, "swap": True}):
            yield LossCase("TripletMarginLoss", {"reduction": reduction, **kwargs}, (6, 5), "none", inputs=3)


LOSS_CASES = list(_loss_cases())
LOSS_VARIANTS = ("batch", "empty", "unbatched", "noncontiguous", "negative_stride", "all_ignored")


def _loss_id(case):
    options = ",".join(f"{k}={'w' if isinstance(v, np.ndarray) else v}" for k, v in case.kwargs.items())
    return f"{case.name}({options})-{'x'.join(map(str, case.shape))}-{case.target}"


def _target(case, shape, variant, rng):
    classes = case.shape[1] if len(case.shape) > 1 else None
    if case.target == "none":
        return None
    if case.target in ("sign", "sign_rows"):
        return rng.choice([-1.0, 1.0], size=shape if case.target == "sign" else shape[:-1])
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
    if variant == "empty" and case.name == "MultiMarginLoss" and case.kwargs["reduction"] != "none":
        return False       # PyTorch leaves the reduced loss of an empty batch uninitialised (any value comes out)
    # PyTorch's unbatched form of a class-index loss is (C,) only; an elementwise loss has no batch dimension
    return variant != "unbatched" or (case.target not in ("same", "sign") and len(case.shape) == 2)


LOSS_PARAMS = [pytest.param(case, variant, id=f"{_loss_id(case)}-{variant}")
               for case in LOSS_CASES for variant in LOSS_VARIANTS if _loss_applies(case, variant)]


@pytest.mark.parametrize("case,variant", LOSS_PARAMS)
def test_loss_matches_torch(case, variant):
    rng = np.random.default_rng(1)
    shape = (0,) + case.shape[1:] if variant == "empty" else case.shape[1:] if variant == "unbatched" else case.shape
    inputs = [_input(shape, variant, rng) for _ in range(case.inputs)]
    if case.domain == "probability":
        for x in inputs:
            x[...] = 1.0 / (1.0 + np.exp(-x))                     # in place: the variant's layout stays
    x = inputs[0]
    target = _target(case, shape, variant, rng)
    targets = () if target is None else (target,)
    torch_kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
    criterion = getattr(mg.nn, case.name)(**case.kwargs)
    criterion_torch = getattr(torch.nn, case.name)(**torch_kwargs)
    inputs_torch = [torch.tensor(_dense(a), requires_grad=True) for a in inputs]
    x_torch = inputs_torch[0]
    try:
        loss_torch = criterion_torch(*inputs_torch, *(torch.from_numpy(_dense(t)) for t in targets))
    except RuntimeError:                                          # e.g. a weight that no longer broadcasts
        with pytest.raises(ValueError, match=case.name):                   # our message names the loss
            criterion(*inputs, *targets)
        return
    loss = criterion(*inputs, *targets)
    ref = loss_torch.detach().numpy()
    assert np.asarray(loss).shape == ref.shape
    np.testing.assert_allclose(np.asarray(loss), ref, rtol=RTOL, atol=1e-300)   # nan where torch has nan
    grad = rng.standard_normal(ref.shape) if case.kwargs["reduction"] == "none" else np.array(1.3)
    loss_torch.backward(torch.from_numpy(grad))
    dx = criterion.backward(grad)
    grads = dx if case.inputs > 1 else (dx,)                      # a loss of several inputs: one gradient each
    assert isinstance(grads, tuple) and len(grads) == case.inputs
    for index, (ours, ref) in enumerate(zip(grads, inputs_torch)):
        _close(ours, ref.grad, f"gradient of input {index}")
        assert np.isfinite(np.asarray(ours)).all(), "a gradient must never be nan (torch's is finite here)"


# -- options minigrad does not implement, and device= ------------------------------------------------------

UNSUPPORTED = [
    ("MSELoss", (), {"size_average": False}, "size_average"),
    ("CrossEntropyLoss", (), {"reduce": False}, "reduce"),
    ("NLLLoss", (), {"size_average": True}, "size_average"),
    ("BCEWithLogitsLoss", (), {"reduce": True}, "reduce"),
    ("L1Loss", (), {"size_average": True}, "size_average"),
    ("SmoothL1Loss", (), {"reduce": False}, "reduce"),
    ("BCELoss", (), {"size_average": False}, "size_average"),
    ("KLDivLoss", (), {"reduce": True}, "reduce"),
    ("MarginRankingLoss", (), {"size_average": True}, "size_average"),
    ("CosineEmbeddingLoss", (), {"reduce": False}, "reduce"),
    ("MultiMarginLoss", (), {"size_average": False}, "size_average"),
    ("TripletMarginLoss", (), {"reduce": True}, "reduce"),
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
