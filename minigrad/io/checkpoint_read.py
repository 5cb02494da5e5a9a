"""Reading a checkpoint archive, verified: the JSON header (format, version, CRC32, bounded size), then every
array's ``.npy`` header against it before any data is inflated, then the data and each array's CRC32.

    meta, arrays = read_verified(path)          # CheckpointError for anything but a sound minigrad checkpoint

mg.load and mg.load_into (io/checkpoint.py) build on it; the layout it reads is described there.
"""
from __future__ import annotations

import json
import math
import zlib

import numpy

from ..runtime.memory import check_bytes
from .archive import NpzReader, is_npy_file
from .regular_file import open_regular

__all__ = ["CheckpointError", "FORMAT", "VERSION", "META_NAME", "META_CRC_NAME", "META_LIMIT", "crc32_of",
           "declared_entry", "read_verified"]

FORMAT = "minigrad-checkpoint"
VERSION = 1
META_NAME, META_CRC_NAME = "__meta__", "__meta_crc32__"   # the JSON header and its CRC32
META_LIMIT = 256 << 20        # bytes of JSON header a checkpoint may declare


class CheckpointError(ValueError):
    """A weight file or checkpoint is truncated, corrupted, of another format/version, or does not fit."""


def crc32_of(array) -> int:
    """CRC32 of an array's bytes in C order."""
    if array.size == 0:                       # (a memoryview of an empty array cannot be cast to bytes)
        return zlib.crc32(b"")
    return zlib.crc32(memoryview(numpy.asarray(array, order="C")).cast("B"))


def _read_meta(reader: NpzReader, fail) -> dict:
    """The verified JSON header: format, version and CRC32 checked, its size bounded by META_LIMIT."""
    names = set(reader.names)
    if META_NAME not in names:
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            raise fail("not a minigrad checkpoint but a PyTorch file (torch.save); convert its state dict with "
                       "mg.torch_compat.from_torch_state_dict(torch.load(path))")
        raise fail("not a minigrad checkpoint (no '__meta__' entry; was it written by numpy.savez "
                   "rather than mg.save?)")
    dtype, shape, _ = reader.header(META_NAME)
    if dtype != numpy.uint8 or len(shape) != 1 or shape[0] > META_LIMIT:
        raise fail(f"the checkpoint header is {dtype.str} of shape {list(shape)}, expected at most {META_LIMIT} "
                   "bytes (uint8); the file is corrupted or crafted")
    meta_bytes = reader.read(META_NAME, dtype, shape)
    meta_crc = reader.read(META_CRC_NAME, numpy.uint64, (1,)) if META_CRC_NAME in names else None
    if meta_crc is None or int(meta_crc[0]) != crc32_of(meta_bytes):
        raise fail("the checkpoint header failed its CRC32 check; the file is corrupted")
    meta = json.loads(meta_bytes.tobytes().decode("utf-8"))
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != FORMAT:
        raise fail(f"not a minigrad checkpoint (format {found!r}, expected {FORMAT!r})")
    version = meta.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise fail(f"checkpoint format version {version!r} is not supported; this minigrad reads version "
                   f"{VERSION}" + (" (the file was written by a newer minigrad: upgrade)" if newer else ""))
    return meta


def declared_entry(entry) -> tuple:
    """(dtype, shape) an array entry of the header declares (ValueError if they are not a dtype and a shape)."""
    dtype = numpy.dtype(entry["dtype"])
    shape = tuple(entry["shape"])
    if dtype.hasobject or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shape):
        raise ValueError(f"invalid dtype {entry['dtype']!r} or shape {entry['shape']!r} in the header")
    return dtype, shape


def read_verified(path: str, meta_only: bool = False) -> tuple[dict, dict]:
    """(meta, host arrays) with format, version, dtypes, shapes and checksums all checked.

    Bounded: every member's .npy header is compared with the checkpoint's JSON header before any data is
    inflated, and a member is read only up to the size its header declares (minigrad/io/archive.py), so a
    crafted file costs at most the memory of the arrays its header lists. ``meta_only``: stop after the
    header (arrays is empty).
    """
    def fail(reason):
        return CheckpointError(f"{path}: {reason}")

    handle = open_regular(path, None, CheckpointError, "checkpoint")   # never a FIFO, a device or a directory
    try:
        if is_npy_file(handle):
            raise fail("not a minigrad checkpoint (a single .npy array, not an .npz archive)")
        with NpzReader(handle) as reader:
            meta = _read_meta(reader, fail)
            entries = meta["arrays"]
            stored = set(reader.names) - {META_NAME, META_CRC_NAME}
            if stored != set(entries):
                missing, extra = sorted(set(entries) - stored), sorted(stored - set(entries))
                raise fail(f"the archive does not match its header: missing arrays {missing}, unlisted arrays {extra}")
            declared = {key: declared_entry(entry) for key, entry in entries.items()}
            for key, (dtype, shape) in declared.items():     # every header before any data
                found_dtype, found_shape, _ = reader.header(key)
                if found_dtype != dtype or found_shape != shape:
                    raise fail(f"array '{key}' has dtype {found_dtype.str} and shape {list(found_shape)} but the "
                               f"header says {dtype.str} and {list(shape)}; the file is corrupted")
            arrays = {}
            if meta_only:
                return meta, arrays
            total = sum(dtype.itemsize * math.prod(shape) for dtype, shape in declared.values())
            check_bytes(total, f"mg.load: {path}", None, what=f"reading its {len(declared)} arrays")
            for key, (dtype, shape) in declared.items():
                array = reader.read(key, dtype, shape)
                if crc32_of(array) != entries[key]["crc32"]:
                    raise fail(f"array '{key}' failed its CRC32 check; the file is corrupted")
                arrays[key] = array
    except (CheckpointError, FileNotFoundError, MemoryError):
        raise
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, ValueError from a damaged header, ...
        raise CheckpointError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc}); the file is "
                              "truncated, corrupted or not a minigrad checkpoint") from exc
    finally:
        handle.close()
    return meta, arrays
