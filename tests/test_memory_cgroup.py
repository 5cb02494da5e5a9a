"""The memory guard reads the limit of the process's own cgroup (minigrad/runtime/memory.py), not the root of
the cgroup mount: under Slurm, ``systemd-run -p MemoryMax=``, Docker and Kubernetes the limit sits on a nested
cgroup, and a guard that reads the root sees the whole machine and lets through allocations that get the process
OOM-killed (exit 137, no message).

Fake cgroup trees (v1 and v2, nested paths, a container's view, limits on an ancestor) check the lookup; where the
test machine lets us create a memory cgroup (root, cgroup v1 or v2 with the memory controller), a child process
in a real 1 GiB cgroup must get a MemoryError instead of being killed.
"""
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import minigrad as mg
from minigrad.runtime import memory

GiB = 1 << 30
_STAT_V2 = "anon 1073741824\nfile 6442450944\nactive_file 1073741824\ninactive_file 5368709120\nslab 1000\n"
_STAT_V1 = "cache 6442450944\nrss 1073741824\ninactive_file 0\ntotal_rss 1073741824\ntotal_inactive_file 5368709120\n"


def _write(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def _proc(tmp_path, cgroup_lines, mounts):
    """Fake /proc/self/cgroup and /proc/self/mountinfo; mounts: [(fstype, mount point, root, super options)]."""
    (tmp_path / "cgroup").write_text("".join(line + "\n" for line in cgroup_lines))
    info = [f"{30 + i} 23 0:{28 + i} {root.replace(' ', chr(92) + '040')} {str(point).replace(' ', chr(92) + '040')} "
            f"rw,relatime shared:{i} - {fstype} {fstype} {options}" for i, (fstype, point, root, options)
            in enumerate(mounts)]
    (tmp_path / "mountinfo").write_text("\n".join(["22 1 8:1 / / rw - ext4 /dev/sda1 rw"] + info) + "\n")
    return str(tmp_path / "cgroup"), str(tmp_path / "mountinfo")


def test_v2_limit_on_the_process_own_nested_cgroup(tmp_path):
    """systemd-run -p MemoryMax=4G: the limit is on .../run-u7.scope; the mount's root has none."""
    point = tmp_path / "sys fs cgroup"                               # a mount point with a space (escaped \040)
    _write(point, {"memory.current": "9999999999\n"})               # the root: no memory.max, a large usage
    _write(point / "system.slice", {"memory.max": "max\n", "memory.current": "3000000000\n"})
    _write(point / "system.slice" / "run-u7.scope", {"memory.max": f"{4 * GiB}\n", "memory.current": f"{GiB}\n",
                                                     "memory.stat": "inactive_file 0\n"})
    files = _proc(tmp_path, ["0::/system.slice/run-u7.scope"], [("cgroup2", point, "/", "rw,nsdelegate")])
    assert memory._cgroup(*files) == 3 * GiB


def test_v1_limit_on_an_ancestor_applies_to_the_nested_cgroup(tmp_path):
    """A Slurm job step: the job's cgroup has the limit, the step's cgroup below it has none (v1's huge number)."""
    point = tmp_path / "memory"
    _write(point, {"memory.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "1\n"})
    job = point / "slurm" / "uid_0" / "job_5"
    _write(job, {"memory.limit_in_bytes": f"{8 * GiB}\n", "memory.usage_in_bytes": "7516192768\n",
                 "memory.stat": _STAT_V1})
    _write(job / "step_0", {"memory.limit_in_bytes": "9223372036854771712\n", "memory.usage_in_bytes": "1000\n"})
    files = _proc(tmp_path, ["9:pids:/", "4:memory:/slurm/uid_0/job_5/step_0", "0::/"],
                  [("cgroup", point, "/", "rw,memory"), ("cgroup", tmp_path / "pids", "/", "rw,pids")])
    # 8 GiB limit, 7 GiB used of which 5 GiB is reclaimable page cache: 6 GiB can be allocated, not 1 GiB
    assert memory._cgroup(*files) == 6 * GiB


def test_a_container_sees_its_own_cgroup_at_the_mount_point(tmp_path):
    """Docker without a cgroup namespace: the mount's root is the container's cgroup, /proc/self/cgroup names
    the same path; and with a namespace both say "/". Either way the limit is read at the mount point."""
    point = tmp_path / "cg"
    _write(point, {"memory.max": f"{2 * GiB}\n", "memory.current": f"{GiB // 2}\n", "memory.stat": "inactive_file 0\n"})
    files = _proc(tmp_path, ["0::/docker/abc123"], [("cgroup2", point, "/docker/abc123", "rw")])
    assert memory._cgroup(*files) == 2 * GiB - GiB // 2
    (point / "memory.stat").write_text(_STAT_V2)                     # 5 GiB reclaimable cache > the usage
    files = _proc(tmp_path, ["0::/"], [("cgroup2", point, "/", "rw")])
    assert memory._cgroup(*files) == 2 * GiB


def test_v1_and_v2_together_the_smaller_figure_wins_and_over_the_limit_is_zero(tmp_path):
    v1, v2 = tmp_path / "memory", tmp_path / "unified"
    _write(v1 / "a", {"memory.limit_in_bytes": f"{3 * GiB}\n", "memory.usage_in_bytes": f"{GiB}\n"})
    _write(v2 / "b", {"memory.max": f"{GiB}\n", "memory.current": f"{2 * GiB}\n", "memory.stat": "inactive_file 0\n"})
    files = _proc(tmp_path, ["4:memory:/a", "0::/b"], [("cgroup", v1, "/", "rw,memory"), ("cgroup2", v2, "/", "rw")])
    assert memory._cgroup(*files) == 0                                # over its limit: nothing, not negative
    (v2 / "b" / "memory.max").write_text("max\n")
    assert memory._cgroup(*files) == 2 * GiB


def test_no_cgroup_no_limit_or_unreadable_files_give_no_figure(tmp_path):
    assert memory._cgroup(str(tmp_path / "missing"), str(tmp_path / "missing")) is None
    point = tmp_path / "cg"
    _write(point, {"memory.max": "max\n", "memory.current": "5\n"})
    assert memory._cgroup(*_proc(tmp_path, ["0::/"], [("cgroup2", point, "/", "rw")])) is None
    # a v1 mount of another controller only: not the memory hierarchy
    _write(tmp_path / "cpu", {"memory.limit_in_bytes": "1\n"})
    assert memory._cgroup(*_proc(tmp_path, ["2:cpu:/"], [("cgroup", tmp_path / "cpu", "/", "rw,cpu")])) is None


def test_the_guard_names_the_cgroup_limit(tmp_path, monkeypatch):
    point = tmp_path / "cg"
    _write(point / "job", {"memory.max": f"{8 * GiB}\n", "memory.current": "7516192768\n", "memory.stat": _STAT_V2})
    files = _proc(tmp_path, ["0::/job"], [("cgroup2", point, "/", "rw")])
    monkeypatch.setattr(memory, "PROC_CGROUP", files[0])
    monkeypatch.setattr(memory, "MOUNTINFO", files[1])
    monkeypatch.delenv(memory.ENV, raising=False)
    monkeypatch.setattr(memory, "_meminfo", lambda: 64 * GiB)
    monkeypatch.setattr(memory, "_address_space", lambda: None)
    assert memory.available_bytes() == (6 * GiB, "the cgroup's memory limit")
    memory.check_bytes(3 * GiB, "Linear", (3, 1 << 28))
    with pytest.raises(MemoryError, match=r"Conv2d '3': output of shape \(7, 268435456\) needs 7516192768 bytes "
                                          r"\(7.0 GiB\), more than the 6442450944 bytes \(6.0 GiB\) the cgroup's"):
        memory.check_bytes(7 * GiB, "Conv2d '3'", (7, 1 << 28))


# --- a real memory-capped cgroup ---------------------------------------------------------------------------

def _make_real_cgroup(limit):
    """A new memory cgroup below this process's own, limited to ``limit`` bytes: (directory, procs file), or
    None where this machine does not let us (not root, no memory controller, read-only cgroupfs)."""
    name = f"minigrad-test-{uuid.uuid4().hex[:8]}"
    for version, directory in memory._cgroup_dirs(memory.PROC_CGROUP, memory.MOUNTINFO):
        if version == 2:
            try:
                with open(os.path.join(directory, "cgroup.subtree_control")) as handle:
                    if "memory" not in handle.read().split():
                        continue
            except OSError:
                continue
        child = os.path.join(directory, name)
        try:
            os.mkdir(child)
        except OSError:
            continue
        limit_file = "memory.max" if version == 2 else "memory.limit_in_bytes"
        try:
            with open(os.path.join(child, limit_file), "w") as handle:
                handle.write(str(limit))
            return child
        except OSError:
            os.rmdir(child)
    return None


_CHILD = textwrap.dedent("""
    import numpy as np
    import minigrad as mg
    try:
        mg.nn.Conv2d(1, 1, 1, padding=20000)(np.zeros((2, 1, 1, 1), "float32"))
        print("ALLOCATED")
    except MemoryError as exc:
        print("REFUSED", exc)
""")


def test_a_child_in_a_real_one_gib_cgroup_is_refused_not_killed():
    """The issue's case: in a 1 GiB cgroup, a 12.8 GB convolution output is a MemoryError naming the cgroup's
    limit. (Reading only the mount's root, the guard saw the machine's memory and the child was OOM-killed.)"""
    directory = _make_real_cgroup(GiB)
    if directory is None:
        pytest.skip("cannot create a memory cgroup here (needs root and a writable cgroup memory controller)")
    try:
        def enter():
            with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                handle.write(str(os.getpid()))
        env = {k: v for k, v in os.environ.items() if k != memory.ENV}
        done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300,
                              preexec_fn=enter, env=env)
    finally:
        os.rmdir(directory)
    assert done.returncode == 0, f"killed or failed (status {done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.startswith("REFUSED Conv2d: output of shape (2, 1, 40001, 40001) needs"), done.stdout
    assert "the cgroup's memory limit allows" in done.stdout, done.stdout
