"""SiLU ... Threshold (nn/activation_more.py): output and input gradient vs PyTorch in float64 (1e-10) and float32,
the gradient exactly AT every kink (0, +-3, the thresholds, min/max) vs PyTorch, NaN and overflow behaviour,
finite differences, PReLU's parameter (per channel, accumulating, frozen), the functional forms, the strict
backend, each backend (the cupy case under MINIGRAD_TEST_CUPY=sim), reprs and error messages."""
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as NF
from minigrad.backend import backend_of
from support.zoo_checks import assert_close, strict_run, torch_run

torch = pytest.importorskip("torch")
F, T = torch.nn.functional, torch.nn

# name -> (minigrad layer factory, torch module factory): every option value tested here
LAYERS = {
    "SiLU": (lambda: mg.nn.SiLU(), lambda: T.SiLU()),
    "Mish": (lambda: mg.nn.Mish(), lambda: T.Mish()),
    "Hardswish": (lambda: mg.nn.Hardswish(), lambda: T.Hardswish()),
    "Hardsigmoid": (lambda: mg.nn.Hardsigmoid(), lambda: T.Hardsigmoid()),
    "ELU": (lambda: mg.nn.ELU(), lambda: T.ELU()),
    "ELU_0.3": (lambda: mg.nn.ELU(0.3), lambda: T.ELU(0.3)),
    "ELU_-1.2": (lambda: mg.nn.ELU(alpha=-1.2), lambda: T.ELU(alpha=-1.2)),
    "SELU": (lambda: mg.nn.SELU(), lambda: T.SELU()),
    "CELU": (lambda: mg.nn.CELU(), lambda: T.CELU()),
    "CELU_0.7": (lambda: mg.nn.CELU(0.7), lambda: T.CELU(0.7)),
    "CELU_-2.5": (lambda: mg.nn.CELU(-2.5), lambda: T.CELU(-2.5)),
    "Softplus": (lambda: mg.nn.Softplus(), lambda: T.Softplus()),
    "Softplus_2_1": (lambda: mg.nn.Softplus(2.0, 1.0), lambda: T.Softplus(2.0, 1.0)),
    "Softplus_0.5_-1": (lambda: mg.nn.Softplus(beta=0.5, threshold=-1.0), lambda: T.Softplus(0.5, -1.0)),
    "Softplus_-1.5_2": (lambda: mg.nn.Softplus(-1.5, 2.0), lambda: T.Softplus(-1.5, 2.0)),
    "ReLU6": (lambda: mg.nn.ReLU6(), lambda: T.ReLU6()),
    "Hardtanh": (lambda: mg.nn.Hardtanh(), lambda: T.Hardtanh()),
    "Hardtanh_-2_0.5": (lambda: mg.nn.Hardtanh(-2.0, 0.5), lambda: T.Hardtanh(-2.0, 0.5)),
    "Hardtanh_0_inf": (lambda: mg.nn.Hardtanh(0.0, float("inf")), lambda: T.Hardtanh(0.0, float("inf"))),
    "Softsign": (lambda: mg.nn.Softsign(), lambda: T.Softsign()),
    "Tanhshrink": (lambda: mg.nn.Tanhshrink(), lambda: T.Tanhshrink()),
    "Threshold_0.1_20": (lambda: mg.nn.Threshold(0.1, 20.0), lambda: T.Threshold(0.1, 20.0)),
    "Threshold_-1_-3": (lambda: mg.nn.Threshold(-1.0, -3.0), lambda: T.Threshold(-1.0, -3.0)),
    "PReLU": (lambda: mg.nn.PReLU(dtype="float64"), lambda: T.PReLU(dtype=torch.float64)),
    "PReLU_5": (lambda: mg.nn.PReLU(5, 0.1, dtype="float64"), lambda: T.PReLU(5, 0.1, dtype=torch.float64)),
}

# the points where each function changes formula: the gradient there must be PyTorch's side of the kink
KINKS = {
    "SiLU": [0.0, -0.0], "Mish": [0.0, -0.0], "Hardswish": [-3.0, 3.0, 0.0, -0.0],
    "Hardsigmoid": [-3.0, 3.0, 0.0], "ELU": [0.0, -0.0], "ELU_0.3": [0.0, -0.0], "ELU_-1.2": [0.0, -0.0],
    "SELU": [0.0, -0.0], "CELU": [0.0, -0.0], "CELU_0.7": [0.0, -0.0], "CELU_-2.5": [0.0, -0.0],
    "Softplus": [20.0, 0.0], "Softplus_2_1": [0.5, 0.0], "Softplus_0.5_-1": [-2.0, 0.0],
    "Softplus_-1.5_2": [-4.0 / 3.0, 0.0], "ReLU6": [0.0, -0.0, 6.0], "Hardtanh": [-1.0, 1.0, 0.0],
    "Hardtanh_-2_0.5": [-2.0, 0.5], "Hardtanh_0_inf": [0.0, -0.0], "Softsign": [0.0, -0.0],
    "Tanhshrink": [0.0, -0.0], "Threshold_0.1_20": [0.1, 0.0], "Threshold_-1_-3": [-1.0, -3.0],
    "PReLU": [0.0, -0.0], "PReLU_5": [0.0, -0.0],
}


def _input(dtype, shape=(3, 5, 4), scale=3.0, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape) * scale
    x[0, 0, :2] = [0.0, -0.0]
    return x.astype(dtype)


def _torch_module(name, dtype):
    module = LAYERS[name][1]()
    return module.to(getattr(torch, dtype))


def _layer(name, dtype):
    layer = LAYERS[name][0]()
    return layer.to(dtype=dtype) if layer.parameters() else layer


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_matches_torch(name, dtype):
    layer, module = _layer(name, dtype), _torch_module(name, dtype)
    x = _input(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    expected, (expected_dx,) = torch_run(module, [x], dy)
    assert_close(layer(x), expected, dtype, "output")
    assert_close(layer.backward(dy), expected_dx, dtype, "input gradient")
    for pname, parameter in layer.named_parameters():
        assert_close(parameter.grad, dict(module.named_parameters())[pname].grad, dtype, f"gradient of {pname}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(KINKS))
def test_gradient_exactly_at_the_kinks_is_pytorchs(name, dtype):
    """Inputs exactly at each kink (and beside it): output, input gradient and PReLU's weight gradient."""
    points = []
    for kink in KINKS[name]:
        points += [kink, np.nextafter(kink, np.inf, dtype=dtype), np.nextafter(kink, -np.inf, dtype=dtype)]
    x = np.array(points, dtype=dtype)
    if name == "PReLU_5":
        x = np.resize(x, (2, 5, len(points)))          # (N, C, L): the kinks in every channel
    dy = np.linspace(0.5, 1.5, x.size).reshape(x.shape).astype(dtype)
    layer, module = _layer(name, dtype), _torch_module(name, dtype)
    expected, (expected_dx,) = torch_run(module, [x], dy)
    y, dx = layer(x), layer.backward(dy)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)
    np.testing.assert_allclose(dx, expected_dx.numpy(), rtol=1e-12 if dtype == "float64" else 1e-6, atol=0)
    np.testing.assert_array_equal(np.signbit(dx[dx == 0]), np.signbit(expected_dx.numpy()[dx == 0]))
    for pname, parameter in layer.named_parameters():
        np.testing.assert_allclose(parameter.grad, dict(module.named_parameters())[pname].grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_nan_and_infinities_like_torch(name):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, -1.0])
    if name == "PReLU_5":
        x = np.resize(x, (1, 5, 5))
    dy = np.ones_like(x)
    layer, module = _layer(name, "float64"), _torch_module(name, "float64")
    expected, (expected_dx,) = torch_run(module, [x], dy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)           # inf - inf, 0 * inf: NaN, as in PyTorch
        y, dx = layer(x), layer.backward(dy)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12)   # NaN where torch has NaN
    if name == "Softsign":       # torch's autograd of x / (|x| + 1) is 1/(|x|+1) - |x|/(|x|+1)^2: NaN at +-inf
        assert np.isnan(expected_dx.numpy()[1:3]).all()
        np.testing.assert_array_equal(dx[1:3], [0.0, 0.0])   # the limit, 1/(1 + |x|)^2 -> 0
        dx, expected_dx = dx[[0, 3, 4]], expected_dx[[0, 3, 4]]
    np.testing.assert_allclose(dx, expected_dx.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["SiLU", "Mish", "ELU", "SELU", "CELU_0.7", "Softplus", "Softplus_-1.5_2",
                                  "Softsign", "Tanhshrink"])
def test_large_inputs_do_not_overflow(name):
    """|x| up to 1e300: no overflow warning, finite output and gradient, PyTorch's values wherever it is finite."""
    x = np.array([-1e300, -1e4, -800.0, -40.0, 40.0, 800.0, 1e4, 1e300])
    dy = np.ones_like(x)
    layer = _layer(name, "float64")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, dx = layer(x), layer.backward(dy)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    expected, (expected_dx,) = torch_run(_torch_module(name, "float64"), [x], dy)
    finite = np.isfinite(expected.detach().numpy()) & np.isfinite(expected_dx.numpy())
    np.testing.assert_allclose(y[finite], expected.detach().numpy()[finite], rtol=1e-12)
    np.testing.assert_allclose(dx[finite], expected_dx.numpy()[finite], rtol=1e-12, atol=1e-300)


def test_softplus_stays_finite_where_torchs_overflows():
    """Below a large threshold PyTorch computes log1p(exp(beta x)): inf at x = 800 and a NaN gradient."""
    x = np.array([800.0, -800.0])
    layer = mg.nn.Softplus(threshold=1000.0)
    np.testing.assert_array_equal(layer(x), [800.0, 0.0])
    np.testing.assert_array_equal(layer.backward(np.ones(2)), [1.0, 0.0])


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_finite_differences(name):
    x = _input("float64", shape=(2, 5, 3), scale=1.5, seed=3)
    for kink in KINKS[name]:                         # keep every entry 1e-3 away from a kink
        near = np.abs(x - kink) < 1e-3
        x[near] += 3e-3
    x[0, 0, :2] = [0.3, -0.4]
    assert mg.gradcheck(LAYERS[name][0](), x)


def test_hardsigmoid_gradient_is_pytorchs_float32_one_sixth():
    layer = mg.nn.Hardsigmoid()
    layer(np.zeros(3))
    assert layer.backward(np.ones(3)).tolist() == [float(np.float32(1 / 6))] * 3 != [1 / 6] * 3


# -- PReLU: the parameter --------------------------------------------------------------------------------
@pytest.mark.parametrize("num_parameters,shape", [(1, (4, 3, 5, 6)), (1, ()), (1, (7,)), (3, (4, 3)),
                                                  (3, (4, 3, 5)), (3, (2, 3, 5, 6)), (3, (2, 3, 4, 2, 2))])
def test_prelu_weight_gradient_accumulates_like_torch(num_parameters, shape):
    rng = np.random.default_rng(0)
    module = T.PReLU(num_parameters).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(rng.standard_normal(num_parameters)))
    layer = mg.nn.PReLU(num_parameters, dtype="float64")
    layer.load_state_dict({k: v.numpy().copy() for k, v in module.state_dict().items()})
    assert list(layer.state_dict()) == ["weight"]
    for step in range(2):                            # the second backward adds to weight.grad, as in torch
        x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
        expected, (expected_dx,) = torch_run(module, [x], dy)
        assert_close(layer(x), expected, "float64", f"output {step}")
        assert_close(layer.backward(dy), expected_dx, "float64", f"input gradient {step}")
        assert_close(layer.weight.grad, module.weight.grad, "float64", f"weight gradient after {step + 1} steps")


def test_prelu_construction_like_torch():
    layer = mg.nn.PReLU(4, init=-0.5)
    assert layer.weight.shape == (4,) and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.full(4, -0.5, "float32"))
    assert mg.nn.PReLU(2, 0.1, "cpu", "float64").weight.dtype == np.float64
    layer.weight.data[...] = 3.0
    layer.reset_parameters()
    np.testing.assert_array_equal(layer.weight.data, np.full(4, -0.5, "float32"))
    with pytest.raises(TypeError, match=r'PReLU: device=.float64. is a dtype.*PReLU\(1, 0.25, dtype="float64"\)'):
        mg.nn.PReLU(1, 0.25, "float64")


def test_prelu_backward_parameters_fills_the_weight_gradient_only():
    """As the first layer (its input is data): backward_parameters gives the same weight gradient, no dx."""
    x = _input("float64", shape=(2, 3, 4))
    grads = []
    for run in ("backward", "backward_parameters"):
        layer = mg.nn.PReLU(3, dtype="float64")
        layer(x)
        assert (getattr(layer, run)(np.ones_like(x)) is None) == (run == "backward_parameters")
        grads.append(layer.weight.grad)
    np.testing.assert_array_equal(grads[0], grads[1])


def test_prelu_frozen_weight_gets_no_gradient():
    layer = mg.nn.PReLU(3, dtype="float64").requires_grad_(False)
    x = _input("float64", shape=(2, 3, 4))
    layer(x)
    dx = layer.backward(np.ones_like(x))
    assert layer.weight.grad is None
    np.testing.assert_array_equal(dx, np.where(x > 0, 1.0, 0.25))


def test_prelu_errors_name_the_layer():
    layer = mg.nn.PReLU(3)
    with pytest.raises(ValueError, match=r"PReLU: expected input with 3 channels \(num_parameters=3\) in dimension "
                                         r"1, got input of shape \(2, 4, 5\)"):
        layer(np.ones((2, 4, 5), "float32"))
    with pytest.raises(ValueError, match=r"PReLU: .*got input of shape \(3,\) \(1 channel: a 0-d or 1-d"):
        layer(np.ones(3, "float32"))
    with pytest.raises(TypeError, match="PReLU: input has dtype float64 but weight has dtype float32"):
        layer(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"PReLU: expected a floating-point input .*int64"):
        layer(np.ones((2, 3), "int64"))
    layer(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"PReLU: expected grad_out of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2), "float32"))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="PReLU: num_parameters must be a positive int"):
            mg.nn.PReLU(bad)
    with pytest.raises(ValueError, match="PReLU: init must be a finite number"):
        mg.nn.PReLU(1, float("nan"))


# -- the functional forms -----------------------------------------------------------------------------------
FORMS = [
    ("silu", {}), ("mish", {}), ("hardswish", {}), ("hardsigmoid", {}), ("elu", {}), ("elu", {"alpha": 0.4}),
    ("selu", {}), ("celu", {}), ("celu", {"alpha": 1.7}), ("softplus", {}), ("softplus", {"beta": 2, "threshold": 1}),
    ("relu6", {}), ("hardtanh", {}), ("hardtanh", {"min_val": -0.3, "max_val": 2.0}),
    ("hardtanh", {"min_val": 0.5, "max_val": 0.5}), ("softsign", {}), ("tanhshrink", {}),
    ("threshold", {"threshold": 0.2, "value": -4.0}), ("silu", {"inplace": True}), ("elu", {"inplace": True}),
]


@pytest.mark.parametrize("name,kwargs", FORMS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(FORMS)])
def test_functional_form_matches_torch(name, kwargs):
    x = _input("float64")
    before = x.copy()
    ours = getattr(mg.functional, name)(x, **kwargs)
    np.testing.assert_array_equal(x, before)                   # inplace=True still returns a new array
    ref = getattr(F, name)(torch.from_numpy(x.copy()), **kwargs).numpy()
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_functional_prelu_takes_an_array_or_a_parameter():
    x, weight = _input("float64", shape=(2, 3, 4)), np.array([0.1, -0.2, 0.3])
    ref = F.prelu(torch.from_numpy(x), torch.from_numpy(weight)).numpy()
    np.testing.assert_allclose(mg.functional.prelu(x, weight), ref, rtol=1e-12)
    layer = mg.nn.PReLU(3, dtype="float64")
    assert np.array_equal(NF.prelu(x, layer.weight), layer(x))
    with pytest.raises(ValueError, match=r"prelu: expected weight to be a scalar or 1-D array, got shape \(3, 1\)"):
        mg.functional.prelu(x, weight.reshape(3, 1))
    with pytest.raises(ValueError, match="prelu: expected input with 3 channels"):
        mg.functional.prelu(x.transpose(1, 0, 2), weight)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_functional_form_is_the_layer_forward_bit_for_bit(name):
    layer = _layer(name, "float32")
    x = _input("float32", shape=(2, 5, 3))
    form = {"SiLU": "silu", "Mish": "mish", "Hardswish": "hardswish", "Hardsigmoid": "hardsigmoid",
            "SELU": "selu", "ReLU6": "relu6", "Softsign": "softsign", "Tanhshrink": "tanhshrink"}.get(name)
    y = layer(x)
    if form is not None:
        assert np.array_equal(getattr(mg.functional, form)(x), y)
    elif isinstance(layer, mg.nn.Threshold):
        assert np.array_equal(mg.functional.threshold(x, layer.threshold, layer.value), y)
    elif isinstance(layer, mg.nn.PReLU):
        assert np.array_equal(mg.functional.prelu(x, layer.weight), y)
    elif isinstance(layer, mg.nn.Hardtanh):
        assert np.array_equal(mg.functional.hardtanh(x, layer.min_val, layer.max_val), y)
    elif isinstance(layer, mg.nn.Softplus):
        assert np.array_equal(mg.functional.softplus(x, layer.beta, layer.threshold), y)
    else:
        assert np.array_equal(getattr(mg.functional, type(layer).__name__.lower())(x, layer.alpha), y)


# -- backends, dtypes, reprs, errors -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_strict_backend(name):
    x = _input("float32")
    if name == "PReLU_5":
        x = _input("float32", shape=(3, 5, 4))
    strict_run(_layer(name, "float32"), [x], np.ones_like(x))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_runs_on_each_backend_keeping_the_dtype(backend, xp, dtype):
    x = xp.asarray(_input(dtype, shape=(3, 5, 4)))
    for name in LAYERS:
        layer = _layer(name, dtype)
        y = layer(x)
        dx = layer.backward(xp.ones_like(y))
        assert backend_of(y) == backend_of(dx) == backend and y.dtype == dx.dtype == np.dtype(dtype), name
        for parameter in layer.parameters():
            assert backend_of(parameter.grad) == backend and parameter.grad.dtype == np.dtype(dtype)
        reference = _layer(name, dtype).to("numpy")
        np.testing.assert_allclose(mg.backend.to_backend(y, "numpy"), reference(_input(dtype, shape=(3, 5, 4))),
                                   rtol=1e-6)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_repr_is_pytorchs(name):
    assert repr(LAYERS[name][0]()) == repr(LAYERS[name][1]())


def test_inplace_and_deprecated_arguments_like_torch():
    x = _input("float64")
    before = x.copy()
    for cls in (mg.nn.SiLU, mg.nn.Mish, mg.nn.Hardswish, mg.nn.Hardsigmoid, mg.nn.SELU, mg.nn.ReLU6, mg.nn.CELU,
                mg.nn.Hardtanh):
        layer = cls(inplace=True)
        assert layer(x) is not x and repr(layer) == repr(getattr(T, cls.__name__)(inplace=True))
    assert repr(mg.nn.ELU(2.0, True)) == repr(T.ELU(2.0, True))
    assert repr(mg.nn.Threshold(0.5, 1.0, True)) == repr(T.Threshold(0.5, 1.0, True))
    np.testing.assert_array_equal(x, before)
    with pytest.warns(FutureWarning) as record:
        layer = mg.nn.Hardtanh(min_value=-3.0, max_value=2.0)
    assert ["min_value" in str(w.message) for w in record] == [True, False]
    assert "max_value` is deprecated" in str(record[1].message)
    assert (layer.min_val, layer.max_val) == (-3.0, 2.0)


@pytest.mark.parametrize("name", ["Softsign", "Tanhshrink"])
def test_argumentless_layers_refuse_arguments_like_torch(name):
    for args, kwargs in (((1,), {}), ((), {"inplace": True})):
        with pytest.raises(TypeError):
            getattr(T, name)(*args, **kwargs)
        with pytest.raises(TypeError, match=f"{name}.. takes no arguments"):
            getattr(mg.nn, name)(*args, **kwargs)


@pytest.mark.parametrize("make,match", [
    (lambda: mg.nn.ELU(float("nan")), "ELU: alpha must be a finite number"),
    (lambda: mg.nn.ELU("1"), "ELU: alpha must be a finite number"),
    (lambda: mg.nn.CELU(0.0), "CELU: alpha must not be 0"),
    (lambda: mg.nn.Softplus(0), "Softplus: beta must not be 0"),
    (lambda: mg.nn.Softplus(1.0, float("nan")), "Softplus: threshold must be a number"),
    (lambda: mg.nn.Hardtanh(1.0, 1.0), "Hardtanh: max_val must be greater than min_val"),
    (lambda: mg.nn.Hardtanh(2.0, -1.0), "Hardtanh: max_val must be greater than min_val"),
    (lambda: mg.nn.Threshold(None, 1.0), "Threshold: threshold must be a number"),
    (lambda: mg.nn.Threshold(0.0, True), "Threshold: value must be a number"),
    (lambda: mg.functional.hardtanh(np.ones(2), 1.0, 0.0), "hardtanh: max_val must be at least min_val"),
    (lambda: mg.functional.softplus(np.ones(2), 0.0), "softplus: beta must not be 0"),
    (lambda: mg.functional.celu(np.ones(2), 0.0), "celu: alpha must not be 0"),
])
def test_bad_options_are_refused_naming_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bad_inputs_are_refused_naming_the_layer(name):
    layer = _layer(name, "float32")
    label = type(layer).__name__
    with pytest.raises(TypeError, match=rf"{label}: expected a floating-point input .*int64"):
        layer(np.arange(10).reshape(2, 5))
    with pytest.raises(RuntimeError, match=rf"{label}: backward called before forward"):
        layer.backward(np.ones((2, 5), "float32"))
    layer(np.ones((2, 5), "float32"))
    with pytest.raises(ValueError, match=rf"{label}: expected grad_out of shape \(2, 5\)"):
        layer.backward(np.ones((5, 2), "float32"))
    layer(np.ones((2, 5), "float32"))
    with pytest.raises(TypeError, match=rf"{label}: expected grad_out to be a NumPy or CuPy array, got list"):
        layer.backward([[1.0] * 5] * 2)
