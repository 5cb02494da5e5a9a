"""mg.functional's layer forms (relu, softmax, max_pool2d, linear, cross_entropy, ...) against
torch.nn.functional in float64 (1e-10), bit-identical to their layers' forward, nothing cached."""
import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _t(a):
    return torch.from_numpy(np.array(a, copy=True))


CASES = [
    ("relu", (_x(3, 4),), {}),
    ("leaky_relu", (_x(3, 4),), {"negative_slope": 0.2}),
    ("gelu", (_x(3, 4),), {}),
    ("gelu", (_x(3, 4),), {"approximate": "tanh"}),
    ("sigmoid", (_x(3, 4),), {}),
    ("tanh", (_x(3, 4),), {}),
    ("softmax", (_x(3, 4, 2),), {"dim": 1}),
    ("softmax", (_x(3, 4),), {"dim": -1}),
    ("log_softmax", (_x(3, 4, 2),), {"dim": 0}),
    ("max_pool2d", (_x(2, 3, 7, 8), 3), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("max_pool2d", (_x(3, 7, 8), 2), {"dilation": 2}),
    ("avg_pool2d", (_x(2, 3, 7, 8), 3), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("avg_pool2d", (_x(2, 3, 7, 8), 2), {"divisor_override": 3, "ceil_mode": True}),
    ("adaptive_avg_pool2d", (_x(2, 3, 7, 8), (3, 2)), {}),
    ("linear", (_x(4, 5), _x(3, 5, seed=1), _x(3, seed=2)), {}),
    ("linear", (_x(2, 4, 5), _x(3, 5, seed=1)), {}),
    ("cross_entropy", (_x(6, 5), np.array([0, 4, 2, 2, 1, 3])), {"label_smoothing": 0.1, "ignore_index": 2}),
    ("cross_entropy", (_x(6, 5), np.array([0, 4, 2, 2, 1, 3])), {"weight": np.linspace(0.5, 2, 5),
                                                                 "reduction": "sum"}),
    ("nll_loss", (_x(6, 5), np.array([0, 4, 2, 2, 1, 3])), {"reduction": "none"}),
    ("mse_loss", (_x(3, 4), _x(3, 4, seed=1)), {"reduction": "sum"}),
    ("binary_cross_entropy_with_logits", (_x(3, 4), np.random.default_rng(3).uniform(size=(3, 4))),
     {"pos_weight": np.linspace(0.5, 2, 4)}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_functional_form_matches_torch(name, args, kwargs):
    ours = getattr(mg.functional, name)(*args, **kwargs)
    torch_args = [_t(a) if isinstance(a, np.ndarray) else a for a in args]
    torch_kwargs = {k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ref = getattr(TF, name)(*torch_args, **torch_kwargs).numpy()
    assert np.asarray(ours).shape == ref.shape and np.asarray(ours).dtype == ref.dtype
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_the_functional_form_is_the_layer_forward_bit_for_bit():
    x = _x(2, 3, 9, 9).astype("float32")
    assert np.array_equal(F.relu(x), mg.nn.ReLU()(x))
    assert np.array_equal(F.max_pool2d(x, 3, 2, 1), mg.nn.MaxPool2d(3, 2, 1)(x))
    assert np.array_equal(F.softmax(x, dim=1), mg.nn.Softmax(dim=1)(x))
    lin = mg.nn.Linear(9, 4)
    bias = lin.bias.data
    assert np.array_equal(F.linear(x, lin.weight.data, bias), lin(x))
    logits, target = _x(8, 10).astype("float32"), np.arange(8) % 10
    assert np.array_equal(F.cross_entropy(logits, target), mg.nn.CrossEntropyLoss()(logits, target))


def test_max_pool2d_return_indices_like_torch():
    x = _x(2, 3, 6, 6)
    y, indices = F.max_pool2d(x, 2, return_indices=True)
    y_ref, indices_ref = TF.max_pool2d(_t(x), 2, return_indices=True)
    np.testing.assert_array_equal(y, y_ref.numpy())
    np.testing.assert_array_equal(indices, indices_ref.numpy())


def test_softmax_dtype_casts_first_like_torch():
    x = _x(3, 4).astype("float32")
    y = F.softmax(x, dim=1, dtype="float64")
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, TF.softmax(_t(x), dim=1, dtype=torch.float64).numpy(), rtol=1e-12)


BUILTIN_SIGNATURES = {"gelu": ["input", "approximate"], "linear": ["input", "weight", "bias"],
                      "softplus": ["input", "beta", "threshold"], "prelu": ["input", "weight"],
                      "pixel_shuffle": ["input", "upscale_factor"], "pixel_unshuffle": ["input", "downscale_factor"],
                      "max_pool2d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                     "return_indices"],
                      "avg_pool2d": ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                                     "divisor_override"],
                      "conv1d": ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
                      "max_pool1d": ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                                     "return_indices"],
                      "avg_pool1d": ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"],
                      "adaptive_avg_pool1d": ["input", "output_size"],
                      "adaptive_max_pool1d": ["input", "output_size", "return_indices"],
                      "adaptive_max_pool2d": ["input", "output_size", "return_indices"]}


def test_functional_forms_are_in_both_namespaces_with_torch_signatures():
    import inspect
    for name in F.__all__:
        assert getattr(mg.functional, name) is getattr(F, name)
        if name in ("conv2d", "unfold", "fold"):
            continue
        ours = list(inspect.signature(getattr(F, name)).parameters)
        try:
            theirs = [p for p in inspect.signature(getattr(TF, name)).parameters if not p.startswith("_")]
        except ValueError:              # a C builtin without a signature: its documented one
            theirs = BUILTIN_SIGNATURES[name]
        if theirs == ["args", "kwargs"]:  # a dispatching wrapper (max_pool2d): its documented signature
            theirs = BUILTIN_SIGNATURES[name]
        assert ours == theirs[:len(ours)], (name, ours, theirs)


def test_functional_errors_are_clear():
    with pytest.raises(ValueError, match=r"linear: expected input with last dimension in_features=5, got input "
                                         r"of shape \(4, 3\)"):
        F.linear(_x(4, 3), _x(2, 5))
    with pytest.raises(ValueError, match=r"expected bias of shape \(2,\), got \(3,\)"):
        F.linear(_x(4, 5), _x(2, 5), _x(3))
    with pytest.raises(NotImplementedError, match="size_average=.*reduction="):
        F.cross_entropy(_x(2, 3), np.array([0, 1]), None, True)


def test_linear_takes_a_layers_parameters_like_torch():
    layer = mg.nn.Linear(5, 3, dtype="float64")
    x = _x(4, 5)
    assert np.array_equal(F.linear(x, layer.weight, layer.bias), layer(x))
    with pytest.raises(TypeError, match="linear: expected weight to be a NumPy or CuPy array, got list"):
        F.linear(x, [[1.0] * 5])
