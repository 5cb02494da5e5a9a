"""The reference convolution's backward works within a bounded workspace (tracemalloc sees NumPy).

The weight gradient is accumulated chunk by chunk into one (G, Og, K) array, and a chunk's column-sized
buffers stay within the column budget, so the extra memory of a backward does not grow with the batch.
Measured on NumPy through the public switch to the reference path (what runs on CuPy).
"""
import tracemalloc

import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels import reference_conv

LIMIT = 64 * 2 ** 20


def _backward_extra_bytes(layer, x):
    """Peak memory traced during layer.backward beyond what it returns (dx) and the gradients it fills."""
    y = layer(x)
    dy = np.ones(y.shape, dtype=x.dtype)
    layer.backward(dy)                      # once untraced: first-use allocations are not the workspace
    layer.zero_grad()
    layer(x)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        dx = layer.backward(dy)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak - dx.nbytes - sum(p.grad.nbytes for p in layer.parameters())


@pytest.mark.parametrize("batch", [128, 256])
def test_reference_conv_backward_extra_memory_within_64_mib(conv_algorithm, batch):
    """512 -> 512 channels, 3x3, padding 1 on 4x4 maps: columns are 9x the input, 36 MiB at batch 128."""
    conv_algorithm("reference")
    layer = mg.nn.Conv2d(512, 512, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((batch, 512, 4, 4), dtype=np.float32)
    extra = _backward_extra_bytes(layer, x)
    budget = reference_conv.column_budget(x)
    assert extra <= LIMIT, f"extra working memory {extra / 2**20:.1f} MiB at batch {batch}"
    weight = layer.weight.data.nbytes      # the (G, Og, K) accumulator, and one chunk's product before it is added
    assert extra <= budget + 2 * weight + 2 ** 20, "the column budget plus the weight-sized arrays bound it"


def test_column_budget_is_smaller_on_the_host():
    """Host memory is shared with everything else; a GPU GEMM wants large chunks."""
    host = reference_conv.column_budget(np.ones(1, np.float32))
    assert host <= 32 * 2 ** 20 < reference_conv.MAX_COLUMN_BYTES
