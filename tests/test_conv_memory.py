"""Conv2d forward+backward working memory is bounded, whatever the batch size (tracemalloc sees NumPy).

"Extra" = the peak traced during forward+backward minus what the step must allocate anyway: the
output, the input gradient, the weight and bias gradients. The reference im2col path would need
9x the input for its columns (150 MiB at batch 256 below); the fast paths work in chunks.
"""
import tracemalloc

import numpy as np
import pytest

import minigrad as mg
from minigrad.kernels.cpu_runtime import release_buffers

LIMIT = 64 * 2 ** 20


@pytest.fixture
def two_threads():
    before = mg.get_num_threads()
    mg.set_num_threads(2)
    yield
    mg.set_num_threads(before)


def _extra_bytes(layer, x):
    dy = np.ones(layer(x).shape, dtype=x.dtype)
    layer.backward(dy)
    layer.zero_grad()
    release_buffers()                      # count the work buffers too: they are allocated in the step
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = layer(x)
        dx = layer.backward(dy)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    grads = sum(p.grad.nbytes for p in layer.parameters())
    return peak - y.nbytes - dx.nbytes - grads


def test_tracemalloc_sees_numpy_allocations():
    tracemalloc.start()
    try:
        a = np.empty(8 * 2 ** 20, dtype=np.uint8)
        a[:] = 1
        assert tracemalloc.get_traced_memory()[1] >= a.nbytes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("layer_args, shape", [
    ((16, 16, 3, 1, 1, 1), (256, 16, 32, 32)),       # CIFAR ResNet stage 1, batch 256: 16 MiB input
    ((16, 32, 3, 2, 1, 1), (256, 16, 32, 32)),       # strided (scatter input gradient)
    ((64, 64, 3, 1, 1, 1), (16, 64, 56, 56)),        # ImageNet stage 1: one sample's columns > budget
    ((256, 64, 1, 1, 0, 1), (16, 256, 28, 28)),      # 1x1
    ((64, 64, 3, 1, 1, 64), (128, 64, 32, 32)),      # depthwise, 32 MiB input
    ((3, 16, 3, 1, 1, 1), (512, 3, 32, 32)),         # few input channels (batch-innermost columns)
    ((1, 6, 5, 1, 2, 1), (2048, 1, 28, 28)),         # LeNet conv1, batch 2048
])
def test_conv2d_extra_memory_under_64_mib(layer_args, shape, two_threads):
    """With two threads (each running chunks holds its own work buffers: see the next test)."""
    c, o, k, s, p, g = layer_args
    layer = mg.nn.Conv2d(c, o, k, stride=s, padding=p, groups=g)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    extra = _extra_bytes(layer, x)
    assert extra < LIMIT, f"extra working memory {extra / 2**20:.1f} MiB for input {shape}"


def test_more_threads_than_parallel_chunks_need_no_more_memory():
    """At most cpu_runtime.MAX_PARALLEL_CHUNKS threads run chunks, so 8 threads hold no more buffers than 4."""
    from minigrad.kernels import cpu_runtime
    assert cpu_runtime.MAX_PARALLEL_CHUNKS == 4
    layer = mg.nn.Conv2d(16, 16, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((256, 16, 32, 32), dtype=np.float32)
    before = mg.get_num_threads()
    try:
        extra = {}
        for n_threads in (4, 8):
            mg.set_num_threads(n_threads)
            extra[n_threads] = _extra_bytes(layer, x)
    finally:
        mg.set_num_threads(before)
    assert extra[8] <= extra[4] + 2 ** 20, extra


def test_extra_memory_does_not_grow_with_the_batch(two_threads):
    """Once a batch fills the chunks of every thread (here 13 samples of 0.6 MiB columns each), twice
    the batch needs no more working memory."""
    layer = mg.nn.Conv2d(16, 16, 3, padding=1)
    rng = np.random.default_rng(0)
    small = _extra_bytes(layer, rng.standard_normal((512, 16, 32, 32), dtype=np.float32))
    large = _extra_bytes(layer, rng.standard_normal((1024, 16, 32, 32), dtype=np.float32))
    assert large <= small + 2 ** 20, (small, large)


def test_repeated_steps_do_not_page_fault():
    """Outputs and gradients reuse freed heap pages (kernels.cpu_memory) instead of fresh mmap pages."""
    import platform
    import resource
    from minigrad.kernels import cpu_memory
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not cpu_memory.applied:
        pytest.skip("malloc tuning applies to glibc only (or MINIGRAD_MALLOC_TUNING=0)")
    layer = mg.nn.Conv2d(16, 16, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((64, 16, 32, 32), dtype=np.float32)   # 4 MiB in and out
    dy = np.ones((64, 16, 32, 32), dtype=np.float32)
    for _ in range(2):
        layer(x), layer.backward(dy)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        layer(x), layer.backward(dy)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
    assert faults < 200, f"{faults:.0f} page faults per step (about 2000 without the malloc tuning)"
