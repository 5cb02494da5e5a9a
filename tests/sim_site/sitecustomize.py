"""Puts the simulated CuPy in child Python processes too (examples, the CLI, scripts run by tests).

conftest.py adds this folder to PYTHONPATH when MINIGRAD_TEST_CUPY=sim; Python imports a
``sitecustomize`` module found on the path at startup.
"""
import os
import sys

if os.environ.get("MINIGRAD_TEST_CUPY") == "sim":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # tests/
    import sim_cupy

    sim_cupy.install()
