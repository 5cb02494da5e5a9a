"""Test helpers, imported as ``support.<name>`` (pyproject.toml puts tests/ on pytest's path):
strict_backend (an array type that refuses implicit conversions), zoo_checks and torch_twins
(PyTorch comparisons), onnx_files (ONNX Runtime, hand-built ONNX models), sim_cupy + cuda_host (the
simulated CuPy), and the scripts tests run in child processes (train_script, kill_resume_script,
distributed_worker)."""
