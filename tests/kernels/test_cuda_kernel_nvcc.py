"""Every CUDA kernel compiles as device code for the H100/H200 (sm_90), without a GPU.

CuPy itself writes the CUDA source of each ElementwiseKernel (its code generator, with the
argument types minigrad's wrappers pass: float32 and float64, 32- and 64-bit indexing), and
nvcc compiles it against CuPy's own headers. Needs CuPy (``pip install "minigrad[cuda13]"``,
no GPU required) and nvcc; the host build in test_cuda_kernel_source.py checks what the
kernels compute.
"""
import os
import shutil
import subprocess

import numpy as np
import pytest

from minigrad.kernels.cuda import KERNELS

from support import sim_cupy

# Dimensions of the arrays the wrappers in kernels/cuda.py pass, per kernel and parameter.
NDIM = {"im2col": {"img": 4, "col": 6}, "col2im": {"col": 6, "img": 4},
        "max_pool_forward": {"x": 4, "y": 4, "argmax": 4}, "max_pool_backward": {"dy": 4, "argmax": 4, "dx": 4},
        "avg_pool_forward": {"x": 4, "y": 4}, "avg_pool_backward": {"dy": 4, "dx": 4},
        "softmax_xent_forward": {"logits": 2}, "softmax_xent_backward": {"logits": 2, "grad": 2}}
ARRAY_INPUTS = {"sgd_momentum": {"grad"}, "adam": {"grad"}}   # non-raw inputs that are arrays
# ... or may be: CrossEntropyLoss passes its scale 1/count as a 0-d device array, which CuPy
# broadcasts to the output's shape (stride 0, so not contiguous).
BROADCAST_INPUTS = {"softmax_xent_backward": {"scale"}}
ARRAY, INDEXER, SCALAR = 1, 2, 3                              # CuPy's _ArgInfo kinds


def _nvcc():
    """nvcc on the PATH, else the CUDA toolkit's default place, else None."""
    default = "/usr/local/cuda/bin/nvcc"
    return shutil.which("nvcc") or (default if os.path.exists(default) else None)


def _cupy_codegen():
    cupy = pytest.importorskip("cupy", reason="needs CuPy's code generator: pip install \"minigrad[cuda13]\"")
    if sim_cupy.installed():
        pytest.skip("needs the real CuPy's code generator, not the simulated CuPy")
    try:
        from cupy._core import _carray, _kernel, core
        _kernel._ArgInfo, _kernel._TypeMap, _kernel._get_elementwise_kernel_code, core._cupy_header_list
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"this CuPy version's code generator is laid out differently ({exc})")
    return cupy, _kernel, _carray, core


def _kernel_source(cupy, K, carray, name, dtype, index_32_bits, broadcast=frozenset()):
    in_params, out_params, body = KERNELS[name]
    kernel = K.ElementwiseKernel(in_params, out_params, body, f"minigrad_{name}")
    infos, out_ndim = [], 1
    ndims = NDIM.get(name, {})
    for p in kernel.params:
        if p.name == "_ind":
            infos.append(K._ArgInfo(INDEXER, carray.Indexer, None, out_ndim, True, index_32_bits))
            continue
        p_dtype = np.dtype(dtype) if p.ctype == "T" else p.dtype
        if p.name in broadcast:       # a 0-d array broadcast to the output: its ndim, not contiguous
            infos.append(K._ArgInfo(ARRAY, cupy.ndarray, p_dtype, NDIM[name].get("grad", 1), False, index_32_bits))
        elif p.raw or not p.is_const or p.name in ARRAY_INPUTS.get(name, ()):
            ndim = ndims.get(p.name, 1)
            if not p.is_const:
                out_ndim = ndim
            infos.append(K._ArgInfo(ARRAY, cupy.ndarray, p_dtype, ndim, True, index_32_bits))
        else:
            infos.append(K._ArgInfo(SCALAR, p_dtype.type, p_dtype, 0, True, index_32_bits))
    symbol = f"minigrad_{name}_{np.dtype(dtype).name}_{32 if index_32_bits else 64}{'_bcast' if broadcast else ''}"
    return K._get_elementwise_kernel_code(tuple(infos), K._TypeMap((("T", np.dtype(dtype)),)), kernel.params,
                                          kernel.operation, symbol, kernel.preamble)


def test_every_kernel_compiles_for_sm90(tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    cupy, K, carray, core = _cupy_codegen()
    parts = [f"#include <{header}>" for header in core._cupy_header_list]
    variants = 0
    for name in KERNELS:
        for dtype in ("float32", "float64"):
            for index_32_bits in (True, False):
                for broadcast in {frozenset(), frozenset(BROADCAST_INPUTS.get(name, ()))}:
                    source = _kernel_source(cupy, K, carray, name, dtype, index_32_bits, broadcast)
                    assert f"minigrad_{name}" in source and "CUPY_FOR" in source
                    # each kernel in its own namespace: CuPy's code starts with its own typedef of T
                    parts.append(f"namespace variant{variants} {{\n{source}\n}}")
                    variants += 1
    (tmp_path / "kernels.cu").write_text("\n".join(parts))
    include = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    cccl = [f"-I{os.path.join(include, 'cupy', '_cccl', lib)}" for lib in ("cub", "thrust", "libcudacxx")]
    result = subprocess.run([nvcc, "-arch=sm_90", "-std=c++17", f"-I{include}", *cccl, "-c",
                             str(tmp_path / "kernels.cu"), "-o", str(tmp_path / "kernels.o")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert variants == 4 * (len(KERNELS) + len(BROADCAST_INPUTS))
    if shutil.which("nm"):                      # every kernel made it into the object file
        symbols = subprocess.run(["nm", str(tmp_path / "kernels.o")], capture_output=True, text=True).stdout
        for name in KERNELS:
            assert f"minigrad_{name}_float32_32" in symbols, name
