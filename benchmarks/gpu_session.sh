#!/usr/bin/env bash
# The GPU measurements in one run of under 10 minutes, on a machine with an NVIDIA GPU and CuPy: the first
# thing to run when a GPU is available.
#
# Beforehand, on a machine with the data extra:
#               python -c "import minigrad as mg; mg.data.export_idx('.gpu-data/mnist')"
# Then, from a copy of the tree that includes .gpu-data:
#               bash benchmarks/gpu_session.sh
#
# The project runs from the tree (PYTHONPATH=.), MNIST from the IDX files (no zarr needed). CI already runs the
# CPU suite and compiles every CUDA kernel with NVRTC, so here only what needs the GPU runs:
#   1. the cupy cases of the test suite (-m gpu: parity with NumPy, fused kernels, float16 refusal, the loader's
#      pinned copies, warm-up, NCCL refusal with 2 processes on 1 GPU),
#   2. minigrad bench --backend cupy (PyTorch on CUDA in the same process, with CuPy's TF32 setting: CUPY_TF32 is
#      set to 0 here, so both run full float32; the JSON records cupy_tf32 and PyTorch's two allow_tf32 flags),
#   3. minigrad train --backend cupy (LeNet-5, 4 epochs of MNIST),
# while nvidia-smi samples the memory in use. It prints ONE summary block (tests passed/failed, each conv case's
# time over PyTorch's, MNIST seconds per epoch and accuracy, kernel compile time, peak GPU memory) and writes it
# as JSON to benchmarks/results/<date>-gpu.json and to $OUT (./gpu-out elsewhere), with summary.txt and
# gpu-raw-outputs.tar.gz (nvidia-smi.txt, info.txt, pytest.txt/.xml, bench-gpu.json/.md/.txt, train.json/.txt,
# history.jsonl, memory.csv).
set -u
OUT=${OUT:-gpu-out}
WORK=$(mktemp -d)
mkdir -p "$OUT" benchmarks/results
export PYTHONPATH=. MINIGRAD_TEST_MNIST_ROOT=.gpu-data/mnist CUPY_TF32=0
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s)"; }
{
step "device"
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1; head -12 "$WORK/nvidia-smi.txt"
nvidia-smi --query-gpu=name --format=csv,noheader > "$WORK/gpu.txt" 2>/dev/null
python3 -m minigrad.cli info > "$WORK/info.txt" 2>&1; cat "$WORK/info.txt"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$WORK/memory.csv" 2>/dev/null &
sampler=$!

step "cupy cases of the test suite (-m gpu)"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests --junitxml="$WORK/pytest.xml" \
  > "$WORK/pytest.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|error" "$WORK/pytest.txt" | tail -3
grep -E "^FAILED|^ERROR" "$WORK/pytest.txt" | head -30

step "bench --backend cupy (PyTorch on CUDA, TF32 off for both, in the same process)"
timeout 150 python3 -m minigrad.cli bench --backend cupy --repeat 3 --json "$WORK/bench-gpu.json" \
  --markdown "$WORK/bench-gpu.md" > "$WORK/bench-gpu.txt" 2>&1
echo "bench exit $?"; grep -E "compiled|error" "$WORK/bench-gpu.txt" | head -5

step "train --backend cupy (LeNet-5, 4 epochs of MNIST)"
timeout 120 python3 -m minigrad.cli train --backend cupy --data-root .gpu-data/mnist --no-progress --json \
  --out "$WORK/train-run" > "$WORK/train.json" 2> "$WORK/train.txt"
echo "train exit $?"; tail -3 "$WORK/train.txt"
cp "$WORK/train-run/history.jsonl" "$WORK/history.jsonl" 2>/dev/null
kill "$sampler" 2>/dev/null

step "summary"
python3 - "$WORK" "$OUT" <<'EOF'
import datetime, json, os, sys
import xml.etree.ElementTree as ET

work, out = sys.argv[1], sys.argv[2]


def load(name, read=json.load):
    try:
        with open(os.path.join(work, name)) as f:
            return read(f)
    except (OSError, ValueError, ET.ParseError):
        return None


summary = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "gpu": (load("gpu.txt", lambda f: f.read().strip()) or None)}
xml = load("pytest.xml", ET.parse)
if xml is not None:
    suite = xml.getroot().find("testsuite") if xml.getroot().tag == "testsuites" else xml.getroot()
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_names"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                              if c.find("failure") is not None or c.find("error") is not None]
    summary["tests"] = counts
bench = load("bench-gpu.json")
if bench is not None:
    summary["compile_seconds_bench"] = bench.get("compile_seconds")
    summary["conv_ratio_to_torch"] = {r["name"]: r.get("ratio") for r in bench.get("cases", [])}
    summary["geomean_resnet_conv"] = bench.get("geomean_resnet_conv")
    versions = bench.get("versions") or {}
    summary["tf32"] = {"cupy": versions.get("cupy_tf32"), "torch": versions.get("torch_tf32")}
train = load("train.json")
history = load("history.jsonl", lambda f: [json.loads(line) for line in f if line.strip()]) or []
epochs = [r for r in history if r.get("type") == "epoch"]
if train is not None:
    summary["mnist"] = {"test_accuracy": train.get("test_accuracy"), "epochs": train.get("epochs"),
                        "seconds_per_epoch": [r.get("seconds") for r in epochs],
                        "images_per_s": train.get("images_per_s"), "compile_seconds": train.get("compile_seconds")}
memory = load("memory.csv", lambda f: [int(x) for x in f.read().split() if x.strip().isdigit()])
summary["peak_gpu_memory_mib"] = max(memory) if memory else None

print("=" * 72)
print(f"GPU session {summary['date']}  {summary.get('gpu') or ''}")
t = summary.get("tests")
print(f"tests (-m gpu): {t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
      if t else "tests: no report")
for name in (t or {}).get("failed_names", [])[:20]:
    print(f"  FAILED {name}")
for name, ratio in (summary.get("conv_ratio_to_torch") or {}).items():
    print(f"  {name:<40} minigrad/PyTorch {ratio:.2f}" if ratio else f"  {name:<40} (no PyTorch time)")
if summary.get("tf32"):
    print(f"  TF32: CuPy matmuls {summary['tf32']['cupy']}, PyTorch {summary['tf32']['torch']}")
if summary.get("geomean_resnet_conv"):
    print(f"  ResNet conv shapes, geometric mean of minigrad/PyTorch: {summary['geomean_resnet_conv']:.2f}")
m = summary.get("mnist")
if m:
    seconds = ", ".join(f"{s:.1f}" for s in m["seconds_per_epoch"] if s is not None)
    print(f"MNIST LeNet-5: test accuracy {m['test_accuracy']}, seconds per epoch [{seconds}], "
          f"kernel compile {m['compile_seconds']} s (not in the epochs)")
else:
    print("MNIST: no result")
print(f"peak GPU memory in use: {summary['peak_gpu_memory_mib']} MiB (nvidia-smi, every 250 ms)")
print("=" * 72)
name = f"{summary['date'][:10]}-gpu.json"
for folder in ("benchmarks/results", out):
    with open(os.path.join(folder, name), "w") as f:
        json.dump(summary, f, indent=1)
print(f"wrote benchmarks/results/{name} and {out}/{name}")
EOF
step "done"
} 2>&1 | tee "$OUT/summary.txt"
rm -rf "$WORK/train-run"
tar -czf "$OUT/gpu-raw-outputs.tar.gz" -C "$WORK" .
