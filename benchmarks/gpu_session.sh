#!/usr/bin/env bash
# Everything the GPU issue asks of a lent GPU machine, in one call (its device time is short).
#
# Here, once:   python -c "import minigrad as mg; mg.data.export_idx('.gpu-data/mnist')"
# Device tool:  run command="bash benchmarks/gpu_session.sh" carry=[".gpu-data"] timeout_s=590
#
# On the device the project runs from the carried tree (PYTHONPATH=.), MNIST from the IDX files
# (the device has no zarr). Writes to $OUT (the device tool's folder; ./gpu-out elsewhere):
#   nvidia-smi.txt, info.txt, pytest.txt (the whole suite, cupy cases included),
#   bench-gpu.json/.md/.png (minigrad bench --backend cupy, PyTorch CUDA/cuDNN in the same run),
#   train.json + train.txt (minigrad train --backend cupy, 4 epochs of MNIST).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH=. MINIGRAD_TEST_MNIST_ROOT=.gpu-data/mnist
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s)"; }

step "device"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; head -15 "$OUT/nvidia-smi.txt"
python3 -m minigrad.cli info > "$OUT/info.txt" 2>&1; cat "$OUT/info.txt"

step "test suite"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs > "$OUT/pytest.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|error" "$OUT/pytest.txt" | tail -3
grep -E "^FAILED|^ERROR" "$OUT/pytest.txt" | head -30

step "bench --backend cupy"
timeout 150 python3 -m minigrad.cli bench --backend cupy --json "$OUT/bench-gpu.json" \
  --markdown "$OUT/bench-gpu.md" --plot "$OUT/bench-gpu.png" > "$OUT/bench.txt" 2>&1
echo "bench exit $?"; tail -45 "$OUT/bench.txt"

step "train --backend cupy"
timeout 150 python3 -m minigrad.cli train --backend cupy --data-root .gpu-data/mnist --no-progress --json \
  --out "$OUT/train-run" > "$OUT/train.json" 2> "$OUT/train.txt"
echo "train exit $?"; tail -8 "$OUT/train.txt"; cat "$OUT/train.json"
rm -f "$OUT"/train-run/*.npz   # checkpoints are not needed back
step "done"
