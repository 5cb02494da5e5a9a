"""The runtime every other package stands on: where arrays live and what the process may use.

- ``backend``: the array-module switch (``set_backend("numpy" | "cupy")``, ``get_array_module``,
  ``to_backend``), the one place CuPy is recognised;
- ``threads``: the CPU kernels' thread pool (``set_num_threads``);
- ``memory``: the memory guard (``check_bytes`` refuses an allocation the machine or cgroup cannot give);
- ``random``: the global generator behind ``mg.manual_seed``;
- ``checks``: argument and shape/dtype/backend checks with clear messages (for custom layers too);
- ``settings``: the MINIGRAD_* environment variables, parsed in one place (``check_environment``, ``SettingError``);
- ``optional``: optional dependencies imported on first use, with the extra that installs them.

Nothing here imports another minigrad package.
"""
from . import backend, checks, memory, optional, random, settings, threads
from .backend import (BackendMismatchError, BackendUnavailableError, backend_of, get_array_module, get_backend,
                      set_backend, to_backend)
from .random import manual_seed
from .settings import SettingError, check_environment
from .threads import get_num_threads, set_num_threads

settings.register(memory.ENV, memory.check_setting, memory.MemorySettingError)

__all__ = ["backend", "checks", "memory", "optional", "random", "settings", "threads", "SettingError",
           "check_environment", "BackendMismatchError",
           "BackendUnavailableError", "backend_of", "get_array_module", "get_backend", "set_backend", "to_backend",
           "manual_seed", "get_num_threads", "set_num_threads"]
