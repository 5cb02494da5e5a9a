"""A run directory (``minigrad train --out DIR``): one writer at a time, files never written through links.

    with RunDirectory(out) as run:          # creates DIR, takes DIR/.lock (or raises RunDirectoryBusy)
        run.remove_stale_temp_files()       # leftovers of a process killed while writing
        run.write_bytes("metrics.json", b"...")   # temp file in DIR, fsync, rename over the target

The lock is an exclusive ``fcntl.flock`` on ``DIR/.lock``, held while the ``with`` block runs. The
kernel releases it when its process dies, so a lock left by a killed run is simply taken over; the
file holds the PID of the holder, for the message of a second writer. Files are replaced by rename,
which replaces a symbolic link itself rather than the file it points to, and appends open with
``O_NOFOLLOW``: nothing outside the directory is ever written through a link planted in it.
"""
from __future__ import annotations

import errno
import glob
import os
import stat

from ..io.atomic_write import write_bytes_atomic

__all__ = ["RunDirectory", "RunDirectoryBusy", "RunDirectoryError", "open_run_directory", "RUN_FILES", "LOCK_NAME",
           "open_append", "HISTORY_NAME"]

LOCK_NAME = ".lock"
HISTORY_NAME = "history.jsonl"
# The outputs of `minigrad train`: a directory holding any of them holds a run.
RUN_FILES = ("checkpoint.npz", "history.jsonl", "metrics.json", "curves.png")


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message names --out and what to do."""


class RunDirectoryBusy(RuntimeError):
    """Another live process holds the run directory's lock; ``pid`` is its process id (None if unknown)."""

    def __init__(self, directory, pid):
        self.directory, self.pid = directory, pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{directory} is in use by {holder} (lock file {os.path.join(directory, LOCK_NAME)})")


def open_append(path):
    """``path`` opened for appending text, created if missing; a symbolic link is refused (OSError ELOOP)."""
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "a", encoding="utf-8")


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class RunDirectory:
    """``directory`` created if needed and locked for this process while the ``with`` block runs."""

    def __init__(self, directory):
        self.path = os.fspath(directory)
        self._fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        """Create the directory, take its lock (RunDirectoryBusy if a live process holds it), record our PID."""
        import fcntl  # POSIX only: imported here so that `import minigrad` works everywhere
        os.makedirs(self.path, exist_ok=True)
        lock = os.path.join(self.path, LOCK_NAME)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirectoryBusy(self.path, pid) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self):
        """Drop the lock (the lock file stays: removing it could let two writers lock two different files)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)

    def existing_outputs(self) -> list:
        """The run files (RUN_FILES) present in the directory, links included. An empty history.jsonl alone is
        not a run: it is what a run that failed before its first record (at its first step, killed while
        loading) leaves, and it holds nothing to lose."""
        found = [name for name in RUN_FILES if os.path.lexists(os.path.join(self.path, name))]
        return [] if found == [HISTORY_NAME] and self.empty_history() else found

    def empty_history(self) -> bool:
        """True when history.jsonl is a regular file (not a link) of 0 bytes."""
        try:
            info = os.lstat(os.path.join(self.path, HISTORY_NAME))
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and info.st_size == 0

    def remove_outputs(self):
        """Delete the run files (a link is removed, never its target), for a run that starts over."""
        for name in self.existing_outputs():
            os.unlink(os.path.join(self.path, name))

    def remove_stale_temp_files(self) -> list:
        """Delete ``.<name>.*.tmp`` files left by a process killed while writing; returns their names.

        Only safe while holding the lock: a live writer's temp file would otherwise be removed under it. A
        directory of such a name was not made by minigrad: RunDirectoryError, and nothing is removed.
        """
        removed = []
        for name in RUN_FILES:
            found = glob.glob(os.path.join(glob.escape(self.path), f".{name}.*.tmp"))
            for path in found:
                if os.path.isdir(path) and not os.path.islink(path):
                    raise RunDirectoryError(f"{path} is a directory, named like the temporary files of {name} "
                                            f"(.{name}.*.tmp) that minigrad removes when a run starts; move or "
                                            "remove it")
            for path in found:
                os.unlink(path)
                removed.append(os.path.basename(path))
        return removed

    def write_bytes(self, name, data: bytes) -> str:
        """``data`` written atomically to the directory's file ``name``; returns its path."""
        path = os.path.join(self.path, name)
        write_bytes_atomic(path, data)
        return path


def open_run_directory(out, resume: bool, overwrite: bool, say=print) -> RunDirectory:
    """``out`` created and locked for a run of ``minigrad train`` (RunDirectoryError if it cannot be).

    A directory that holds a run is only reused with ``resume`` (continue it) or ``overwrite`` (its
    outputs are deleted first, so nothing of the old run is left next to the new one). Temp files of
    an interrupted write are removed. A directory in the place of an output file is refused, never removed.
    """
    run_dir = RunDirectory(out)
    try:
        run_dir.acquire()
    except RunDirectoryBusy as exc:
        holder = f"process {exc.pid}" if exc.pid is not None else "another process"
        raise RunDirectoryError(f"--out {out} is in use by {holder}, which is training into it; wait for it to "
                                "finish, stop it, or choose another --out") from None
    except OSError as exc:
        why = "the file system is read-only: " if exc.errno == errno.EROFS else ""
        raise RunDirectoryError(f"--out {out}: cannot create or write the run directory ({exc.strerror}); {why}"
                                "choose another --out") from None
    try:
        for name in RUN_FILES:          # not made by minigrad, and never removed by --overwrite
            path = os.path.join(out, name)
            if os.path.isdir(path) and not os.path.islink(path):
                raise RunDirectoryError(f"--out {out}: {path} is a directory, where the run's {name} goes; "
                                        "minigrad does not remove directories: move or remove it, or choose "
                                        "another --out")
        found = run_dir.existing_outputs()
        if found and not resume:
            if not overwrite:
                raise RunDirectoryError(f"--out {out} already holds a run ({', '.join(found)}): continue it with "
                                        "--resume, replace it with --overwrite, or choose another --out")
            run_dir.remove_outputs()
            say(f"Overwriting the run in {out} (removed {', '.join(found)})")
        try:
            stale = run_dir.remove_stale_temp_files()
        except RunDirectoryError as exc:
            raise RunDirectoryError(f"--out {out}: {exc}, or choose another --out") from None
        if stale:
            say(f"Removed {len(stale)} temporary file(s) left in {out} by an interrupted write")
    except BaseException:
        run_dir.release()
        raise
    return run_dir
