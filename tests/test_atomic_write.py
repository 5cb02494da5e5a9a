"""Atomic writes (minigrad/io/atomic_write.py): the file gets the mode open() would give under the umask in force,
and the umask is read without setting it (os.umask changes it for every thread of the process)."""
import os
import stat
import threading

import pytest

from minigrad.io import atomic_write
from minigrad.io.atomic_write import current_umask, write_bytes_atomic

needs_posix_modes = pytest.mark.skipif(not hasattr(os, "fchmod"), reason="file modes are POSIX only")


@pytest.fixture
def umask():
    """Set the umask for one test (and restore it)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@needs_posix_modes
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_the_file_gets_the_mode_open_would_give_under_the_umask_now(tmp_path, umask, mask, mode):
    umask(mask)
    write_bytes_atomic(tmp_path / "a.bin", b"data")
    with open(tmp_path / "b.bin", "wb"):
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == mode
    assert stat.S_IMODE(os.stat(tmp_path / "b.bin").st_mode) == mode
    assert (tmp_path / "a.bin").read_bytes() == b"data"


def test_writing_never_sets_the_umask(tmp_path, monkeypatch):
    # the old code read the umask by setting it to 022 and back: for that moment, another thread's files got 022
    def refuse(mask):
        raise AssertionError(f"os.umask({mask:#o}) called while writing a file")
    monkeypatch.setattr(os, "umask", refuse)
    threads = [threading.Thread(target=write_bytes_atomic, args=(tmp_path / f"{i}.bin", b"x")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    write_bytes_atomic(tmp_path / "main.bin", b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.bin", "1.bin", "2.bin", "3.bin", "main.bin"]


def test_without_proc_the_umask_read_at_import_applies(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_write, "_proc_umask", lambda: None)
    monkeypatch.setattr(atomic_write, "UMASK", 0o077)
    assert current_umask() == 0o077
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    if hasattr(os, "fchmod"):
        assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == 0o600


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")
def test_the_umask_from_proc_is_the_process_umask(umask):
    umask(0o037)
    assert current_umask() == 0o037
