"""Every CUDA kernel compiles with NVRTC for the H100/H200 (sm_90) and the A100 (sm_80), without a GPU.

NVRTC is the compiler CuPy itself runs on the GPU machine at a kernel's first call. Here CuPy's own code
generator writes each kernel's CUDA source for the argument types minigrad's wrappers pass (every dtype
the 'cupy' backend takes, backend.GPU_FLOAT_DTYPES; 32- and 64-bit indexing; a broadcast scalar array
where the wrappers pass one) and NVRTC compiles it with CuPy's runtime options, with no register spills
(ptxas's report). What the kernels compute
is checked on the CPU by test_cuda_kernel_source.py and the simulated CuPy.

Needs ``pip install -e ".[cuda-dev]"`` (CuPy and the pinned NVRTC wheel; no GPU). It skips without
them, except where MINIGRAD_REQUIRE_NVRTC=1 (CI) turns the skip into a failure.
"""
import os

import numpy as np
import pytest

from minigrad.backend import GPU_FLOAT_DTYPES
from minigrad.kernels.cuda import KERNELS, REDUCTIONS

from support import cuda_codegen

ARCHS = ("90", "80")


@pytest.fixture(scope="module")
def nvrtc():
    reason = cuda_codegen.unavailable()
    if reason:
        if os.environ.get("MINIGRAD_REQUIRE_NVRTC") == "1":
            pytest.fail(f"MINIGRAD_REQUIRE_NVRTC=1 but the NVRTC compile check cannot run: {reason}")
        pytest.skip(reason)
    return cuda_codegen


def _variants(name):
    for dtype in GPU_FLOAT_DTYPES:
        for index_32_bits in (True, False):
            for broadcast in {frozenset(), frozenset(cuda_codegen.BROADCAST_INPUTS.get(name, ()))}:
                yield dtype, index_32_bits, broadcast


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_elementwise_kernel_compiles(nvrtc, name, arch):
    for dtype, index_32_bits, broadcast in _variants(name):
        source = nvrtc.elementwise_source(name, dtype, index_32_bits, broadcast)
        assert f"minigrad_{name}" in source and "CUPY_FOR" in source
        try:
            cubin, report = nvrtc.nvrtc_compile(source, arch)
        except nvrtc.NvrtcError as exc:
            pytest.fail(f"{name} for {dtype} ({32 if index_32_bits else 64}-bit indexing) on sm_{arch}:\n{exc}")
        assert len(cubin) > 1000 and report, "ptxas reported the kernel"
        assert all(spilled == 0 for _, spilled in report.values()), f"register spills: {report}"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_kernel_compiles(nvrtc, name, arch):
    in_params, out_params = REDUCTIONS[name][:2]
    assert (in_params.count(",") + 1, out_params.count(",") + 1) != (1, 1), \
        "one input and one output would let CuPy take CUB's block reduction, whose source is not compiled here"
    for dtype in GPU_FLOAT_DTYPES:
        for index_32_bits in (True, False):
            source = nvrtc.reduction_source(name, dtype, index_32_bits)
            assert f"minigrad_{name}" in source and "__syncthreads" in source and "atomic" not in source.split(
                "extern \"C\"")[-1], "a parallel tree reduction without atomics"
            try:
                _, report = nvrtc.nvrtc_compile(source, arch)
            except nvrtc.NvrtcError as exc:
                pytest.fail(f"{name} for {dtype} on sm_{arch}:\n{exc}")
            assert report and all(spilled == 0 for _, spilled in report.values()), f"register spills: {report}"


def test_the_check_can_fail(nvrtc):
    """A kernel body with a type error is reported, with NVRTC's message."""
    source = nvrtc.elementwise_source("im2col", "float32", True).replace("(T)0", "(T)undefined_name")
    with pytest.raises(nvrtc.NvrtcError, match="undefined_name"):
        nvrtc.nvrtc_compile(source, "90")


def test_float16_is_refused_because_the_fused_kernels_do_not_compile_for_it(nvrtc):
    """Why backend.GPU_FLOAT_DTYPES leaves float16 out: CuPy's float16 makes these kernels ambiguous."""
    assert "float16" not in GPU_FLOAT_DTYPES
    failing = []
    for name in ("softmax_xent_backward", "sgd_momentum", "adam"):
        try:
            nvrtc.nvrtc_compile(nvrtc.elementwise_source(name, np.float16, True), "90")
        except nvrtc.NvrtcError:
            failing.append(name)
    assert failing, "every fused kernel compiles for float16 now: float16 could be supported on CuPy"
