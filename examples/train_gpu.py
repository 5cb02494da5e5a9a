"""The Graph example of train_graph.py, switched to the GPU with one flag (--backend cupy).

    python examples/train_gpu.py                # = python examples/train_graph.py --backend cupy
    python examples/train_gpu.py --epochs 3     # other flags pass through

Needs an NVIDIA GPU and CuPy: pip install -e ".[data,cuda12]" (or cuda13). On a machine
without them it says so and exits with status 1; nothing else changes between CPU and GPU.
"""
import os
import sys

import minigrad as mg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_graph  # noqa: E402  (the same script, imported)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        mg.set_backend("cupy")
    except mg.BackendUnavailableError as exc:
        print("No GPU available: this example runs minigrad on CUDA through CuPy, and this machine cannot.\n"
              f"  reason: {exc}\n"
              "  on the CPU, run the same script instead: python examples/train_graph.py", file=sys.stderr)
        return 1
    print(f"GPU: {mg.backend.describe().get('gpu')}")
    train_graph.main(["--backend", "cupy", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main())
