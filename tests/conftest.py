"""Shared fixtures: a seeded generator, PyTorch as the reference (double precision by default)."""
import os
import sys

import numpy as np
import pytest

import minigrad as mg

# Test helpers (strict_backend, ...) import as top-level modules from any test folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


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
