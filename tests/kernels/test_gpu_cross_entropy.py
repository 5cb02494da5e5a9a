"""The fused softmax cross-entropy on the GPU path against NumPy: the row log-sum-exp reduction
(parallel over classes) and the per-row loss kernel, for few and many classes and small batches.

Runs on a GPU or on the simulated CuPy (MINIGRAD_TEST_CUPY=sim), which folds each row as a CUDA block
does (strided lanes, then a tree), so the combination of partial log-sum-exp states is exercised.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend as B
from minigrad.kernels import cuda


@pytest.fixture
def xp():
    if not B.cupy_available():
        pytest.skip("needs CuPy and a GPU, or MINIGRAD_TEST_CUPY=sim")
    mg.set_backend("cupy")
    return B.active_module()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("rows,classes", [(1, 1), (3, 10), (64, 10), (2, 1000), (5, 4099)])
def test_cross_entropy_on_the_gpu_path_matches_numpy(xp, rows, classes, dtype, rtol):
    rng = np.random.default_rng(rows * classes)
    logits = (rng.standard_normal((rows, classes)) * 20).astype(dtype)
    target = rng.integers(0, classes, rows)
    if rows > 2:
        target[1] = -100                                   # an ignored row
    loss_fn = mg.nn.CrossEntropyLoss(ignore_index=-100)
    expected = loss_fn(logits, target)
    expected_grad = loss_fn.backward()
    before = cuda.reduction.cache_info().currsize
    got = loss_fn(xp.asarray(logits), xp.asarray(target))
    got_grad = loss_fn.backward()
    assert cuda.reduction.cache_info().currsize >= max(before, 1), "the fused kernels ran"
    np.testing.assert_allclose(float(got), float(expected), rtol=rtol)
    np.testing.assert_allclose(got_grad.get(), expected_grad, rtol=rtol, atol=rtol * 1e-2)   # softmax - 1 cancels


@pytest.mark.gpu
def test_logsumexp_reduction_is_exact_for_huge_and_impossible_logits(xp):
    logits = np.array([[700.0, 0.0, -np.inf], [-np.inf, 3.0, 3.0], [1e-3, 2e-3, 3e-3]])
    loss, lse = cuda.softmax_xent_forward_gpu(xp.asarray(logits), xp.asarray(np.array([0, 1, 2])), -100)
    peak = logits.max(axis=1, keepdims=True)
    np.testing.assert_allclose(lse.get(), (peak + np.log(np.exp(logits - peak).sum(1, keepdims=True)))[:, 0],
                               rtol=1e-14)
    np.testing.assert_allclose(loss.get(), lse.get() - logits[[0, 1, 2], [0, 1, 2]], rtol=1e-14)


@pytest.mark.gpu
@pytest.mark.parametrize("classes", [9, 1000])
def test_masked_classes_in_many_lanes_give_a_finite_loss(xp, classes):
    """-inf logits (masked classes) in every other column: partial states of -inf meet in the tree."""
    rng = np.random.default_rng(classes)
    logits = rng.standard_normal((3, classes))
    logits[:, ::2] = -np.inf
    target = np.array([1, 3, 5])
    loss_fn = mg.nn.CrossEntropyLoss()
    expected = mg.nn.CrossEntropyLoss()(logits[:, 1::2], target // 2)
    got = loss_fn(xp.asarray(logits), xp.asarray(target))
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-12)
