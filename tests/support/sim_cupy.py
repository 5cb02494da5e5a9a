"""Simulated CuPy: runs minigrad's CuPy code paths on the CPU, for machines without a GPU.

    MINIGRAD_TEST_CUPY=sim python -m pytest             # the suite, cupy cases included
    MINIGRAD_TEST_CUPY=sim python -m pytest -m gpu      # only the cupy cases

``install()`` puts a module named ``cupy`` (and ``cupyx.scipy.special``) in ``sys.modules``.
It is *not* a GPU and proves nothing about speed or about CUDA itself; it proves that the
Python side of the GPU path -- kernel wrappers, argument types, device moves, checkpoint
round trips, optimizer state, the training loop -- does what the NumPy path does, and that
it only uses what real CuPy 14 offers:

- ``ndarray`` wraps a NumPy array in a distinct type, as a device array is. Like CuPy it
  refuses implicit conversion (``numpy.asarray(x)`` raises; use ``x.get()``) and refuses
  NumPy arrays as operands or arguments (only ``cupy.asarray`` / ``array`` copy host data
  in), so a hidden host round trip or a stray ``numpy.zeros`` fails here as on a GPU.
- Module functions, array methods, ``cupy.random`` and ``cupy.cuda`` names exist only when
  real CuPy 14 has them (``sim_cupy_names.json``, read off cupy-cuda13x 14.2.0).
- ``ElementwiseKernel`` compiles the kernel body as host C++ (``cuda_host``) for the dtype
  bound to ``T`` and runs it once per output element, with CuPy's argument rules (arity,
  one dtype per type placeholder, scalars cast to the declared type).
"""
from __future__ import annotations

import json
import math
import os
import sys
import types

import numpy

from . import cuda_host

_NAMES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sim_cupy_names.json")))
_MODULE_NAMES = set(_NAMES["cupy"])
_METHOD_NAMES = set(_NAMES["ndarray"])
_HOST_INPUT = "Unsupported type {}: a NumPy array cannot be an operand of a CuPy (device) operation"


# Device-to-host reads so far (get, item, float/int/bool of an array, printing, boolean-mask
# indexing and other results whose size depends on the data): what a GPU would
# have to wait for. Tests count them, e.g. the training loop reads only every ``log_every`` steps.
host_reads = 0


def _host_read():
    global host_reads
    host_reads += 1


host_copies = 0    # host-to-device copies (cupy.asarray / cupy.array of host data, ndarray.set)
copy_log = []      # (stream, from pinned memory?) of each ndarray.set
stream_waits = []  # (waiting stream, event) of each Stream.wait_event


class _PinnedMemory(bytearray):
    """cupy.cuda.alloc_pinned_memory's buffer (page-locked on a GPU machine; host bytes here)."""


def _pinned_base(array):
    while array is not None and not isinstance(array, _PinnedMemory):
        array = array.base if isinstance(array, numpy.ndarray) else getattr(array, "obj", None)
    return array is not None


pinned_allocations = 0


def _alloc_pinned_memory(size):
    global pinned_allocations
    pinned_allocations += 1
    return _PinnedMemory(int(size))


class SimulatedDeviceError(TypeError):
    """Code did something real CuPy would refuse (host array in a device op, missing API)."""


# ----------------------------------------------------------------------------- arrays

def _unwrap(obj):
    """Device arrays -> their NumPy storage; NumPy arrays are refused, as CuPy refuses them."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, numpy.ndarray):
        raise SimulatedDeviceError(_HOST_INPUT.format(type(obj)))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """NumPy results -> device arrays (a NumPy scalar result is a 0-d array, as in CuPy)."""
    if isinstance(obj, numpy.ndarray):
        return ndarray._of(obj)
    if isinstance(obj, numpy.generic):
        return ndarray._of(numpy.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _device_call(fn, *args, **kwargs):
    return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))


class ndarray:
    """A device array (NumPy storage). ``get()`` copies it to the host."""

    __slots__ = ("_a", "__weakref__")   # real CuPy arrays are weak-referenceable too
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, array):
        obj = object.__new__(cls)
        obj._a = array
        return obj

    # --- host transfers: explicit only
    def get(self, stream=None, order="C", out=None, blocking=True):
        _host_read()
        return numpy.array(self._a, order=order)

    def set(self, arr, stream=None):
        global host_copies
        if not isinstance(arr, numpy.ndarray) or arr.shape != self.shape:
            raise ValueError(f"set() needs a NumPy array of shape {self.shape}")
        host_copies += 1
        copy_log.append((stream, _pinned_base(arr)))
        self._a[...] = arr

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    mT = property(lambda self: ndarray._of(self._a.mT))
    real = property(lambda self: ndarray._of(self._a.real))
    imag = property(lambda self: ndarray._of(self._a.imag))
    device = property(lambda self: cuda.Device())      # the current device (arrays follow it here)
    data = property(lambda self: types.SimpleNamespace(ptr=self._a.ctypes.data, device_id=0))

    def __getattr__(self, name):
        if name.startswith("__") or name not in _METHOD_NAMES or not hasattr(numpy.ndarray, name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        method = getattr(self._a, name)
        if name in ("item", "tolist", "tobytes", "nonzero"):
            _host_read()
        return lambda *args, **kwargs: _device_call(method, *args, **kwargs)

    # --- numpy protocol: numpy functions on device arrays run "on the device"
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ not in _MODULE_NAMES:
            raise SimulatedDeviceError(f"CuPy has no ufunc {ufunc.__name__}")
        out = kwargs.get("out")
        result = _device_call(getattr(ufunc, method), *inputs, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func, types_, args, kwargs):
        if func.__module__ != "numpy" or func.__name__ not in _MODULE_NAMES:
            raise SimulatedDeviceError(f"CuPy has no {func.__module__}.{func.__name__}")
        return _device_call(func, *args, **kwargs)

    # --- indexing, iteration, conversion
    def __getitem__(self, key):
        key = _unwrap(key)
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, numpy.ndarray) and k.dtype == bool for k in keys):
            _host_read()      # a boolean mask: CuPy reads the number of selected elements back first
        result = self._a[key]
        if isinstance(result, numpy.generic):  # CuPy: a 0-d view into the array, not a copy
            result = self._a[keys + (Ellipsis,)]
        return _wrap(result)

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(row) for row in self._a)

    def __repr__(self):
        _host_read()
        return repr(self._a).replace("array(", "array(device=sim, ", 1)

    __str__ = __repr__
    __hash__ = None

    def __format__(self, spec):
        _host_read()
        return format(self._a, spec)

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __reduce__(self):  # CuPy pickles a device array as a device array
        return (_from_pickle, (self._a.copy(),))


def _from_pickle(array):
    return ndarray._of(array)


def _operator(name):
    numpy_op = getattr(numpy.ndarray, name)
    in_place = name.startswith("__i") and name != "__invert__"     # ~a is a new array, not an in-place op

    def op(self, *others):
        for other in others:
            if isinstance(other, (list, tuple)):
                raise TypeError(f"Unsupported type {type(other)}")    # CuPy operands: arrays and scalars
        result = numpy_op(self._a, *_unwrap(others))
        if result is NotImplemented:
            return NotImplemented
        return self if in_place else _wrap(result)
    op.__name__ = name
    return op


for _name in ("add sub mul truediv floordiv mod pow matmul divmod and or xor lshift rshift "
              "radd rsub rmul rtruediv rfloordiv rmod rpow rmatmul rdivmod rand ror rxor rlshift rrshift "
              "iadd isub imul itruediv ifloordiv imod ipow iand ior ixor ilshift irshift "
              "eq ne lt le gt ge neg pos abs invert").split():
    setattr(ndarray, f"__{_name}__", _operator(f"__{_name}__"))


def _host_conversion(convert):
    def method(self):
        _host_read()          # a Python number from device memory: the host waits for the device
        return convert(self._a)
    method.__name__ = f"__{convert.__name__}__"
    return method


for _convert in (bool, float, int, complex):
    setattr(ndarray, f"__{_convert.__name__}__", _host_conversion(_convert))
ndarray.__module__ = "cupy"


# ----------------------------------------------------------------------------- kernels

class ElementwiseKernel:
    """cupy.ElementwiseKernel: the body runs as host C++ once per output element ``i``."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.in_params, self.out_params, self.operation, self.name = in_params, out_params, operation, name
        self._ins, self._outs = cuda_host.params(in_params), cuda_host.params(out_params)
        self._libraries = {}

    def __call__(self, *args, size=None):
        declared = self._ins + self._outs
        if len(args) not in (len(self._ins), len(declared)):
            raise TypeError(f"{self.name}: wrong number of arguments ({len(args)} given, {len(declared)} declared)")
        bound = {}
        for value, (_, type_name, pname) in zip(args, declared):
            if isinstance(value, numpy.ndarray):
                raise SimulatedDeviceError(f"{self.name}: argument {pname} is a NumPy (host) array")
            if type_name == "T" and isinstance(value, ndarray):
                if bound.setdefault("T", value.dtype) != value.dtype:
                    raise TypeError(f"{self.name}: Type is mismatched. {pname} {value.dtype} {bound['T']}")
        if bound.get("T") not in (numpy.dtype("float32"), numpy.dtype("float64")):
            raise SimulatedDeviceError(f"{self.name}: the simulator runs T = float32/float64, got {bound.get('T')}")
        if len(args) == len(self._ins):     # outputs omitted: CuPy allocates them
            args = args + self._allocate_outputs(args, size, bound["T"])
        type_T = cuda_host.C_TYPES[bound["T"].name][0]
        outputs = args[len(self._ins):]
        for value, (raw, _, pname) in zip(outputs, self._outs):
            if not isinstance(value, ndarray) or raw:
                raise TypeError(f"{self.name}: output {pname} must be a device array")
        count = outputs[0].size
        array_inputs = tuple(pname for value, (raw, _, pname) in zip(args, self._ins)
                             if isinstance(value, ndarray) and not raw)
        converted, copies = [], []
        for value, (raw, type_name, pname) in zip(args, declared):
            dtype = bound["T"] if type_name == "T" else numpy.dtype(type_name)
            if isinstance(value, ndarray):
                if value.dtype != dtype:
                    raise TypeError(f"{self.name}: {pname} is {value.dtype}, declared {type_name} ({dtype})")
                storage = value._a
                if not raw and storage.shape != outputs[0].shape:   # CuPy broadcasts non-raw arrays
                    try:
                        storage = numpy.broadcast_to(storage, outputs[0].shape)
                    except ValueError:
                        raise ValueError(f"{self.name}: operands could not be broadcast together: {pname} "
                                         f"{value.shape}, output {outputs[0].shape}") from None
                if raw and not storage.flags.c_contiguous:
                    # CuPy would index it through its strides, but minigrad's kernels take pointers into
                    # rows (&logits[...]) and assume C order: the wrappers must pass contiguous arrays
                    raise SimulatedDeviceError(f"{self.name}: raw argument {pname} is not C-contiguous")
                if not storage.flags.c_contiguous:
                    storage = numpy.ascontiguousarray(storage)
                if storage is not value._a:
                    copies.append((value, storage))
                converted.append(storage)
            else:
                converted.append(cuda_host.C_TYPES[dtype.name][1](dtype.type(value).item()))
        key = (type_T, array_inputs)
        if key not in self._libraries:
            source = cuda_host.host_function("kernel", self.in_params, self.out_params, self.operation,
                                             type_T, array_inputs)
            self._libraries[key] = cuda_host.build(source).kernel
        try:
            cuda_host.call(self._libraries[key], self.in_params, self.out_params, converted,
                           lambda type_name, c_value: c_value, count)      # scalars already converted
        except IndexError:
            raise SimulatedDeviceError(f"{self.name}: the kernel read a raw array out of bounds "
                                       "(silent garbage or a crash on a GPU)") from None
        for value, storage in copies:   # outputs that were not contiguous
            if any(value is out for out in outputs):
                value._a[...] = storage
        return outputs[0] if len(outputs) == 1 else outputs

    def _allocate_outputs(self, args, size, dtype_T):
        """Outputs of the broadcast shape of the non-raw array inputs (or ``size``), T typed as dtype_T."""
        shapes = [a.shape for a, (raw, _, _) in zip(args, self._ins) if isinstance(a, ndarray) and not raw]
        if not shapes and size is None:
            raise ValueError(f"{self.name}: loop size is undecided (pass the outputs or size=)")
        shape = numpy.broadcast_shapes(*shapes) if shapes else (size,)
        return tuple(ndarray(shape, dtype=dtype_T if type_name == "T" else numpy.dtype(type_name))
                     for _, type_name, _ in self._outs)


class ReductionKernel:
    """cupy.ReductionKernel: map, reduce and post-map run as host C++ (``cuda_host.host_reduction``),
    each row folded by several lanes and a tree, as a CUDA block folds it."""

    def __init__(self, in_params, out_params, map_expr, reduce_expr, post_map_expr, identity, name="reduce_kernel",
                 reduce_type=None, reduce_dims=True, preamble="", options=()):
        self.in_params, self.out_params, self.name = in_params, out_params, name
        self.map_expr, self.reduce_expr, self.post_map_expr, self.identity = map_expr, reduce_expr, post_map_expr, identity
        self._ins, self._outs = cuda_host.params(in_params), cuda_host.params(out_params)
        self.reduce_type = reduce_type if reduce_type is not None else self._outs[0][1]
        self.preamble = preamble
        self._libraries = {}

    def __call__(self, *args, axis=None, keepdims=False, out=None, stream=None):
        if len(args) != len(self._ins):
            raise TypeError(f"Wrong number of arguments for {self.name}")
        bound = {}
        for value, (raw, type_name, pname) in zip(args, self._ins):
            if isinstance(value, numpy.ndarray):
                raise SimulatedDeviceError(f"{self.name}: argument {pname} is a NumPy (host) array")
            if not isinstance(value, ndarray):
                raise SimulatedDeviceError(f"{self.name}: the simulator takes device arrays only ({pname})")
            if type_name == "T" and bound.setdefault("T", value.dtype) != value.dtype:
                raise TypeError(f"{self.name}: Type is mismatched. {pname} {value.dtype} {bound['T']}")
        if bound.get("T") not in (numpy.dtype("float32"), numpy.dtype("float64")):
            raise SimulatedDeviceError(f"{self.name}: the simulator runs T = float32/float64, got {bound.get('T')}")
        shape = numpy.broadcast_shapes(*(a.shape for a in args))
        axes = tuple(range(len(shape))) if axis is None else tuple(
            sorted({a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}))
        kept = tuple(d for d in range(len(shape)) if d not in axes)
        out_shape = tuple(shape[d] for d in kept)
        length = int(numpy.prod([shape[d] for d in axes], dtype=numpy.int64))
        # (shape) -> (kept axes..., reduced axes...) -> (outputs, length), C-contiguous
        storages = [numpy.ascontiguousarray(numpy.broadcast_to(a._a, shape).transpose(kept + axes)).reshape(-1, length)
                    for a in args]
        type_T = cuda_host.C_TYPES[bound["T"].name][0]
        outputs = [ndarray(out_shape, dtype=bound["T"] if t == "T" else numpy.dtype(t)) for _, t, _ in self._outs]
        if type_T not in self._libraries:
            source = cuda_host.host_reduction("reduce", self.in_params, self.out_params, self.map_expr,
                                              self.reduce_expr, self.post_map_expr, self.identity, self.reduce_type,
                                              self.preamble, type_T)
            self._libraries[type_T] = cuda_host.build(source).reduce
        pointers = [a.ctypes.data_as(cuda_host.ctypes.c_void_p) for a in storages + [o._a for o in outputs]]
        fault = cuda_host.ctypes.c_int(0)
        self._libraries[type_T](*pointers, cuda_host.ctypes.c_longlong(int(numpy.prod(out_shape, dtype=numpy.int64))),
                                cuda_host.ctypes.c_longlong(length), cuda_host.ctypes.byref(fault))
        if keepdims:
            outputs = [o.reshape(tuple(1 if d in axes else shape[d] for d in range(len(shape)))) for o in outputs]
        if out is not None:
            out[...] = outputs[0]
            return out
        return outputs[0]                   # CuPy returns the first output only


# ----------------------------------------------------------------------------- module

def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host (or device) data -> device array; a device array of the right dtype is returned as is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == numpy.dtype(dtype) else a.astype(dtype)
    global host_copies
    host_copies += 1
    return ndarray._of(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if not isinstance(obj, ndarray):
        global host_copies
        host_copies += 1
    host = obj._a if isinstance(obj, ndarray) else obj
    return ndarray._of(numpy.array(host, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    return a.get(order=order) if isinstance(a, ndarray) else numpy.asarray(a, order=order)


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


_SIZE_FROM_DATA = {"nonzero", "unique", "argwhere", "flatnonzero", "compress", "extract", "where"}
_ZERO_D_RESULTS = {"allclose", "array_equal", "array_equiv"}


class _Module(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") or name not in _MODULE_NAMES:
            raise AttributeError(f"module 'cupy' has no attribute {name!r}")
        if not hasattr(numpy, name):
            raise AttributeError(f"simulated cupy does not provide cupy.{name}")
        value = getattr(numpy, name)
        if isinstance(value, type) or not callable(value):   # dtypes, constants
            return value
        if name in _SIZE_FROM_DATA:
            def call(*args, **kwargs):
                if name != "where" or len(args) + len(kwargs) == 1:
                    _host_read()  # the output size depends on the data: CuPy reads it back first
                return _device_call(value, *args, **kwargs)
            return call
        if name in _ZERO_D_RESULTS:          # a 0-d device array in CuPy, not a Python bool
            return lambda *args, **kwargs: ndarray._of(numpy.asarray(value(*_unwrap(args), **_unwrap(kwargs))))
        return lambda *args, **kwargs: _device_call(value, *args, **kwargs)


# --- cupy.cuda
class _Synchronous:
    """Devices and streams: everything already happened on the host, so waiting is free."""

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_current_device = 0


def _device_count():
    """Simulated GPUs: 1, or $MINIGRAD_SIM_GPUS (for the NCCL tests under mpirun)."""
    return int(os.environ.get("MINIGRAD_SIM_GPUS", "1"))


class _Device(_Synchronous):
    def __init__(self, device=None):
        self.id = _current_device if device is None else int(device)
        self.compute_capability = "90"
        self._previous = []

    def use(self):
        global _current_device
        if not 0 <= self.id < _device_count():
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")
        _current_device = self.id
        return self

    def __enter__(self):
        self._previous.append(_current_device)
        return self.use()

    def __exit__(self, *exc):
        global _current_device
        _current_device = self._previous.pop()
        return False

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return self.id

    def __repr__(self):
        return f"<CUDA Device {self.id} (simulated)>"


class _Stream(_Synchronous):
    ptr = 0
    null = None

    def __init__(self, *args, **kwargs):
        pass

    def record(self, event=None):
        event = event or _Event()
        event.record(self)
        return event

    def wait_event(self, event):
        stream_waits.append((self, event))


class _Event:
    def __init__(self, *args, **kwargs):
        self.time = None

    def record(self, stream=None):
        import time
        self.time = time.perf_counter()

    def synchronize(self):
        pass


def _get_elapsed_time(start, end):
    return (end.time - start.time) * 1e3


_runtime = types.SimpleNamespace(
    getDeviceCount=_device_count, getDevice=lambda: _current_device, deviceSynchronize=lambda: None,
    getDeviceProperties=lambda device: {"name": b"simulated CUDA device (CPU)", "totalGlobalMem": 1 << 34,
                                        "major": 9, "minor": 0, "multiProcessorCount": 1},
    memGetInfo=lambda: (1 << 34, 1 << 34))
class _NcclCommunicator:
    """cupy.cuda.nccl.NcclCommunicator over MPI: the collectives run on the arrays' host storage.

    Like NCCL it refuses two ranks of one machine on one GPU ("Duplicate GPU detected").
    """

    _DTYPES = {0: "int8", 1: "uint8", 2: "int32", 3: "uint32", 4: "int64", 5: "uint64", 6: "float16",
               7: "float32", 8: "float64"}

    def __init__(self, ndev, comm_id, rank):
        import socket
        from mpi4py import MPI
        self._mpi, self._comm, self._rank, self._device = MPI, MPI.COMM_WORLD, rank, _current_device
        places = self._comm.allgather((socket.gethostname(), self._device))
        if len(set(places)) != len(places):
            raise RuntimeError("NCCL_ERROR_INVALID_USAGE: invalid usage (Duplicate GPU detected: "
                               f"{places})")

    def device_id(self):
        return self._device

    def rank_id(self):
        return self._rank

    def _view(self, ptr, count, datatype):
        import ctypes
        dtype = numpy.dtype(self._DTYPES[datatype])
        return numpy.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(ptr), dtype=dtype)

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        data = self._view(sendbuf, count, datatype).copy()
        mpi_op = {0: self._mpi.SUM, 1: self._mpi.PROD, 2: self._mpi.MAX, 3: self._mpi.MIN}[op]
        self._comm.Allreduce(self._mpi.IN_PLACE, data, op=mpi_op)
        self._view(recvbuf, count, datatype)[...] = data

    def bcast(self, buff, count, datatype, root, stream):
        data = self._view(buff, count, datatype).copy()
        self._comm.Bcast(data, root=root)
        self._view(buff, count, datatype)[...] = data


nccl = types.SimpleNamespace(
    NcclCommunicator=_NcclCommunicator, get_unique_id=lambda: tuple(range(128)),
    NCCL_INT8=0, NCCL_UINT8=1, NCCL_INT32=2, NCCL_UINT32=3, NCCL_INT64=4, NCCL_UINT64=5, NCCL_FLOAT16=6,
    NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, NCCL_PROD=1, NCCL_MAX=2, NCCL_MIN=3)

cuda = types.SimpleNamespace(
    Device=_Device, Stream=_Stream, Event=_Event, runtime=_runtime, alloc_pinned_memory=_alloc_pinned_memory, get_elapsed_time=_get_elapsed_time,
    get_current_stream=lambda: _Stream.null, curand=types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=161),
    is_available=lambda: True, nccl=nccl)
_Stream.null = _Stream()
for _name in vars(cuda):
    assert _name in _NAMES["cuda"] or _name in ("curand", "nccl"), _name   # submodules, loaded on use


# --- cupy.random
class RandomState:
    """cupy.random.RandomState(seed, method): a NumPy PCG64 stream (not CuPy's numbers)."""

    def __init__(self, seed=None, method=None):
        self._generator = numpy.random.Generator(numpy.random.PCG64(seed))

    def random_sample(self, size=None, dtype=float):
        return ndarray._of(numpy.asarray(self._generator.random(size, dtype=numpy.float64).astype(dtype)))

    def standard_normal(self, size=None, dtype=float):
        return ndarray._of(numpy.asarray(self._generator.standard_normal(size).astype(dtype)))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return ndarray._of(numpy.asarray(self._generator.normal(loc, scale, size).astype(dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return ndarray._of(numpy.asarray(self._generator.uniform(low, high, size).astype(dtype)))


for _name in ("random_sample", "standard_normal", "normal", "uniform"):
    assert _name in _NAMES["RandomState"], _name
_global_random = RandomState()
random = types.SimpleNamespace(RandomState=RandomState, seed=lambda seed=None: _global_random.__init__(seed),
                               random_sample=_global_random.random_sample,
                               standard_normal=_global_random.standard_normal)


# --- cupyx.scipy.special
def _elementwise_math(fn):
    vectorized = numpy.vectorize(fn)

    def apply(x, out=None):
        result = ndarray._of(vectorized(_unwrap(x)).astype(x.dtype))
        if out is not None:
            out[...] = result
            return out
        return result
    return apply


special = types.SimpleNamespace(erf=_elementwise_math(math.erf), erfc=_elementwise_math(math.erfc))


def installed() -> bool:
    """True when ``import cupy`` gives this simulator (MINIGRAD_TEST_CUPY=sim)."""
    return getattr(sys.modules.get("cupy"), "ndarray", None) is ndarray


def make_module() -> types.ModuleType:
    """The simulated ``cupy`` module (not installed: see install)."""
    module = _Module("cupy", "Simulated CuPy (CPU); see tests/support/sim_cupy.py")
    module.__version__ = f"{_NAMES['version']}+simulated"
    for name, value in {"ndarray": ndarray, "ElementwiseKernel": ElementwiseKernel,
                        "ReductionKernel": ReductionKernel, "asarray": asarray,
                        "array": array, "asnumpy": asnumpy, "cuda": cuda, "random": random,
                        "get_default_memory_pool": lambda: _POOL,
                        "get_default_pinned_memory_pool": lambda: _POOL}.items():
        assert name in _MODULE_NAMES, name
        setattr(module, name, value)
    module.get_array_module = lambda *args: module if any(isinstance(a, ndarray) for a in args) else numpy
    return module


def install():
    """Make ``import cupy`` / ``from cupyx.scipy import special`` give the simulator."""
    module = make_module()
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy.special = types.ModuleType("cupyx.scipy.special")
    for name, fn in vars(special).items():
        assert name in _NAMES["cupyx.scipy.special"], name
        setattr(cupyx.scipy.special, name, fn)
    sys.modules.update({"cupy": module, "cupyx": cupyx, "cupyx.scipy": cupyx.scipy,
                        "cupyx.scipy.special": cupyx.scipy.special})
    return module
