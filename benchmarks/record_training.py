"""Record the `minigrad train` runs README.md quotes: run each, keep its metrics with the machine.

    python benchmarks/record_training.py            # writes benchmarks/results/<date>-train-cpu.json

Runs, one after the other on the full MNIST (the `data` extra): `minigrad train` (the defaults), and
`minigrad train --seed 1` with OPENBLAS_NUM_THREADS=1. Run it on a quiet machine: the training times
are wall-clock. README's table is `minigrad.bench.figures.training_rows` of this file
(tests/test_figures.py checks it is).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from minigrad.bench.runner import machine_info, versions_info

RUNS = [("minigrad train", [], {}),
        ("OPENBLAS_NUM_THREADS=1 minigrad train --seed 1", ["--seed", "1"], {"OPENBLAS_NUM_THREADS": "1"})]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON file (default: benchmarks/results/<date>-train-cpu.json)")
    args = parser.parse_args(argv)
    now = datetime.datetime.now(datetime.timezone.utc)
    record = {"date": now.isoformat(timespec="seconds"), "machine": machine_info(), "versions": versions_info("numpy"),
              "load_average_before": os.getloadavg(), "runs": []}
    for command, flags, env in RUNS:
        with tempfile.TemporaryDirectory() as run_dir:
            out = subprocess.run([sys.executable, "-c", "import sys; from minigrad.cli import main; sys.exit(main())",
                                  "train", "--json", "--progress", "off",
                                  "--out", os.path.join(run_dir, "run"), *flags],
                                 env={**os.environ, **env}, check=True, stdout=subprocess.PIPE, text=True)
        metrics = json.loads(out.stdout.strip().splitlines()[-1])
        for key in ("checkpoint", "history"):
            metrics.pop(key, None)
        record["runs"].append({"command": command, "env": env, "metrics": metrics})
        print(f"{command}: {metrics['test_accuracy']:.4f}, {metrics['train_seconds']:.1f} s", file=sys.stderr)
    record["load_average_after"] = os.getloadavg()
    path = Path(args.out or Path(__file__).parent / "results" / f"{now:%Y-%m-%d}-train-cpu.json")
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
