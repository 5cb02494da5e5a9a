"""Host C++ builds of CuPy ElementwiseKernel bodies, for machines without a GPU.

A kernel ``(in_params, out_params, body)`` in CuPy's syntax becomes one C function that
runs ``body`` once per output element ``i`` -- the loop a CUDA grid would run. ``raw``
arrays and non-raw array inputs arrive as pointers, scalars by value, outputs as
references into their arrays. Used by the kernel-source tests and the simulated CuPy.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

C_TYPES = {"float32": ("float", ctypes.c_float), "float64": ("double", ctypes.c_double),
           "int32": ("int", ctypes.c_int), "int64": ("long long", ctypes.c_longlong),
           "bool": ("bool", ctypes.c_bool)}

PRELUDE = ("#include <cmath>\n#include <algorithm>\n#include <vector>\n"
           "using std::min; using std::max; using std::exp; using std::log; using std::sqrt;\n"
           "template <typename V> struct Raw {\n"
           "  const V* data; long long size; int* fault;\n"
           "  const V& operator[](long long k) const {\n"
           "    if (k < 0 || k >= size) { *fault = 1; return data[0]; }\n"
           "    return data[k];\n  }\n};\n")


def params(spec: str):
    """[(raw, type name, param name)] of a CuPy parameter list such as 'raw T x, int32 h'."""
    out = []
    for part in spec.split(","):
        words = part.split()
        out.append((words[0] == "raw", words[-2], words[-1]))
    return out


def host_function(symbol: str, in_spec: str, out_spec: str, body: str, type_T: str, array_inputs=()) -> str:
    """C source of ``extern "C" void symbol(args..., long long count, int* fault)`` running body for i < count.

    type_T: the C type T stands for ('float' or 'double'); array_inputs: names of the
    non-raw input parameters that are arrays (read at element i) rather than scalars.
    Each ``raw`` array arrives as (pointer, element count) and is read through a bounds check:
    an index outside the array sets ``*fault`` (and reads element 0 instead), so the tests see
    any out-of-bounds read a GPU would make silently.
    """
    def ctype(name):
        return type_T if name == "T" else C_TYPES[name][0]

    args, setup, prologue = [], [], []
    for raw, type_name, name in params(in_spec):
        c = ctype(type_name)
        if raw:
            args.append(f"const {c}* {name}_data, long long {name}_size")
            setup.append(f"const Raw<{c}> {name} = {{{name}_data, {name}_size, fault}};")
        elif name in array_inputs:
            args.append(f"const {c}* {name}_array")
            prologue.append(f"const {c} {name} = {name}_array[i];")
        else:
            args.append(f"{c} {name}")
    for _, type_name, name in params(out_spec):
        c = ctype(type_name)
        args.append(f"{c}* {name}_array")
        prologue.append(f"{c}& {name} = {name}_array[i];")
    return (f'extern "C" void {symbol}({", ".join(args)}, long long count, int* fault) {{\n'
            f"  typedef {type_T} T;\n  {' '.join(setup)}\n"
            f"  for (long long i = 0; i < count; ++i) {{\n    {' '.join(prologue)}\n{body};\n  }}\n}}\n")  # CuPy adds the ;


def host_reduction(symbol: str, in_spec: str, out_spec: str, map_expr: str, reduce_expr: str, post_map_expr: str,
                   identity: str, reduce_type: str, preamble: str, type_T: str, lanes: int = 8) -> str:
    """C source of ``extern "C" void symbol(arrays..., long long outputs, long long length, int* fault)``:
    a CuPy ReductionKernel over (outputs, length) C-contiguous inputs, reducing the last axis.

    Each row is folded as a CUDA block folds it: ``lanes`` threads each take every lanes-th number,
    then a tree combines their partial results, so ``reduce_expr`` also meets two partial results.
    """
    def ctype(name):
        return type_T if name == "T" else C_TYPES[name][0]

    args, reads, writes = [], [], []
    for raw, type_name, name in params(in_spec):
        assert not raw, "CuPy refuses raw arguments in a reduction over a permuted axis"
        args.append(f"const {ctype(type_name)}* {name}_array")
        reads.append(f"const {ctype(type_name)} {name} = {name}_array[i];")
    for _, type_name, name in params(out_spec):
        args.append(f"{ctype(type_name)}* {name}_array")
        writes.append(f"{ctype(type_name)}& {name} = {name}_array[j];")
    namespace = f"{symbol}_types"
    return (f"#define __device__\nnamespace {namespace} {{\ntypedef {type_T} T;\n{preamble}\n}}\n"
            f"#define REDUCE(a, b) ({reduce_expr})\n#define POST_MAP(a) ({post_map_expr})\n"
            f'extern "C" void {symbol}({", ".join(args)}, long long outputs, long long length, int* fault) {{\n'
            f"  using namespace {namespace};\n  typedef {reduce_type} _type_reduce;\n"
            f"  for (long long j = 0; j < outputs; ++j) {{\n"
            f"    std::vector<_type_reduce> lane;\n"
            f"    for (int t = 0; t < {lanes}; ++t) {{\n"
            f"      _type_reduce _s = _type_reduce({identity});\n"
            f"      for (long long k = t; k < length; k += {lanes}) {{\n"
            f"        long long i = j * length + k;\n        {' '.join(reads)}\n"
            f"        _type_reduce _a = static_cast<_type_reduce>({map_expr});\n        _s = REDUCE(_s, _a);\n      }}\n"
            f"      lane.push_back(_s);\n    }}\n"
            f"    for (int offset = {lanes} / 2; offset > 0; offset /= 2)\n"
            f"      for (int t = 0; t < offset; ++t) {{ _type_reduce _a = lane[t], _b = lane[t + offset]; "
            f"lane[t] = REDUCE(_a, _b); }}\n"
            f"    {' '.join(writes)}\n    POST_MAP(lane[0]);\n  }}\n}}\n#undef REDUCE\n#undef POST_MAP\n#undef __device__\n")


def call(function, in_spec: str, out_spec: str, args, c_value, count: int) -> None:
    """Call a host_function: arrays by pointer (raw ones with their size), the rest by value via
    ``c_value(type name, value)``. Raises IndexError when the kernel indexed a raw array out of bounds."""
    import numpy
    declared = params(in_spec) + params(out_spec)
    converted = []
    for value, (raw, type_name, name) in zip(args, declared):
        if isinstance(value, numpy.ndarray):
            assert value.flags.c_contiguous, name
            converted.append(value.ctypes.data_as(ctypes.c_void_p))
            if raw:
                converted.append(ctypes.c_longlong(value.size))
        else:
            converted.append(c_value(type_name, value))
    fault = ctypes.c_int(0)
    function(*converted, ctypes.c_longlong(count), ctypes.byref(fault))
    if fault.value:
        raise IndexError("the kernel indexed a raw array out of bounds")


def compiler_available() -> bool:
    return shutil.which("g++") is not None


def build(functions: str, folder: str | None = None) -> ctypes.CDLL:
    """Compile host_function sources (one string) into a shared library and load it.

    Libraries are cached by source hash in ``folder`` (default: a per-user temp folder).
    Raises RuntimeError with the compiler's message when the source does not compile.
    """
    source = PRELUDE + functions
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = folder or os.path.join(tempfile.gettempdir(), f"minigrad-host-kernels-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    library = os.path.join(folder, f"k{digest}.so")
    if not os.path.exists(library):
        cpp = os.path.join(folder, f"k{digest}-{os.getpid()}.cpp")
        with open(cpp, "w") as f:
            f.write(source)
        partial = f"{library}.{os.getpid()}"
        result = subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", partial, cpp],
                                capture_output=True, text=True)
        os.remove(cpp)
        if result.returncode != 0:
            raise RuntimeError(f"host build of a CUDA kernel failed:\n{result.stderr}")
        os.replace(partial, library)  # atomic: parallel test processes never load a half-written file
    return ctypes.CDLL(library)
