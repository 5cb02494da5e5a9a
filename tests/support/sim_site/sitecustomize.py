"""Puts the simulated CuPy in child Python processes too (examples, the CLI, scripts run by tests).

conftest.py adds this folder and tests/ to PYTHONPATH when MINIGRAD_TEST_CUPY=sim; Python imports a
``sitecustomize`` module found on the path at startup.
"""
import os

if os.environ.get("MINIGRAD_TEST_CUPY") == "sim":
    from support import sim_cupy

    sim_cupy.install()
