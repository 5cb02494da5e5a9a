"""mg.nn.init against torch.nn.init: signatures, exact deterministic fills, statistics of the random ones,
seeding, in-place semantics on Parameters and arrays, errors."""
import inspect
import math
import statistics

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import init
from support.strict_backend import StrictArray, to_strict

torch = pytest.importorskip("torch")

NAMES = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
         "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_"]
NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
SHAPE = (256, 512)
N = SHAPE[0] * SHAPE[1]


def _params(fn):
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", NAMES)
def test_signature_matches_torch(name):
    ours, theirs = getattr(init, name), getattr(torch.nn.init, name)
    assert _params(ours) == _params(theirs)
    assert name in init.__all__
    assert ours.__doc__ and ours.__doc__.strip().splitlines()[0]


def test_reachable_as_attribute_and_helpers_kept():
    assert mg.nn.init is init and "init" in mg.nn.__all__
    mg.manual_seed(5)
    w = init.kaiming_uniform((30, 40), 40)
    b = init.fan_in_bias((30,), 40)
    u = init.uniform((1000,), 0.5, "float64")
    bound = 1 / math.sqrt(40) * (1 + 1e-6)   # float32 rounding
    assert w.dtype == np.float32 and w.shape == (30, 40) and np.abs(w).max() <= bound
    assert b.dtype == np.float32 and b.shape == (30,) and np.abs(b).max() <= bound
    assert u.dtype == np.float64 and -0.5 <= u.min() and u.max() < 0.5
    mg.manual_seed(5)   # the same draws as before: mg.random.uniform(-bound, bound, shape, dtype)
    a = math.sqrt(5)
    exact = math.sqrt(2.0 / (1.0 + a * a)) * math.sqrt(3.0 / 40)
    np.testing.assert_array_equal(w, mg.random.uniform(-exact, exact, (30, 40), "float32"))
    np.testing.assert_array_equal(b, mg.random.uniform(-1 / math.sqrt(40), 1 / math.sqrt(40), (30,), "float32"))


# --- deterministic: exactly torch's values -----------------------------------------------------------------------

@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_calculate_gain_matches_torch(nonlinearity):
    assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)
    for param in (0.2, 3, 0):
        assert math.isclose(init.calculate_gain(nonlinearity, param),
                            torch.nn.init.calculate_gain(nonlinearity, param), rel_tol=1e-15)


def test_calculate_gain_values_and_errors():
    assert init.calculate_gain("tanh") == 5.0 / 3 and init.calculate_gain("selu") == 0.75
    assert math.isclose(init.calculate_gain("leaky_relu"), math.sqrt(2 / (1 + 0.01 ** 2)))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    for bad in (True, "0.2", [0.1]):
        with pytest.raises(ValueError, match="not a valid number"):
            init.calculate_gain("leaky_relu", bad)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (4, 2, 3, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_constant_ones_zeros_match_torch(shape, dtype):
    for ours, theirs, args in [(init.constant_, torch.nn.init.constant_, (3,)),
                               (init.ones_, torch.nn.init.ones_, ()), (init.zeros_, torch.nn.init.zeros_, ())]:
        x = np.full(shape, 7, dtype)
        assert ours(x, *args) is x
        t = theirs(torch.empty(shape, dtype=getattr(torch, dtype)), *args)
        np.testing.assert_array_equal(x, t.numpy())
        assert x.dtype == np.dtype(dtype)
    x = np.empty(shape)
    init.constant_(x, -0.3)
    np.testing.assert_array_equal(x, torch.nn.init.constant_(torch.empty(shape, dtype=torch.float64), -0.3).numpy())


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_eye_matches_torch(shape):
    x = np.full(shape, 9.0, "float32")
    assert init.eye_(x) is x
    np.testing.assert_array_equal(x, torch.nn.init.eye_(torch.empty(shape)).numpy())


@pytest.mark.parametrize("shape,groups", [((4, 3, 5), 1), ((6, 4, 3, 3), 1), ((3, 5, 3, 4), 1),
                                          ((4, 3, 3, 3, 3), 1), ((6, 2, 3, 3), 2), ((8, 6, 5), 2),
                                          ((6, 3, 2, 3, 4), 3)])
def test_dirac_matches_torch(shape, groups):
    x = np.full(shape, 9.0)
    assert init.dirac_(x, groups) is x
    expected = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups).numpy()
    np.testing.assert_array_equal(x, expected)
    assert x.sum() == expected.sum() > 0


def test_dirac_is_an_identity_convolution():
    conv = mg.nn.Conv2d(3, 3, 3, padding=1, bias=False, dtype="float64")
    init.dirac_(conv.weight)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(conv(x), x, atol=1e-12)


# --- random: statistics against theory and torch's sample ------------------------------------------------------

def _torch_sample(fn, *args, **kwargs):
    torch.manual_seed(0)
    return fn(torch.empty(SHAPE, dtype=torch.float64), *args, **kwargs).numpy()


def _check_uniform(x, bound_lo, bound_hi, ref):
    assert bound_lo <= x.min() and x.max() <= bound_hi
    width = bound_hi - bound_lo
    assert x.min() < bound_lo + 0.001 * width and x.max() > bound_hi - 0.001 * width   # the whole range is used
    assert abs(x.mean() - (bound_lo + bound_hi) / 2) < 5 * width / math.sqrt(12 * x.size)
    assert x.std() == pytest.approx(width / math.sqrt(12), rel=0.01)
    assert x.std() == pytest.approx(ref.std(), rel=0.02) and ref.min() >= bound_lo and ref.max() <= bound_hi


def _check_normal(x, mean, std, ref):
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(x.size)
    assert x.std() == pytest.approx(std, rel=0.01)
    assert x.std() == pytest.approx(ref.std(), rel=0.02) and abs(x.mean() - ref.mean()) < 7 * std / math.sqrt(x.size)
    assert abs(x - mean).max() > 3.5 * std   # tails, not a uniform of the same std


def test_uniform_():
    x = np.empty(SHAPE)
    assert init.uniform_(x, -0.5, 2.0) is x
    _check_uniform(x, -0.5, 2.0, _torch_sample(torch.nn.init.uniform_, -0.5, 2.0))
    y = init.uniform_(np.empty(SHAPE))
    _check_uniform(y, 0.0, 1.0, _torch_sample(torch.nn.init.uniform_))


def test_normal_():
    x = np.empty(SHAPE)
    assert init.normal_(x, 1.5, 0.3) is x
    _check_normal(x, 1.5, 0.3, _torch_sample(torch.nn.init.normal_, 1.5, 0.3))
    _check_normal(init.normal_(np.empty(SHAPE)), 0.0, 1.0, _torch_sample(torch.nn.init.normal_))


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.5, 2.0, -1.0, 3.0), (0.0, 1.0, 0.5, 3.0),
                                          (0.0, 0.02, -0.04, 0.04)])
def test_trunc_normal_(mean, std, a, b):
    x = np.empty(SHAPE)
    assert init.trunc_normal_(x, mean, std, a, b) is x
    ref = _torch_sample(torch.nn.init.trunc_normal_, mean, std, a, b)
    assert a <= x.min() and x.max() <= b and a <= ref.min() and ref.max() <= b
    # moments of the truncated normal
    alpha, beta = (a - mean) / std, (b - mean) / std
    nd = statistics.NormalDist()
    z = nd.cdf(beta) - nd.cdf(alpha)
    shift = (nd.pdf(alpha) - nd.pdf(beta)) / z
    t_mean = mean + std * shift
    t_std = std * math.sqrt(1 + (alpha * nd.pdf(alpha) - beta * nd.pdf(beta)) / z - shift ** 2)
    assert abs(x.mean() - t_mean) < 5 * t_std / math.sqrt(N)
    assert x.std() == pytest.approx(t_std, rel=0.01) and x.std() == pytest.approx(ref.std(), rel=0.02)
    assert abs(x.mean() - ref.mean()) < 7 * t_std / math.sqrt(N)
    assert x.min() < a + 0.01 * (b - a) and x.max() > b - 0.05 * (b - a)   # reaches both ends


def test_trunc_normal_float32_and_far_mean_warns():
    x = init.trunc_normal_(np.empty((100, 100), "float32"), std=0.02)
    assert x.dtype == np.float32 and -2.0 <= x.min() and x.max() <= 2.0 and x.std() == pytest.approx(0.02, rel=0.05)
    with pytest.warns(UserWarning, match="more than 2 std"):
        init.trunc_normal_(np.empty((4, 4)), mean=10.0)


@pytest.mark.parametrize("shape", [SHAPE, (64, 32, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier(shape, gain):
    fan_in, fan_out = shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:])
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    torch.manual_seed(0)
    ref = torch.nn.init.xavier_uniform_(torch.empty(shape, dtype=torch.float64), gain).numpy()
    x = init.xavier_uniform_(np.empty(shape), gain)
    assert x.shape == shape
    _check_uniform(x, -bound, bound, ref)
    ref = torch.nn.init.xavier_normal_(torch.empty(shape, dtype=torch.float64), gain).numpy()
    y = init.xavier_normal_(np.empty(shape), gain)
    assert abs(y.mean()) < 5 * std / math.sqrt(y.size)
    assert y.std() == pytest.approx(std, rel=0.01) and y.std() == pytest.approx(ref.std(), rel=0.02)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "FAN_OUT"])
@pytest.mark.parametrize("a,nonlinearity", [(0, "leaky_relu"), (0.2, "leaky_relu"), (math.sqrt(5), "leaky_relu"),
                                            (0, "relu"), (0.3, "relu"), (0, "tanh")])
def test_kaiming(mode, a, nonlinearity):
    shape = (128, 64, 4, 4)
    fan = (64 if mode == "fan_in" else 128) * 16
    gain = torch.nn.init.calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    torch.manual_seed(0)
    ref = torch.nn.init.kaiming_uniform_(torch.empty(shape, dtype=torch.float64), a, mode, nonlinearity).numpy()
    x = init.kaiming_uniform_(np.empty(shape), a, mode, nonlinearity)
    _check_uniform(x, -bound, bound, ref)
    ref = torch.nn.init.kaiming_normal_(torch.empty(shape, dtype=torch.float64), a, mode, nonlinearity).numpy()
    y = init.kaiming_normal_(np.empty(shape), a=a, mode=mode, nonlinearity=nonlinearity)
    _check_normal(y, 0.0, std, ref)


def test_kaiming_zero_element_is_a_noop_with_a_warning():
    x = np.empty((0, 3))
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(x) is x
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_normal_(x) is x


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (6, 6), (4, 3, 2, 2), (20, 2, 3), (1, 7)])
@pytest.mark.parametrize("gain", [1, 0.5, 2.0])
def test_orthogonal(shape, gain):
    x = np.empty(shape)
    assert init.orthogonal_(x, gain) is x
    w = x.reshape(shape[0], -1)
    rows, cols = w.shape
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)), atol=1e-6)
    t = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain).numpy().reshape(rows, cols)
    np.testing.assert_allclose(t @ t.T if rows <= cols else t.T @ t, gram, atol=1e-6)   # same property
    assert np.abs(x).max() <= abs(gain) + 1e-12


@pytest.mark.parametrize("shape", [(5, 8), (8, 5), (3, 2, 2)])
def test_orthogonal_is_torchs_algorithm_on_the_same_draw(shape):
    """QR of the same normal matrix with torch's sign correction (Q unique once diag(R) > 0)."""
    x = init.orthogonal_(np.empty(shape), 1.5, generator=np.random.default_rng(7))
    rows, cols = shape[0], math.prod(shape[1:])
    m = torch.tensor(np.random.default_rng(7).normal(0.0, 1.0, size=(rows, cols)))
    q, r = torch.linalg.qr(m.T if rows < cols else m)
    q = q * torch.diag(r, 0).sign()
    expected = (q.T if rows < cols else q).numpy().reshape(shape) * 1.5
    np.testing.assert_allclose(x, expected, atol=1e-12)


def test_orthogonal_is_random_and_float32():
    a, b = init.orthogonal_(np.empty((6, 6), "float32")), init.orthogonal_(np.empty((6, 6), "float32"))
    assert a.dtype == np.float32 and not np.allclose(a, b)
    np.testing.assert_allclose(a @ a.T, np.eye(6), atol=1e-5)
    assert init.orthogonal_(np.empty((0, 3))).shape == (0, 3)


# --- seeding and generators ------------------------------------------------------------------------------------

RANDOM = [(init.uniform_, {}), (init.normal_, {}), (init.trunc_normal_, {}), (init.xavier_uniform_, {}),
          (init.xavier_normal_, {}), (init.kaiming_uniform_, {}), (init.kaiming_normal_, {}),
          (init.orthogonal_, {})]


@pytest.mark.parametrize("fn,kwargs", RANDOM, ids=lambda v: getattr(v, "__name__", ""))
def test_seeded_and_generator(fn, kwargs):
    mg.manual_seed(3)
    a = fn(np.empty((4, 5)), **kwargs)
    b = fn(np.empty((4, 5)), **kwargs)
    mg.manual_seed(3)
    c = fn(np.empty((4, 5)), **kwargs)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    state = mg.random.get_state()
    g = fn(np.empty((4, 5)), generator=np.random.default_rng(11), **kwargs)
    h = fn(np.empty((4, 5)), generator=np.random.default_rng(11), **kwargs)
    np.testing.assert_array_equal(g, h)
    assert not np.array_equal(g, c)
    assert mg.random.get_state() == state   # the global generator was not used
    with pytest.raises(TypeError, match=fn.__name__):
        fn(np.empty((4, 5)), generator=torch.Generator())


def test_normal_draws_from_the_global_generator_in_float64():
    mg.manual_seed(3)
    x = init.normal_(np.empty((4, 5), "float32"), 0.5, 2.0)
    mg.manual_seed(3)
    expected = mg.random.generator().normal(0.5, 2.0, size=(4, 5)).astype("float32")
    np.testing.assert_array_equal(x, expected)


# --- in place: Parameters, views, layers, the strict backend -----------------------------------------------------

def test_in_place_on_a_parameter():
    p = mg.nn.Parameter(np.zeros((3, 4), "float32"))
    data = p.data
    assert init.ones_(p) is p
    assert p.data is data and p.data.dtype == np.float32
    np.testing.assert_array_equal(data, np.ones((3, 4)))
    for fn in (init.xavier_uniform_, init.kaiming_normal_, init.orthogonal_, init.trunc_normal_, init.eye_):
        assert fn(p) is p and p.data is data and p.data.dtype == np.float32
    np.testing.assert_array_equal(data, np.eye(3, 4))


def test_in_place_through_a_view():
    w = np.zeros((3, 8))
    init.constant_(w[:, ::2], 2.0)
    assert (w[:, ::2] == 2).all() and (w[:, 1::2] == 0).all()
    init.kaiming_uniform_(w.T, mode="fan_out")   # a transposed view (8, 3): filled in place, fan_out = 8
    assert np.abs(w).max() <= math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(8) and (w != 0).all()
    assert np.abs(w).max() > math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(24)   # not fan_out of w itself (24)


def test_works_on_a_layers_weights():
    lin = mg.nn.Linear(4, 3)
    weight, bias = lin.weight.data, lin.bias.data
    assert mg.nn.init.xavier_uniform_(lin.weight) is lin.weight
    assert mg.nn.init.zeros_(lin.bias) is lin.bias
    assert lin.weight.data is weight and lin.bias.data is bias
    assert (bias == 0).all() and np.abs(weight).max() <= math.sqrt(6 / 7) * (1 + 1e-6) and weight.dtype == np.float32
    np.testing.assert_allclose(lin(np.ones((2, 4), "float32")), np.tile(weight.sum(1), (2, 1)), rtol=1e-6)


def test_strict_backend_array_stays_on_its_backend():
    x = to_strict(np.zeros((4, 6), "float32"))
    for fn in (init.normal_, init.ones_, init.eye_, init.orthogonal_, init.kaiming_uniform_, init.trunc_normal_):
        assert fn(x) is x
        assert isinstance(x, StrictArray) and x.dtype == np.float32
    values = x.view(np.ndarray)
    assert -2.0 <= values.min() and values.max() <= 2.0 and len(np.unique(values)) == values.size
    d = to_strict(np.zeros((2, 2, 3, 3)))
    init.dirac_(d)
    assert d.view(np.ndarray)[1, 1, 1, 1] == 1 and d.view(np.ndarray).sum() == 2


# --- errors -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"])
def test_fans_need_two_dimensions(name):
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        getattr(init, name)(np.empty(5))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        getattr(torch.nn.init, name)(torch.empty(5))


def test_value_errors():
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(np.empty((3, 4)), mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.kaiming_normal_(np.empty((3, 4)), nonlinearity="swish")
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions"):
        init.eye_(np.empty((2, 3, 4)))
    for shape in [(3, 4), (2, 2, 2, 2, 2, 2)]:
        with pytest.raises(ValueError, match="Only tensors with 3, 4, or 5 dimensions"):
            init.dirac_(np.empty(shape))
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac_(np.empty((5, 2, 3)), groups=2)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(np.empty(4))
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(np.empty(4), 1.0, 0.0)
    with pytest.raises(ValueError, match="std"):
        init.normal_(np.empty(4), std=-1.0)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "calculate_gain"])
def test_type_errors_name_the_function(name):
    fn = getattr(init, name)
    for bad in ([[1.0, 2.0], [3.0, 4.0]], torch.empty(2, 2, 2), 3.0):
        args = (bad, 1.0) if name == "constant_" else (bad,)
        with pytest.raises(TypeError, match=rf"{name}.*{type(bad).__name__}"):
            fn(*args)


@pytest.mark.parametrize("name", ["uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                                  "kaiming_uniform_", "kaiming_normal_", "orthogonal_"])
def test_random_init_refuses_integer_arrays(name):
    x = np.zeros((3, 4), "int64")
    with pytest.raises(TypeError, match=rf"{name}.*int64"):
        getattr(init, name)(x)
    assert (x == 0).all()
