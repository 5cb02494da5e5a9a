"""Atomic file writes, used for every file minigrad writes (checkpoints, run files, safetensors, ONNX).

A temp file ``.<name>.<random>.tmp`` in the target's directory is written, flushed and fsynced, then
``os.replace``d over the target, and the directory is fsynced. A crash or an exception (disk full,
Ctrl-C) leaves the old file or the new one, never a mix, and removes the temp file. A symbolic link at
the target is replaced, not followed. The file gets the mode ``open()`` would give (umask applied).
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["write_atomic", "write_bytes_atomic", "fsync_directory"]


def fsync_directory(directory: str) -> None:
    """fsync a directory (its entries: a rename is durable after this); a no-op where that is impossible."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, write) -> str:
    """Create or replace ``path`` atomically with what ``write(handle)`` writes to a binary file; returns the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~_umask())   # the mode open() would give, not mkstemp's 0600
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)
    return path


def write_bytes_atomic(path, data: bytes) -> str:
    """Create or replace ``path`` atomically with ``data``; returns the path."""
    return write_atomic(path, lambda handle: handle.write(data))
