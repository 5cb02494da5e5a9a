#!/usr/bin/env bash
# The GPU measurements in one run of about 5 minutes, on a machine with an NVIDIA GPU and CuPy.
#
# Beforehand, on a machine with the data extra:
#               python -c "import minigrad as mg; mg.data.export_idx('.gpu-data/mnist')"
# Then, from a copy of the tree that includes .gpu-data:
#               bash benchmarks/gpu_session.sh
#
# The project runs from the tree (PYTHONPATH=.), MNIST from the IDX files (no zarr needed). CI already runs the CPU suite, so only the cupy cases run here.
# Returns two files in $OUT (./gpu-out elsewhere): summary.txt and gpu-session.tar.gz with
# nvidia-smi.txt, info.txt, pytest.txt, bench-gpu.json/.md/.txt, train.json/.txt.
set -u
OUT=${OUT:-gpu-out}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONPATH=. MINIGRAD_TEST_MNIST_ROOT=.gpu-data/mnist
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s)"; }
{
step "device"
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1; head -12 "$WORK/nvidia-smi.txt"
python3 -m minigrad.cli info > "$WORK/info.txt" 2>&1; cat "$WORK/info.txt"

step "cupy cases of the test suite (-m gpu)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests > "$WORK/pytest.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|error" "$WORK/pytest.txt" | tail -3
grep -E "^FAILED|^ERROR" "$WORK/pytest.txt" | head -30

step "bench --backend cupy (PyTorch on CUDA, TF32 off, in the same process)"
timeout 120 python3 -m minigrad.cli bench --backend cupy --repeat 3 --json "$WORK/bench-gpu.json" \
  --markdown "$WORK/bench-gpu.md" > "$WORK/bench-gpu.txt" 2>&1
echo "bench exit $?"; grep -v "round " "$WORK/bench-gpu.txt" | tail -40

step "train --backend cupy (LeNet-5, 4 epochs of MNIST)"
timeout 120 python3 -m minigrad.cli train --backend cupy --data-root .gpu-data/mnist --no-progress --json \
  --out "$WORK/train-run" > "$WORK/train.json" 2> "$WORK/train.txt"
echo "train exit $?"; tail -7 "$WORK/train.txt"; cat "$WORK/train.json"
step "done"
} 2>&1 | tee "$OUT/summary.txt"
rm -rf "$WORK/train-run"
tar -czf "$OUT/gpu-session.tar.gz" -C "$WORK" .
