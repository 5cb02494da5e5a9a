"""Crafted .npz archives for the checkpoint tests: a member that inflates to gigabytes from a few MB, and a
checkpoint whose JSON header was rewritten with its CRC repaired (``rewrite_meta``).

A deflate stream may be cut into independently compressed segments, each ending with a full flush,
so the compressed form of ``zeros`` bytes of zeros is one compressed 64 MiB block repeated: writing a
2 GiB member takes a fraction of a second instead of compressing 2 GiB. The zip is written by hand
(local headers, central directory, end record; sizes below 4 GiB need no zip64).
"""
import io
import json
import struct
import zipfile
import zlib

import numpy as np

BLOCK = 64 << 20
_block_cache = {}


def rewrite_meta(path, out, change):
    """Write to ``out`` (may be ``path``) the checkpoint at ``path`` with ``change(meta)`` applied to its JSON
    header and the header's CRC repaired: a consistent file that claims something else (another version or
    format, a crafted training state, another architecture)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(arrays["__meta__"].tobytes().decode("utf-8"))
    change(meta)
    data = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    arrays["__meta__"] = data
    arrays["__meta_crc32__"] = np.array([zlib.crc32(data.tobytes())], dtype=np.uint64)
    with open(out, "wb") as handle:                     # an open file: savez appends no ".npz" to the name
        np.savez(handle, **arrays)


def _zero_block():
    """A raw deflate segment holding BLOCK zero bytes, ending with a full flush (compressed once)."""
    if "zeros" not in _block_cache:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        _block_cache["zeros"] = compressor.compress(bytes(BLOCK)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return _block_cache["zeros"]


def npy_header(dtype, shape) -> bytes:
    """The .npy header (version 1.0) numpy writes for an array of this dtype and shape."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                "shape": tuple(shape)})
    return out.getvalue()


def deflated(prefix: bytes, zeros: int):
    """(compressed bytes, crc32, uncompressed size) of prefix followed by `zeros` zero bytes (a multiple of BLOCK)."""
    assert zeros % BLOCK == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)]
    parts += [_zero_block()] * (zeros // BLOCK)
    parts.append(zlib.compressobj(9, zlib.DEFLATED, -15).flush())      # the final (empty) block
    crc, zero = zlib.crc32(prefix), bytes(BLOCK)
    for _ in range(zeros // BLOCK):
        crc = zlib.crc32(zero, crc)
    return b"".join(parts), crc, len(prefix) + zeros


def write_zip(path, members):
    """members: list of (name, data, crc32, uncompressed size, method) with method ZIP_STORED or ZIP_DEFLATED."""
    with open(path, "wb") as out:
        central = []
        for name, data, crc, size, method in members:
            offset = out.tell()
            encoded = name.encode()
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size,
                                  len(encoded), 0) + encoded)
            out.write(data)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc,
                                       len(data), size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        start = out.tell()
        for entry in central:
            out.write(entry)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start,
                              start, 0))


def stored_members(path, skip=()):
    """The members of an existing .npz, as write_zip entries (stored), except the names in skip."""
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info.filename), info.CRC, info.file_size, zipfile.ZIP_STORED)
                for info in archive.infolist() if info.filename not in skip]
