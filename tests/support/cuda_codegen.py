"""CuPy's own CUDA source for minigrad's kernels, and NVRTC to compile it, without a GPU.

CuPy turns an ElementwiseKernel or ReductionKernel into CUDA C++ at its first call, from the
argument types it sees, and compiles that with NVRTC (the CUDA runtime compiler) with its own
options. Both steps run on a machine without a GPU when the target architecture is given:

    source = elementwise_source("adam", "float32", index_32_bits=True)
    nvrtc_compile(source, "90")      # raises NvrtcError with the compiler's log

Needs the real CuPy (``pip install "minigrad[cuda-dev]"``: CuPy and the pinned NVRTC wheel);
``unavailable()`` says why not when it cannot run.
"""
from __future__ import annotations

import numpy as np

from minigrad.kernels.cuda import KERNELS, REDUCTIONS

from . import sim_cupy

ARRAY, INDEXER, SCALAR = 1, 2, 3             # CuPy's _ArgInfo kinds

# Dimensions of the arrays the wrappers in kernels/cuda.py pass, per kernel and parameter.
NDIM = {"im2col": {"img": 4, "col": 6}, "col2im": {"col": 6, "img": 4},
        "max_pool_forward": {"x": 4, "y": 4, "argmax": 4}, "max_pool_backward": {"dy": 4, "argmax": 4, "dx": 4},
        "avg_pool_forward": {"x": 4, "y": 4}, "avg_pool_backward": {"dy": 4, "dx": 4},
        "softmax_xent_forward": {"logits": 2}, "softmax_xent_backward": {"logits": 2, "grad": 2}}
ARRAY_INPUTS = {"sgd_momentum": {"grad"}, "adam": {"grad"},   # non-raw inputs that are arrays
                "softmax_xent_forward": {"lse"}}
# ... or may be: CrossEntropyLoss passes its scale 1/count as a 0-d device array, which CuPy
# broadcasts to the output's shape (stride 0, so not contiguous).
BROADCAST_INPUTS = {"softmax_xent_backward": {"scale"}}
CUPY_BLOCK_SIZE = 512                        # CuPy's threads per block for reductions on CUDA


class NvrtcError(RuntimeError):
    """NVRTC refused a kernel; the message holds its log."""


def unavailable() -> str | None:
    """Why CuPy's code generator or NVRTC cannot run here (None when they can)."""
    if sim_cupy.installed():
        return "needs the real CuPy's code generator, not the simulated CuPy"
    try:
        import cupy
        from cupy._core import _carray, _kernel, _reduction, core
        from cupy.cuda import compiler
        _carray.Indexer, _kernel._ArgInfo, _kernel._TypeMap, _kernel._get_elementwise_kernel_code, core._cupy_header_list
        _reduction._ReductionKernel_get_cached_function_code, compiler._NVRTCProgram
        core.assemble_cupy_compiler_options
    except ImportError as exc:
        return f"CuPy is not installed ({exc}): pip install \"minigrad[cuda-dev]\""
    except AttributeError as exc:
        return f"this CuPy version's code generator is laid out differently ({exc})"
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as exc:   # the NVRTC library is missing or cannot load
        return f"NVRTC cannot be loaded ({type(exc).__name__}: {exc}): pip install \"minigrad[cuda-dev]\""
    del cupy
    return None


def _header() -> str:
    from cupy._core import core
    return "".join(f"#include <{header}>\n" for header in core._cupy_header_list)


def elementwise_source(name: str, dtype, index_32_bits: bool, broadcast=frozenset()) -> str:
    """CuPy's CUDA source for ElementwiseKernel KERNELS[name] with T = dtype, as the wrappers call it."""
    import cupy
    from cupy._core import _carray, _kernel as K
    in_params, out_params, body = KERNELS[name]
    kernel = K.ElementwiseKernel(in_params, out_params, body, f"minigrad_{name}")
    infos, out_ndim = [], 1
    ndims = NDIM.get(name, {})
    for p in kernel.params:
        if p.name == "_ind":
            infos.append(K._ArgInfo(INDEXER, _carray.Indexer, None, out_ndim, True, index_32_bits))
            continue
        p_dtype = np.dtype(dtype) if p.ctype == "T" else p.dtype
        if p.name in broadcast:       # a 0-d array broadcast to the output: its ndim, not contiguous
            infos.append(K._ArgInfo(ARRAY, cupy.ndarray, p_dtype, ndims.get("grad", 1), False, index_32_bits))
        elif p.raw or not p.is_const or p.name in ARRAY_INPUTS.get(name, ()):
            ndim = ndims.get(p.name, 1)
            if not p.is_const:
                out_ndim = ndim
            infos.append(K._ArgInfo(ARRAY, cupy.ndarray, p_dtype, ndim, True, index_32_bits))
        else:
            infos.append(K._ArgInfo(SCALAR, p_dtype.type, p_dtype, 0, True, index_32_bits))
    symbol = f"minigrad_{name}_{np.dtype(dtype).name}_{32 if index_32_bits else 64}{'_bcast' if broadcast else ''}"
    return _header() + K._get_elementwise_kernel_code(
        tuple(infos), K._TypeMap((("T", np.dtype(dtype)),)), kernel.params, kernel.operation, symbol,
        kernel.preamble)


def reduction_source(name: str, dtype, index_32_bits: bool) -> str:
    """CuPy's CUDA source for ReductionKernel REDUCTIONS[name] with T = dtype over axis 1 of a 2-D array."""
    import cupy
    from cupy._core import _carray, _kernel as K, _reduction as R
    in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, reduce_type, preamble = REDUCTIONS[name]
    kernel = cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr, identity,
                                  f"minigrad_{name}", reduce_type=reduce_type, preamble=preamble)
    dtype = np.dtype(dtype)
    infos = []
    for p in kernel._params:
        if p.name in ("_in_ind", "_out_ind"):     # (rows, classes) in, (rows,) out
            infos.append(K._ArgInfo(INDEXER, _carray.Indexer, None, 2 if p.name == "_in_ind" else 1, True,
                                    index_32_bits))
        elif p.name == "_block_stride":
            infos.append(K._ArgInfo(SCALAR, np.int32, np.dtype(np.int32), 0, True, index_32_bits))
        else:
            p_dtype = dtype if p.ctype == "T" else p.dtype
            infos.append(K._ArgInfo(ARRAY, cupy.ndarray, p_dtype, 2 if p.is_const else 1, True, index_32_bits))
    symbol = f"minigrad_{name}_{dtype.name}_{32 if index_32_bits else 64}"
    # CuPy adds IndexT, the type of the index within a row: int32 unless a row has over 2**31 - 1 numbers
    types = K._TypeMap((("T", dtype), ("IndexT", np.dtype(np.int32 if index_32_bits else np.int64))))
    return _header() + R._ReductionKernel_get_cached_function_code(
        kernel.nin, kernel.nout, kernel._params, tuple(infos), types, symbol, CUPY_BLOCK_SIZE, reduce_type, identity,
        map_expr, reduce_expr, post_map_expr, kernel.preamble, ())


def runtime_options(arch: str) -> tuple:
    """The options CuPy's runtime compiles with (compile_with_cache + compile_using_nvrtc) for ``arch``."""
    from cupy._core import core
    return core.assemble_cupy_compiler_options(()) + (
        "-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space")


def nvrtc_compile(source: str, arch: str) -> tuple:
    """Compile ``source`` to a cubin for sm_``arch`` with NVRTC and CuPy's options (plus ptxas's report).

    Returns (cubin bytes, {kernel name: (registers, spilled bytes)}); raises NvrtcError on failure.
    """
    import io
    import re
    from cupy.cuda import compiler
    program = compiler._NVRTCProgram(source, "kern.cu", method="cubin")
    log = io.StringIO()
    try:
        cubin, _ = program.compile(runtime_options(arch) + ("--ptxas-options=-v",), log_stream=log)
    except compiler.CompileException as exc:
        raise NvrtcError(str(exc)) from None
    report = {}
    for name, body in re.findall(r"Function properties for (\w+)\n(.*?)(?=Function properties|$)", log.getvalue(),
                                 re.S):
        spilled = sum(int(n) for n in re.findall(r"(\d+) bytes spill (?:stores|loads)", body))
        registers = re.search(r"Used (\d+) registers", body)
        report[name] = (int(registers.group(1)) if registers else None, spilled)
    return cubin, report
