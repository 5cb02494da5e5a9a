"""Atomic file writes, used for every file minigrad writes (checkpoints, run files, safetensors, ONNX).

A temp file ``.<name>.<random>.tmp`` in the target's directory is written, flushed and fsynced, then
``os.replace``d over the target, and the directory is fsynced. A crash or an exception (disk full,
Ctrl-C) leaves the old file or the new one, never a mix, and removes the temp file. A symbolic link at
the target is replaced, not followed. An OSError (no such directory, a directory at the target, disk
full) names the target (``filename``), never the temp file. The file gets the mode ``open()`` would give
(umask applied; the umask is read from /proc/self/status, or once at import where that is missing, never
by setting it: ``os.umask`` changes it for every thread).
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["write_atomic", "write_bytes_atomic", "fsync_directory", "current_umask"]


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


def _proc_umask():
    """The process's umask from /proc/self/status (Linux 4.7 and later), or None where it is not there."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _import_umask() -> int:
    """The umask, read once when this module is imported: os.umask can only read it by setting it, which
    changes it for every thread of the process for a moment, so that is never done while files are written."""
    mask = _proc_umask()
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


UMASK = _import_umask()


def current_umask() -> int:
    """The umask now (/proc/self/status, so a later os.umask counts), else the one read at import (UMASK)."""
    mask = _proc_umask()
    return UMASK if mask is None else mask


def write_atomic(path, write) -> str:
    """Create or replace ``path`` atomically with what ``write(handle)`` writes to a binary file; returns the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _naming(exc, path, None)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~current_umask())   # the mode open() would give, not mkstemp's 0600
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path, tmp)
        raise
    fsync_directory(directory)
    return path


def _naming(exc: OSError, path: str, tmp) -> OSError:
    """``exc`` (same type and errno) naming the target ``path`` instead of the temp file (or nothing): the user
    asked for ``path`` and never heard of ``.<name>.<random>.tmp``. An error about another file is kept."""
    if exc.filename is None or exc.filename == tmp or tmp is None:
        exc.filename, exc.filename2 = path, None
    return exc


def write_bytes_atomic(path, data: bytes) -> str:
    """Create or replace ``path`` atomically with ``data``; returns the path."""
    return write_atomic(path, lambda handle: handle.write(data))
