"""The memory guard: an allocation the machine cannot give is refused before it is made.

A layer whose output or workspace size follows from user shapes (a convolution with padding=15000,
a transposed convolution with stride 50000) can ask for more memory than the machine has. NumPy's
allocation then usually succeeds (Linux overcommits) and the process is killed by the kernel's OOM
killer when the pages are touched: no message, no traceback. The layers call ``check_bytes`` with
the bytes they are about to allocate, which raises ``MemoryError`` naming the layer, the shape and
the bytes needed instead:

    check_bytes(nbytes, where, shape, what="output")   # where: the layer's label, e.g. "Conv2d '0'"

What the machine can give (``available_bytes``) is the smallest of: MemAvailable + SwapFree from
/proc/meminfo (``os.sysconf`` where there is no /proc), the memory limit of the process's own cgroup and of
each cgroup above it (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) minus its usage without the
reclaimable page cache (Slurm, systemd-run, Docker, Kubernetes), and the address-space limit (``ulimit -v``) minus the
process's current size. ``MINIGRAD_MAX_BYTES`` (bytes, or with a K/M/G/T suffix; ``off`` disables the
guard; anything else, nan or a negative number included, is refused with a ValueError) replaces that
figure. Cost: requests under ``SMALL`` bytes return after one comparison (and one environment
lookup); only larger ones read /proc, a small cost next to touching that many pages.
For a CuPy array (``like``) only ``MINIGRAD_MAX_BYTES`` applies: CuPy reports its own out-of-memory
errors.
"""
from __future__ import annotations

import functools
import os

__all__ = ["check_bytes", "available_bytes", "check_setting", "MemorySettingError", "SMALL", "ENV", "guarded", "logical_bytes"]

ENV = "MINIGRAD_MAX_BYTES"
SMALL = 64 << 20          # below this, no check against the machine (an allocation that small is never the problem)
PROC_CGROUP = "/proc/self/cgroup"        # the process's own cgroups (v2: "0::/path", v1: "N:memory:/path")
MOUNTINFO = "/proc/self/mountinfo"       # where each cgroup hierarchy is mounted
_SUFFIXES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemorySettingError(ValueError):
    """MINIGRAD_MAX_BYTES holds something that is not a size."""


def check_setting() -> None:
    """Raise MemorySettingError now if MINIGRAD_MAX_BYTES is not a size (the CLI checks it before any work)."""
    _env_limit()


def _env_limit():
    """MINIGRAD_MAX_BYTES in bytes; None when unset; float('inf') for 'off'. MemorySettingError otherwise."""
    raw = os.environ.get(ENV)
    if raw is None or not raw.strip():
        return None
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    if text in ("OFF", "NONE", "INF"):
        return float("inf")
    scale = _SUFFIXES.get(text[-1:], 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):                                   # nan, -1, 1e999, garbage
        raise MemorySettingError(f"{ENV} must be a number of bytes >= 0 (e.g. 1000000), a size with a K/M/G/T suffix "
                         f"(e.g. 8G, 512M) or 'off', got {raw!r}")
    return value


def _read_int(path):
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo():
    """MemAvailable + SwapFree in bytes from /proc/meminfo, else os.sysconf's available pages, else None."""
    fields = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("MemAvailable", "SwapFree"):
                    fields[name] = int(rest.split()[0]) * 1024          # kB
    except (OSError, ValueError, IndexError):
        pass
    if "MemAvailable" in fields:
        return fields["MemAvailable"] + fields.get("SwapFree", 0)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _stat_field(path, name):
    """The value of ``name`` in a cgroup memory.stat file (lines "name value"), or None."""
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(" ")
                if key == name:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def _unescape(field: str) -> str:
    """A /proc/self/mountinfo path field: spaces, tabs, newlines and backslashes are written as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _cgroup_mounts(mountinfo: str):
    """[(version, mount point, mount root)] of the cgroup2 mounts and the cgroup v1 mounts of the memory
    controller, from a mountinfo file (fields: id parent dev root mountpoint opts [tags] - fstype source super)."""
    mounts = []
    try:
        with open(mountinfo) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return mounts
    for line in lines:
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 1:
            continue
        root, point, fstype = _unescape(fields[3]), _unescape(fields[4]), tail[0]
        if fstype == "cgroup2":
            mounts.append((2, point, root))
        elif fstype == "cgroup" and len(tail) >= 3 and "memory" in tail[2].split(","):
            mounts.append((1, point, root))
    return mounts


def _own_cgroups(proc_cgroup: str):
    """{version: the process's cgroup path} from /proc/self/cgroup: v2's "0::/path", v1's "N:...memory...:/path"."""
    paths = {}
    try:
        with open(proc_cgroup) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            paths[2] = path
        elif "memory" in controllers.split(","):
            paths[1] = path
    return paths


def _cgroup_dirs(proc_cgroup: str, mountinfo: str):
    """[(version, directory)]: the process's own memory cgroup directories, each with its ancestors up to the
    mount point (a limit set on a parent applies to its children too), innermost first."""
    own = _own_cgroups(proc_cgroup)
    found = []
    for version, point, root in _cgroup_mounts(mountinfo):
        path = own.get(version)
        if path is None:
            continue
        # The mount shows the hierarchy from `root` down (a container sees its own cgroup as "/").
        relative = path[len(root):] if root != "/" and (path == root or path.startswith(root + "/")) else path
        directory = os.path.normpath(os.path.join(point, relative.lstrip("/")))
        if not directory.startswith(os.path.normpath(point)) or not os.path.isdir(directory):
            directory = os.path.normpath(point)      # a path this mount namespace cannot see: its root
        chain = []
        while True:
            chain.append((version, directory))
            if directory == os.path.normpath(point):
                break
            directory = os.path.dirname(directory)
        found.extend(chain)
    return found


_FILES = {2: ("memory.max", "memory.current", "inactive_file"),
          1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}


def _cgroup(proc_cgroup: str | None = None, mountinfo: str | None = None):
    """What the process's own memory cgroups leave: min over the cgroup and its ancestors (v2 and v1) of the
    limit minus the usage; None when none of them has a limit.

    The cgroup is the process's own (``/proc/self/cgroup``, found under its mount in ``/proc/self/mountinfo``),
    not the root of the mount: under Slurm, ``systemd-run -p MemoryMax=``, Docker or Kubernetes the limit sits
    on a nested cgroup. The usage leaves out the inactive page cache (memory.stat's ``inactive_file``, v1:
    ``total_inactive_file``): the kernel reclaims it before it fails an allocation, so counting it would refuse
    allocations after reading large files.
    """
    figures = []
    for version, directory in _cgroup_dirs(proc_cgroup or PROC_CGROUP, mountinfo or MOUNTINFO):
        limit_name, usage_name, cache_field = _FILES[version]
        limit = _read_int(os.path.join(directory, limit_name))          # v2 "max" is not a number: no limit
        if limit is None or limit >= 1 << 60:                           # v1 writes a huge number for "none"
            continue
        usage = _read_int(os.path.join(directory, usage_name)) or 0
        cache = _stat_field(os.path.join(directory, "memory.stat"), cache_field) or 0
        figures.append(max(0, limit - max(0, usage - cache)))
    return min(figures) if figures else None


def _address_space():
    """RLIMIT_AS minus the process's current virtual size, or None without a limit."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as handle:
            size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        size = 0
    return max(0, soft - size)


def available_bytes():
    """(bytes, where the figure comes from): what an allocation may take now; (None, None) if unknown."""
    limit = _env_limit()
    if limit is not None:
        return limit, ENV
    figures = [(v, name) for v, name in ((_meminfo(), "available memory (MemAvailable + SwapFree)"),
                                         (_cgroup(), "the cgroup's memory limit"),
                                         (_address_space(), "the address-space limit (ulimit -v)"))
               if v is not None]
    return min(figures) if figures else (None, None)


def _human(nbytes) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check_bytes(nbytes: int, where: str, shape, what: str = "output", like=None, advice: str | None = None) -> None:
    """Raise MemoryError naming ``where``, ``shape`` and ``nbytes`` when more than can be allocated now.

    nbytes: what the caller is about to allocate (its output and workspaces); shape: the one to name (or None);
    like: an array on the device the allocation goes to (None: the host); advice: what the user can change
    (default: the input, batch, padding or stride).
    """
    if nbytes < SMALL and os.environ.get(ENV) is None:
        return
    from .backend import is_gpu_array
    if like is not None and is_gpu_array(like):
        limit, source = _env_limit(), ENV
    else:
        limit, source = available_bytes()
    if limit is None or nbytes <= limit:
        return
    of_shape = f" of shape {tuple(shape)}" if shape is not None else ""
    if advice is None:
        advice = "use a smaller input, batch, padding or stride" if shape is not None else "free memory"
    raise MemoryError(f"{where}: {what}{of_shape} needs {int(nbytes)} bytes ({_human(nbytes)}), more than the "
                      f"{int(limit)} bytes ({_human(limit)}) {source} allows; {advice}, or set {ENV} to change "
                      "the limit")


def logical_bytes(values):
    """(bytes, shape of the first, the first) of the arrays among ``values``, counted by their logical size (a
    broadcast view counts as the array it reads as); (0, None, None) without arrays."""
    nbytes, shape, like = 0, None, None
    for value in values:
        size, dtype = getattr(value, "size", None), getattr(value, "dtype", None)
        if isinstance(size, int) and dtype is not None and hasattr(value, "shape"):
            nbytes += size * getattr(dtype, "itemsize", 0)
            shape, like = (value.shape, value) if shape is None else (shape, like)
    return nbytes, shape, like


def guarded(function, copies: int):
    """``function`` checking first that ``copies`` arrays the logical size of its array arguments fit: for a
    function whose output and temporaries follow the size of its inputs (``mg.functional.gelu``, losses),
    where a broadcast view of a few bytes can read as gigabytes. Below SMALL bytes: one comparison."""
    @functools.wraps(function)
    def checked(*args, **kwargs):
        nbytes, shape, like = logical_bytes(args)
        if nbytes * copies >= SMALL or (nbytes and ENV in os.environ):
            check_bytes(nbytes * copies, function.__name__, shape, what="output and temporaries for an input",
                        like=like)
        return function(*args, **kwargs)
    return checked
