"""Shared fixtures: a seeded generator, PyTorch as the reference (double precision by default)."""
import os
import sys

import numpy as np
import pytest

import minigrad as mg

# MINIGRAD_TEST_CUPY=sim: the cupy cases run on the simulated CuPy (tests/support/sim_cupy.py), on the CPU.
SIMULATED_CUPY = os.environ.get("MINIGRAD_TEST_CUPY") == "sim"
if SIMULATED_CUPY:
    from support import sim_cupy
    sim_cupy.install()
    _tests = os.path.dirname(os.path.abspath(__file__))
    _site = os.path.join(_tests, "support", "sim_site")   # child processes too: sitecustomize imports support
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_site, _tests, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture
def conv_algorithm():
    """mg.set_conv_algorithm for one test; the setting before it is restored afterwards."""
    before = mg.get_conv_algorithm()
    yield mg.set_conv_algorithm
    mg.set_conv_algorithm(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed_and_backend():
    mg.manual_seed(0)
    previous = mg.get_backend()
    yield
    mg.set_backend(previous)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU (skipped otherwise)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def _cupy_skip_reason():
    from minigrad import backend
    try:
        backend.module_for("cupy")
        return None
    except mg.BackendUnavailableError as exc:
        return str(exc).split(". Check")[0].split(". Install")[0]


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """Run a test once per backend; the cupy case skips (with the reason) without CuPy or a GPU.

    Sets the active backend, so new layers and ``mg.backend.active_module()`` use it.
    """
    if request.param == "cupy":
        reason = _cupy_skip_reason()
        if reason:
            pytest.skip(f"cupy backend unavailable: {reason}")
    mg.set_backend(request.param)
    return request.param


@pytest.fixture
def xp(backend):
    """The array module of the parametrized backend."""
    return mg.backend.active_module()
