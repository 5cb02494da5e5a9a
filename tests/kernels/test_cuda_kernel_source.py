"""The CUDA im2col/col2im kernel bodies in minigrad/kernels/cuda.py, checked on the CPU.

No GPU is needed: the exact source strings of the ElementwiseKernels are compiled as host
C++ (g++) with the loop CuPy would run (one iteration per output element ``i``), called
through ctypes on NumPy arrays and compared with the reference kernels. On a GPU machine the
backend-parity tests run the real thing.
"""
import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minigrad.kernels import cuda as cuda_kernels
from minigrad.kernels.im2col import col2im, conv_out_size, im2col

GEOMETRY = ("int h, int w, int out_h, int out_w, int kh, int kw, int sh, int sw, int top, int left, "
            "int dh, int dw")


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    source = Path(cuda_kernels.__file__).read_text()
    bodies = dict((name, body) for body, name in
                  re.findall(r'"T (?:col|img)",\n\s+"""(.*?)""",\n\s+"(minigrad_\w+)"', source, re.S))
    assert set(bodies) == {"minigrad_im2col", "minigrad_col2im"}
    parts = ["typedef double T;"]
    for name, body in bodies.items():
        raw, out = ("img", "col") if name == "minigrad_im2col" else ("col", "img")
        parts.append(f'extern "C" void {name}(const T* {raw}, {GEOMETRY}, T* {out}_array, long long count) {{\n'
                     f"  for (long long i = 0; i < count; ++i) {{\n    T& {out} = {out}_array[i];\n{body}\n  }}\n}}")
    folder = tmp_path_factory.mktemp("kernels")
    (folder / "k.cpp").write_text("\n".join(parts))
    subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(folder / "k.so"), str(folder / "k.cpp")],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(folder / "k.so"))
    for fn in (lib.minigrad_im2col, lib.minigrad_col2im):
        fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 12 + [ctypes.c_void_p, ctypes.c_longlong]
    return lib


def _ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


CASES = [((2, 3, 7, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
         ((1, 2, 9, 11), (2, 4), (2, 3), (0, 1, 2, 0), (2, 1)),
         ((2, 1, 5, 5), (5, 5), (1, 1), (0, 0, 0, 0), (1, 1)),
         ((1, 2, 8, 7), (3, 2), (4, 5), (2, 2, 1, 1), (1, 3)),
         ((3, 2, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1))]


@pytest.mark.parametrize("shape,kernel,stride,pads,dilation", CASES)
def test_gpu_kernel_source_matches_reference(host_kernels, shape, kernel, stride, pads, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    n, c, h, w = shape
    out_h = conv_out_size(h, kernel[0], stride[0], pads[0], pads[1], dilation[0])
    out_w = conv_out_size(w, kernel[1], stride[1], pads[2], pads[3], dilation[1])
    geometry = [h, w, out_h, out_w, kernel[0], kernel[1], stride[0], stride[1], pads[0], pads[2],
                dilation[0], dilation[1]]
    expected_cols = im2col(x, kernel, stride, pads, dilation)
    cols = np.empty_like(expected_cols)
    host_kernels.minigrad_im2col(_ptr(x), *geometry, _ptr(cols), cols.size)
    np.testing.assert_array_equal(cols, expected_cols)

    dcols = rng.standard_normal(expected_cols.shape)
    expected_image = col2im(dcols, (h, w), stride, pads, dilation)
    image = np.empty(shape)
    host_kernels.minigrad_col2im(_ptr(dcols), *geometry, _ptr(image), image.size)
    np.testing.assert_allclose(image, expected_image, rtol=1e-13, atol=1e-13)
