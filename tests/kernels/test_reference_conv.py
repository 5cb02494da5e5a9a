"""The reference convolution (kernels/reference_conv: chunked im2col + GEMM, the CuPy path), run here
on NumPy with tiny column budgets so every chunking case (chunks of 1, uneven last chunk, one chunk) is
compared with PyTorch; on a GPU the same code runs with the CUDA im2col/col2im kernels."""
import numpy as np
import pytest

from minigrad.backend import backend_of, to_backend
from minigrad.functional.conv import make_geometry
from minigrad.kernels import reference_conv

torch = pytest.importorskip("torch")

CASES = [((5, 4, 9, 8), (6, 2, 3, 3), dict(stride=1, padding=1, dilation=1, groups=2)),
         ((7, 3, 10, 9), (4, 3, 2, 3), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=1)),
         ((3, 4, 6, 6), (4, 1, 3, 3), dict(stride=2, padding=1, dilation=1, groups=4)),
         ((4, 2, 5, 5), (3, 2, 1, 1), dict(stride=1, padding=0, dilation=1, groups=1))]


def _case(x_shape, w_shape, args, samples_per_chunk, seed):
    """(rng, float64 x, w, b, geometry, column budget for samples_per_chunk samples per chunk)."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    geom = make_geometry(x.shape, w.shape, args["stride"], args["padding"], args["dilation"], args["groups"])
    per_sample = geom.in_channels * geom.kernel[0] * geom.kernel[1] * geom.out_size[0] * geom.out_size[1] * 8
    return rng, x, w, b, geom, per_sample * samples_per_chunk


@pytest.mark.parametrize("samples_per_chunk", [1, 2, 3, 100])
@pytest.mark.parametrize("x_shape,w_shape,args", CASES)
def test_reference_conv_matches_torch(x_shape, w_shape, args, samples_per_chunk):
    rng, x, w, b, geom, budget = _case(x_shape, w_shape, args, samples_per_chunk, seed=0)
    assert reference_conv.chunk_size(geom, 8, budget) == samples_per_chunk
    y = reference_conv.conv_forward(x, w, b, geom, budget=budget)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, **args)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx, dw, db = reference_conv.conv_backward(x, w, dy, geom, budget=budget)
    for ours, ref in ((dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10, atol=1e-10)
    only_dx, none_w, none_b = reference_conv.conv_backward(None, w, dy, geom, need_weight=False, need_bias=False,
                                                         budget=budget)
    assert none_w is None and none_b is None
    np.testing.assert_allclose(only_dx, dx, rtol=1e-12, atol=1e-12)


def test_float32_in_float32_out():
    x, w = np.ones((3, 2, 5, 5), "float32"), np.ones((4, 2, 3, 3), "float32")
    geom = make_geometry(x.shape, w.shape, 1, 1, 1, 1)
    y = reference_conv.conv_forward(x, w, None, geom, budget=1)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in reference_conv.conv_backward(x, w, y, geom, budget=1))


@pytest.mark.parametrize("x_shape,w_shape,args", CASES)
def test_reference_conv_same_on_every_backend(x_shape, w_shape, args, backend):
    """Uneven chunks through the backend's im2col/col2im (the CUDA kernels on cupy), float64."""
    rng, x, w, b, geom, budget = _case(x_shape, w_shape, args, 2, seed=1)   # chunks of 2, the last shorter
    dev = [to_backend(a, backend) for a in (x, w, b)]
    y = reference_conv.conv_forward(*dev, geom, budget=budget)
    dy = rng.standard_normal(y.shape)
    grads = reference_conv.conv_backward(dev[0], dev[1], to_backend(dy, backend), geom, budget=budget)
    expected = [reference_conv.conv_forward(x, w, b, geom)] + list(reference_conv.conv_backward(x, w, dy, geom))
    for ours, ref in zip([y, *grads], expected):
        assert backend_of(ours) == backend
        np.testing.assert_allclose(to_backend(ours, "numpy"), ref, rtol=1e-12, atol=1e-12)
