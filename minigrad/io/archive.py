"""Bounded reading of ``.npz`` archives: every member's header first, then exactly the bytes it declares.

``numpy.load`` inflates a member before anything about it can be checked, so a few-MB archive whose
member inflates to gigabytes costs gigabytes. Here a member is read in two steps:

    header(name)                  (dtype, shape, fortran_order) from the ``.npy`` header alone: nothing
                                  is inflated, so the caller can compare it with what it expects
    read(name, dtype, shape)      the data, only if the header says exactly that dtype and shape,
                                  read in chunks of CHUNK bytes into one preallocated array; a member
                                  holding more bytes than its header declares is refused after one
                                  extra byte (decompression never runs past the declared size + 1)

So the peak memory of reading an array is its declared size (plus one chunk), and the caller decides
which sizes to allow before a byte of data is inflated. Object arrays (pickle) are always refused.
Errors are ``ValueError`` (or ``zipfile.BadZipFile``, ``EOFError``, ``zlib.error`` from a damaged
file); the caller adds the file name.
"""
from __future__ import annotations

import zipfile

import numpy
from numpy.lib import format as npy_format

__all__ = ["NpzReader", "CHUNK", "is_npy_file"]

CHUNK = 1 << 20          # bytes inflated per read
_NPY_MAGIC = b"\x93NUMPY"


def is_npy_file(source) -> bool:
    """True if the file (a path, or a binary file object: read from its start) starts like a single ``.npy``
    array (not an archive)."""
    if hasattr(source, "read"):
        source.seek(0)
        start = source.read(len(_NPY_MAGIC))
        source.seek(0)
        return start == _NPY_MAGIC
    with open(source, "rb") as handle:
        return handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC


def _read_header(handle, name):
    """(dtype, shape, fortran_order) from an open member, leaving the handle at the first data byte."""
    version = npy_format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran_order, dtype = npy_format.read_array_header_2_0(handle)
    else:
        raise ValueError(f"member '{name}' has .npy format version {version}, expected 1.0 or 2.0")
    if dtype.hasobject:
        raise ValueError(f"member '{name}' holds Python objects: Object arrays cannot be loaded when "
                         "allow_pickle=False (a checkpoint never needs pickle)")
    if any(not isinstance(s, int) or s < 0 for s in shape):
        raise ValueError(f"member '{name}' declares an invalid shape {shape}")
    return dtype, tuple(shape), bool(fortran_order)


class NpzReader:
    """An open ``.npz`` archive whose members are read header first (a context manager).

    ``names``: the member names without their ``.npy`` suffix, in archive order. ``source``: a path or an
    open binary file object (closed with the reader).
    """

    def __init__(self, source):
        self._zip = zipfile.ZipFile(source)
        try:
            self._members = {}
            for info in self._zip.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if name in self._members:
                    raise ValueError(f"member '{name}' appears twice in the archive")
                self._members[name] = info
        except BaseException:
            self._zip.close()
            raise
        self.names = list(self._members)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._zip.close()

    def header(self, name):
        """(dtype, shape, fortran_order) of member ``name``, read from its header only."""
        with self._zip.open(self._members[name]) as handle:
            return _read_header(handle, name)

    def read(self, name, dtype, shape):
        """Member ``name`` as a NumPy array, refused unless its header declares exactly ``dtype`` and ``shape``.

        Reads at most nbytes + 1 bytes of data into one array allocated from the declared dtype and shape.
        """
        dtype, shape = numpy.dtype(dtype), tuple(shape)
        with self._zip.open(self._members[name]) as handle:
            found_dtype, found_shape, fortran_order = _read_header(handle, name)
            if found_dtype != dtype or found_shape != shape:
                raise ValueError(f"member '{name}' declares dtype {found_dtype.str} and shape {list(found_shape)}, "
                                 f"expected {dtype.str} and {list(shape)}")
            array = numpy.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
            flat = array.T if fortran_order else array          # C-contiguous view of the same memory
            view = memoryview(flat.reshape(-1)).cast("B") if array.size else memoryview(b"")  # (...) -> (nbytes,)
            done, total = 0, len(view)
            while done < total:
                got = handle.readinto(view[done:done + CHUNK])
                if not got:
                    raise EOFError(f"member '{name}' ends after {done} of its {total} data bytes")
                done += got
            if handle.read(1):
                raise ValueError(f"member '{name}' holds more data than the {total} bytes its header declares")
        return array
