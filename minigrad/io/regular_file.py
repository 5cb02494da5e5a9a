"""Opening a file to load: only a regular file, never a FIFO, a device, a socket or a directory.

``open("fifo", "rb").read()`` waits forever for a writer, and ``open("/dev/zero", "rb").read()`` fills the
memory; a loader given such a path by mistake must say so instead. ``open_regular`` opens the path
without blocking (``O_NONBLOCK``: opening a FIFO does not wait for a writer), checks what the opened file
is (``fstat`` on the open descriptor, so a path swapped between a check and the open cannot slip through)
and refuses anything but a regular file with the message every loader and the CLI give:

    with open_regular(path, "mg.load", CheckpointError) as handle:    # a binary file object
        data = handle.read()
"""
from __future__ import annotations

import os
import stat

__all__ = ["open_regular", "not_regular_message", "check_regular"]

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character "
          "device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_regular_message(path, mode: int, what: str = "file") -> str:
    """The one message for a path that exists but is not a regular file."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return (f"{os.fspath(path)} is {kind}, not a regular file; give the path of the {what} itself "
            "(loading from pipes, devices and sockets is not supported)")


def _refusal(error, where, path, mode, what):
    message = not_regular_message(path, mode, what)
    return error(f"{where}: {message}" if where else message)


def check_regular(path, where: str | None, error=ValueError, what: str = "file") -> None:
    """Raise ``error`` ("where: path is a FIFO ...") unless ``path`` is a regular file (following symlinks).

    A missing path raises FileNotFoundError, as ``open`` would. ``where`` None: the message starts with the path.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _refusal(error, where, path, mode, what)


def open_regular(path, where: str | None, error=ValueError, what: str = "file"):
    """``open(path, "rb")`` for a regular file; ``error`` naming ``where`` for anything else.

    FileNotFoundError / PermissionError pass through as ``open`` raises them; any other failure to open (a
    socket, a loop of symbolic links) is ``error`` too.
    """
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise _refusal(error, where, path, stat.S_IFDIR, what) from None
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:   # a socket (ENXIO), a loop of symbolic links (ELOOP), a name too long, ...
        message = f"{path}: cannot open the {what} ({exc.strerror or exc}); give the path of a regular file"
        raise error(f"{where}: {message}" if where else message) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refusal(error, where, path, mode, what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
