"""The block path of the elementwise activations (kernels/cpu_blocks.py, kernels/cpu_activation.py): inputs of
several blocks, with NaN, infinities, every kink and signed zeros in some blocks and none in others, against
PyTorch in float64 and float32, against the same layer computed in one piece, and the same bits on 1, 2 and 3
threads. (The small inputs of test_activation_more.py run the same kernels in one call.)

Where the input is NaN, PyTorch's own gradient depends on where the element falls: its vectorised loop gives NaN,
its scalar loop (short arrays, the tail) the formula's "else" branch. minigrad gives the "else" branch everywhere
(as test_activation_more.py checks against PyTorch on short arrays), so those elements are left out here; so are
Softsign's and Tanhshrink's gradients at an infinite input or gradient, where PyTorch's composite autograd formula
gives inf - inf = NaN and minigrad the formula's own limit.
"""
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels import cpu_blocks
from support.zoo_checks import TOL, torch_run

torch = pytest.importorskip("torch")
T = torch.nn

LAYERS = {
    "SiLU": (lambda: mg.nn.SiLU(), lambda: T.SiLU(), [0.0]),
    "Mish": (lambda: mg.nn.Mish(), lambda: T.Mish(), [0.0]),
    "Hardswish": (lambda: mg.nn.Hardswish(), lambda: T.Hardswish(), [-3.0, 3.0, -1.5]),
    "Hardsigmoid": (lambda: mg.nn.Hardsigmoid(), lambda: T.Hardsigmoid(), [-3.0, 3.0]),
    "ELU": (lambda: mg.nn.ELU(), lambda: T.ELU(), [0.0]),
    "ELU_-1.2": (lambda: mg.nn.ELU(alpha=-1.2), lambda: T.ELU(alpha=-1.2), [0.0]),
    "SELU": (lambda: mg.nn.SELU(), lambda: T.SELU(), [0.0]),
    "CELU_0.7": (lambda: mg.nn.CELU(0.7), lambda: T.CELU(0.7), [0.0]),
    "CELU_-2.5": (lambda: mg.nn.CELU(-2.5), lambda: T.CELU(-2.5), [0.0]),
    "Softplus": (lambda: mg.nn.Softplus(), lambda: T.Softplus(), [20.0]),
    "Softplus_-1.5_2": (lambda: mg.nn.Softplus(-1.5, 2.0), lambda: T.Softplus(-1.5, 2.0), [-4.0 / 3.0]),
    "ReLU6": (lambda: mg.nn.ReLU6(), lambda: T.ReLU6(), [0.0, 6.0]),
    "Hardtanh_-2_0.5": (lambda: mg.nn.Hardtanh(-2.0, 0.5), lambda: T.Hardtanh(-2.0, 0.5), [-2.0, 0.5]),
    "Softsign": (lambda: mg.nn.Softsign(), lambda: T.Softsign(), [0.0]),
    "Tanhshrink": (lambda: mg.nn.Tanhshrink(), lambda: T.Tanhshrink(), [0.0]),
    "Threshold_0.1_20": (lambda: mg.nn.Threshold(0.1, 20.0), lambda: T.Threshold(0.1, 20.0), [0.1]),
}
SHAPE = (2, 3, 5, 12289)        # 368,670 elements: two whole blocks of 131,072 and a part


def _inputs(name, dtype, special: bool):
    """x of SHAPE (3-sigma normal, the kinks and their neighbours, signed zeros; with special=True also NaN and
    +-inf in the first block only and +-inf in the last), dy with NaN/inf in the first block when special."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(SHAPE) * 4.0).astype(dtype)
    dy = rng.standard_normal(SHAPE).astype(dtype)
    flat, flat_dy = x.reshape(-1), dy.reshape(-1)
    points = [0.0, -0.0]
    for kink in LAYERS[name][2]:
        points += [kink, np.nextafter(kink, np.inf, dtype=dtype), np.nextafter(kink, -np.inf, dtype=dtype)]
    block = cpu_blocks.BLOCK_ELEMENTS
    for start in (100, block + 100, 2 * block + 100):            # in every block
        flat[start:start + len(points)] = points
    if special:
        flat[10:13] = [np.nan, np.inf, -np.inf]
        flat[-3:-1] = [np.inf, -np.inf]
        flat_dy[20:23] = [np.nan, np.inf, -np.inf]
        flat[20:23] = [-5.0, -5.0, 5.0]                          # a NaN/inf gradient where x <= -3 and x >= 3
    return x, dy


def _run(name, x, dy):
    layer = LAYERS[name][0]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return layer(x), layer.backward(dy)


@pytest.mark.parametrize("special", [False, True], ids=["finite", "nan-inf"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_blocks_match_torch_and_one_piece(name, dtype, special, monkeypatch):
    x, dy = _inputs(name, dtype, special)
    y, dx = _run(name, x, dy)
    assert y.dtype == dx.dtype == np.dtype(dtype) and y.shape == dx.shape == SHAPE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected, (expected_dx,) = torch_run(LAYERS[name][1]().to(getattr(torch, dtype)), [x], dy)
    expected, expected_dx = expected.detach().numpy(), expected_dx.numpy()
    np.testing.assert_allclose(y, expected, **TOL[dtype])            # NaN exactly where PyTorch's are
    keep = ~np.isnan(x)
    if name in ("Softsign", "Tanhshrink"):
        keep &= np.isfinite(x) & np.isfinite(dy)
    np.testing.assert_allclose(dx[keep], expected_dx[keep], **TOL[dtype])
    monkeypatch.setattr(cpu_blocks, "BLOCK_ELEMENTS", 1 << 40)       # the same layer in one piece
    y_one, dx_one = _run(name, x, dy)
    np.testing.assert_array_equal(y, y_one)                          # equal values (NaN where NaN; 0.0 == -0.0)
    np.testing.assert_array_equal(dx, dx_one)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_blocks_give_the_same_bits_on_any_number_of_threads(name):
    x, dy = _inputs(name, "float32", special=True)
    before = mg.get_num_threads()
    results = []
    try:
        for count in (1, 2, 3):
            mg.set_num_threads(count)
            results.append([a.view(np.int32).copy() for a in _run(name, x, dy)])
    finally:
        mg.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_strided_inputs_take_one_call():
    """A strided input is computed in one call of the general formula: the same values as its contiguous copy."""
    x, dy = _inputs("Hardswish", "float64", special=True)
    layer = mg.nn.Hardswish()
    strided_x, strided_dy = x[..., ::2], dy[..., ::2]
    y, dx = layer(strided_x), layer.backward(strided_dy)
    y_c, dx_c = layer(np.ascontiguousarray(strided_x)), layer.backward(np.ascontiguousarray(strided_dy))
    np.testing.assert_array_equal(y, y_c)
    np.testing.assert_array_equal(dx, dx_c)
