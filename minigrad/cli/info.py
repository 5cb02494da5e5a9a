"""``minigrad info``: versions, backends, GPU, BLAS, threads and the compiled kernels."""
from __future__ import annotations

import json
import os

__all__ = ["collect_info", "cmd_info"]


def _dist_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect_info() -> dict:
    """Versions, backends, GPU, BLAS and threads (imports CuPy when installed, never torch)."""
    import platform

    import numpy

    import minigrad as mg
    from ..data import mnist_zarr_path

    cupy_dist = next((d for d in ("cupy-cuda13x", "cupy-cuda12x", "cupy") if _dist_version(d)), None)
    info = {
        "minigrad": mg.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "numpy": numpy.__version__, "torch": _dist_version("torch"),
        "cupy": f"{_dist_version(cupy_dist)} ({cupy_dist})" if cupy_dist else None,
        "tqdm": _dist_version("tqdm"), "zarr": _dist_version("zarr"), "matplotlib": _dist_version("matplotlib"),
        "mnist": mnist_zarr_path(),
    }
    backends = mg.backend.describe()
    info["active_backend"] = backends["active"]
    info["backends"] = ["numpy"] + (["cupy"] if backends.get("cupy") else [])
    info["gpu"] = backends.get("gpu")
    if info["cupy"] is None and backends.get("cupy"):   # importable without package metadata (a source build)
        info["cupy"] = backends["cupy"]
    if not backends.get("cupy"):
        info["cupy_unavailable"] = backends.get("cupy_unavailable")
    info["cpu_count"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    info["minigrad_threads"] = mg.get_num_threads()
    info["numba"] = _dist_version("numba")
    info["conv_algorithm"] = mg.get_conv_algorithm()
    from ..kernels import compiled
    try:
        info["compiled_kernels"] = compiled.active()
    except ImportError:                       # MINIGRAD_CONV=compiled where Numba cannot be loaded
        info["compiled_kernels"] = False
    info["blas"] = _numpy_blas()
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                          "threading_layer", "architecture")}
                               for pool in threadpool_info()]
    except ImportError:
        info["threadpools"] = None
    info["thread_env"] = {k: os.environ[k] for k in ("MINIGRAD_NUM_THREADS", "OMP_NUM_THREADS",
                                                      "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                          if k in os.environ}
    return info


def _numpy_blas():
    import numpy
    try:
        config = numpy.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return {k: blas.get(k) for k in ("name", "version", "openblas configuration") if blas.get(k)}
    except Exception:  # older NumPy without mode="dicts": not worth failing `minigrad info` for
        return None


def _compiled_row(info) -> str:
    if not info["numba"]:
        return 'off: Numba not installed (pip install -e ".[compiled]" in the minigrad checkout)'
    if info["compiled_kernels"]:
        return f"on (Numba {info['numba']}; MINIGRAD_CONV=numpy switches them off)"
    if info["conv_algorithm"] in ("numpy", "reference"):
        return f"off: MINIGRAD_CONV / mg.set_conv_algorithm is {info['conv_algorithm']!r} (Numba {info['numba']})"
    return f"off: Numba {info['numba']} is installed but minigrad's loops could not be loaded"


def cmd_info(args) -> int:
    info = collect_info()
    if args.json:
        print(json.dumps(info))                 # one line, as evaluate --json
        return 0
    rows = [("minigrad", info["minigrad"]), ("python", f"{info['python']} on {info['platform']}"),
            ("numpy", info["numpy"]), ("torch", info["torch"] or "not installed (only needed by the tests)"),
            ("cupy", info["cupy"] or 'not installed (GPU: pip install -e ".[cuda12]" or -e ".[cuda13]" '
                                     'in the minigrad checkout)'),
            ("backends", ", ".join(info["backends"]) + f" (active: {info['active_backend']})"),
            ("GPU", info["gpu"] or ("none (CuPy not installed)" if not info["cupy"] else
                                     f"none usable: {info.get('cupy_unavailable')}")),
            ("MNIST", info["mnist"] or 'not installed: pip install -e ".[data]" (from the minigrad checkout)'),
            ("BLAS", ", ".join(f"{k} {v}" for k, v in (info["blas"] or {}).items()) or "unknown"),
            ("CPUs", f"{info['cpu_count']} ({info.get('cpus_usable', '?')} usable)"),
            ("threads (minigrad)", f"{info['minigrad_threads']} (CPU kernels; mg.set_num_threads or "
                                   "MINIGRAD_NUM_THREADS)"),
            ("compiled kernels", _compiled_row(info))]
    if info["threadpools"]:
        for pool in info["threadpools"]:
            rows.append((f"threads ({pool['internal_api']})",
                         f"{pool['num_threads']} [{pool['user_api']} {pool['version']}, {pool['architecture']}]"))
    else:
        rows.append(("threads", "unknown (pip install threadpoolctl to see BLAS/OpenMP thread pools)"))
    if info["thread_env"]:
        rows.append(("thread env", " ".join(f"{k}={v}" for k, v in info["thread_env"].items())))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0
