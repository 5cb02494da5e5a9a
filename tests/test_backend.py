"""Backend switch, array-module lookup, mismatch errors and the lazy CuPy import."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend
from support.strict_backend import StrictArray, strict, to_strict


def test_default_backend_is_numpy():
    assert mg.get_backend() == "numpy"
    assert backend.active_module() is np


@pytest.mark.parametrize("alias", ["numpy", "cpu", "NumPy", "np"])
def test_cpu_aliases(alias):
    mg.set_backend(alias)
    assert mg.get_backend() == "numpy"


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown backend 'tpu'.*'numpy'.*'cupy'"):
        mg.set_backend("tpu")


def test_cupy_unavailable_error_says_what_to_install():
    if backend.cupy_available():
        pytest.skip("CuPy and a GPU are available here")
    for name in ("cupy", "cuda"):
        with pytest.raises(mg.BackendUnavailableError) as info:
            mg.set_backend(name)
        message = str(info.value)
        assert 'pip install -e ".[cuda12]"' in message or "no CUDA GPU" in message
    assert mg.get_backend() == "numpy"  # a failed switch leaves the backend as it was


def test_env_var_selects_default_backend():
    code = "import minigrad as mg; print(mg.get_backend())"
    env = dict(os.environ, MINIGRAD_BACKEND="cpu")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    env["MINIGRAD_BACKEND"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "MINIGRAD_BACKEND='bogus'" in bad.stderr


def test_importing_minigrad_never_imports_cupy():
    code = ("import sys, numpy as np, minigrad as mg; import minigrad.nn, minigrad.functional;"
            "mg.nn.Conv2d(1, 1, 3)(np.zeros((1, 1, 4, 4), 'float32')); print('cupy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_TEST_CUPY"}   # no simulated CuPy either
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"


def test_get_array_module_numpy_and_scalars():
    a = np.zeros(3)
    assert backend.get_array_module(a) is np
    assert backend.get_array_module(a, None, 2.0, a) is np
    assert backend.get_array_module() is np  # no arrays: the active backend


def test_get_array_module_registered_type():
    assert backend.get_array_module(to_strict(np.zeros(2))) is strict


def test_mixing_backends_raises_named_error():
    with pytest.raises(mg.BackendMismatchError) as info:
        backend.get_array_module(np.zeros(2), to_strict(np.zeros(2)), names=("input", "weight"))
    message = str(info.value)
    assert "input is a numpy array" in message and "weight is a strict array" in message
    assert isinstance(info.value, TypeError)


def test_layer_with_mixed_backends_fails_loudly():
    conv = mg.nn.Conv2d(1, 2, 3)
    with pytest.raises(mg.BackendMismatchError, match="input is a strict array but weight is a numpy array"):
        conv(to_strict(np.zeros((1, 1, 5, 5), "float32")))


def test_to_backend_roundtrip():
    a = np.arange(4.0)
    assert backend.to_backend(a, "numpy") is a
    b = backend.to_backend(a, "strict")
    assert isinstance(b, StrictArray)
    assert backend.backend_of(b) == "strict"
    with pytest.raises(TypeError, match="expected a NumPy or CuPy array"):
        backend.backend_of([1, 2])


def test_describe_reports_numpy():
    info = backend.describe()
    assert info["numpy"] == np.__version__ and info["active"] == "numpy"
