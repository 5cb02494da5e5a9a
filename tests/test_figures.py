"""One source for the figures: what README.md and docs/benchmarks.md quote is what the recorded results
in benchmarks/results/ say (rendered by minigrad.bench.figures and minigrad bench's own Markdown), so the
text cannot drift from the measurements. Each document names the results file it quotes."""
import json
import re
from pathlib import Path

import pytest

from minigrad.bench.figures import seconds, train_e2e_sentence, training_rows
from minigrad.bench.runner import format_markdown

ROOT = Path(__file__).resolve().parents[1]


def _flat(text: str) -> str:
    """Whitespace (line wrapping) does not matter."""
    return re.sub(r"\s+", " ", text).strip()


def _source(document: str, kind: str) -> dict:
    """The results file the document names (benchmarks/results/<name>.json whose name contains kind)."""
    names = re.findall(r"benchmarks/results/([\w.-]+\.json)", (ROOT / document).read_text())
    names = [name for name in names if kind in name]
    assert names, f"{document} names no benchmarks/results/*{kind}*.json file"
    return json.loads((ROOT / "benchmarks" / "results" / names[0]).read_text())


@pytest.fixture(scope="module")
def bench_report():
    return _source("docs/benchmarks.md", "cpu-2threads")


def test_benchmarks_page_quotes_its_results_file(bench_report):
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    table = format_markdown(bench_report)
    for line in table.splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"
    assert _flat(train_e2e_sentence(bench_report)) in page


def test_benchmarks_before_after_table_uses_the_recorded_after_figures(bench_report):
    page = (ROOT / "docs/benchmarks.md").read_text()
    e2e = bench_report["train_e2e"]
    assert f"**{bench_report['geomean_resnet_floor']:.2f}**" in page
    assert f"**{bench_report['geomean_resnet_conv']:.2f}**" in page
    assert (f"**{e2e['ratio']:.2f}** ({seconds(e2e['minigrad']['train_seconds'])} vs "
            f"{seconds(e2e['torch']['train_seconds'])})") in page


def test_readme_training_table_is_the_recorded_runs():
    readme = (ROOT / "README.md").read_text()
    record = _source("README.md", "train-cpu")
    for row in training_rows(record):
        assert row in readme, f"README.md does not show the recorded run: {row}"
    first = record["runs"][0]["metrics"]
    assert f"({100 * first['test_accuracy']:.2f}% in {first['train_seconds']:.0f} s of training" in _flat(readme)


def test_readme_pytorch_comparison_is_the_recorded_bench_run(bench_report):
    readme = _flat((ROOT / "README.md").read_text())
    e2e = bench_report["train_e2e"]
    assert (f"took {seconds(e2e['torch']['train_seconds'])} ({100 * e2e['torch']['test_accuracy']:.2f}%) in a run "
            f"where minigrad took {seconds(e2e['minigrad']['train_seconds'])}") in readme


def test_reliability_page_quotes_the_recorded_summation_order_cost():
    page = _flat((ROOT / "docs/reliability.md").read_text())
    record = _source("docs/reliability.md", "summation-order")
    cases = record["cases"]
    low = min(case["ratio_p10"] for case in cases.values())
    high = max(case["ratio_p90"] for case in cases.values())
    lenet, resnet = cases["lenet5 (batch 128)"], cases["resnet20 (batch 32)"]
    assert (f"was {lenet['ratio_median']:.3f} for LeNet-5 (batch 128) and {resnet['ratio_median']:.3f} for ResNet-20 "
            f"(batch 32), with 10th-90th percentiles of {low:.2f}-{high:.2f}") in page


def test_benchmarks_page_quotes_the_recorded_conv_step_comparison():
    page = (ROOT / "docs/benchmarks.md").read_text()
    record = _source("docs/benchmarks.md", "conv-step-ab")
    for name, case in record["cases"].items():
        row = f"| {name} | {case['before_ms']:.2f} | {case['after_ms']:.2f} | {case['ratio']:.3f} |"
        assert row in page, f"docs/benchmarks.md does not quote the recorded row: {row}"


@pytest.mark.parametrize("suffix", ["", "-after"])
def test_benchmarks_page_quotes_the_added_layers_results(suffix):
    """The added layers' tables on docs/benchmarks.md (first measurement and after the block kernels) are the
    recorded bench and layer-zoo results."""
    from minigrad.bench.figures import zoo_table
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    layers = json.loads((ROOT / f"benchmarks/results/2026-12-07-cpu-2threads-layers{suffix}.json").read_text())
    for line in format_markdown(layers).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"
    zoo = json.loads((ROOT / f"benchmarks/results/2026-12-07-cpu-2threads-layer-zoo{suffix}.json").read_text())
    for line in zoo_table(zoo).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"


def test_benchmarks_page_quotes_the_model_step_ab():
    """The whole-step A/B table on docs/benchmarks.md is the recorded benchmarks/ab_model_step.py result."""
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    record = json.loads((ROOT / "benchmarks/results/2026-12-07-ab-model-step.json").read_text())
    for name, case in record["cases"].items():
        row = f"| {name} | {case['before_ms']:.2f} | {case['after_ms']:.2f} | {case['ratio']:.3f} |"
        assert row in page, f"docs/benchmarks.md does not quote the recorded row: {row}"


def test_benchmarks_page_quotes_the_depthwise_two_thread_run():
    """The depthwise table on docs/benchmarks.md is the recorded benchmarks/depthwise_ab.py result."""
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    record = json.loads((ROOT / "benchmarks/results/2026-12-07-cpu-2threads-depthwise.json").read_text())
    for r in record["rows"]:
        med, best = r["median_ms"], r["best_ms"]
        row = (f"| {'x'.join(map(str, r['shape']))} | {r['stride']} | {med['new']:.2f} | {med['torch']:.2f} | "
               f"{med['new'] / med['torch']:.2f} | {best['new'] / best['torch']:.2f} |")
        assert row in page, f"docs/benchmarks.md does not quote the recorded row: {row}"


def test_benchmarks_page_quotes_the_lenet_profile():
    """The per-layer LeNet-5 table on docs/benchmarks.md is the recorded benchmarks/lenet_profile.py result."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("lenet_profile", ROOT / "benchmarks/lenet_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    record = json.loads((ROOT / "benchmarks/results/2026-12-07-cpu-2threads-lenet-profile.json").read_text())
    for line in module.markdown(record).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"


def _benchmark_module(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_page_quotes_the_compiled_kernels_runs():
    """The compiled-kernels section of docs/benchmarks.md: the recorded benchmarks/compiled_ab.py run, both paths'
    bench runs, both paths' end-to-end training and the LeNet-5 profile with the compiled kernels."""
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    results = ROOT / "benchmarks/results"
    record = json.loads((results / "2026-12-07-cpu-2threads-compiled.json").read_text())
    for line in _benchmark_module("compiled_ab").markdown(record).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"
    for path in ("numpy-path", "compiled"):
        bench = json.loads((results / f"2026-12-07-cpu-2threads-bench-{path}.json").read_text())
        for line in format_markdown(bench).splitlines():
            assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"
        train = json.loads((results / f"2026-12-07-cpu-2threads-train-{path}.json").read_text())
        assert train["versions"]["compiled_kernels"] == (path == "compiled")
        assert _flat(train_e2e_sentence(train)) in page
    profile = json.loads((results / "2026-12-07-cpu-2threads-lenet-profile-compiled.json").read_text())
    for line in _benchmark_module("lenet_profile").markdown(profile).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"


def test_benchmarks_page_quotes_the_thread_scaling_run():
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    record = json.loads((ROOT / "benchmarks/results/2026-12-07-cpu-thread-scaling.json").read_text())
    for line in _benchmark_module("thread_scaling").markdown(record).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"


def test_benchmarks_page_quotes_the_fit_overhead_run():
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    record = json.loads((ROOT / "benchmarks/results/2026-12-07-cpu-2threads-fit-overhead.json").read_text())
    for line in _benchmark_module("fit_overhead").markdown(record).splitlines():
        assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"


def test_benchmarks_page_quotes_the_fused_pair_runs():
    """The section on ReLU after max pooling: the before/after steps, the three-arm run, both paths' training, the
    thread scaling and the layer-by-layer profiles of LeNet-5 and ResNet-20, all from their recorded JSON."""
    page = _flat((ROOT / "docs/benchmarks.md").read_text())
    results = ROOT / "benchmarks/results"
    record = lambda name: json.loads((results / name).read_text())   # noqa: E731
    tables = [("ab_model_step", f"2026-12-07-ab-fusion-{name}.json")
              for name in ("lenet-numpy-path", "lenet-compiled", "b64-compiled")]
    tables += [("ab_conv_step", "2026-12-07-ab-conv-columns-compiled.json"),
               ("compiled_ab", "2026-12-07-cpu-2threads-compiled-fused.json"),
               ("thread_scaling", "2026-12-07-cpu-thread-scaling-fused.json")]
    tables += [("lenet_profile", f"2026-12-07-cpu-2threads-{name}.json")
               for name in ("lenet-profile-fused-compiled", "lenet-profile-fused-numpy-path", "resnet20-profile-compiled")]
    for module, name in tables:
        for line in _benchmark_module(module).markdown(record(name)).splitlines():
            assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line of {name}: {line}"
    for name in ("compiled", "compiled-second", "numpy-path"):
        train = record(f"2026-12-07-cpu-2threads-train-fused-{name}.json")
        assert train["versions"]["compiled_kernels"] == (name != "numpy-path")
        assert _flat(train_e2e_sentence(train)) in page
    for name in ("lenet-compiled", "lenet-numpy-path"):
        assert record(f"2026-12-07-ab-fusion-{name}.json")["versions"]["compiled_kernels"] == (name == "lenet-compiled")
    for name in ("compiled", "numpy-path"):
        bench = record(f"2026-12-07-cpu-2threads-bench-conv-final-{name}.json")
        assert bench["versions"]["compiled_kernels"] == (name == "compiled")
        for line in format_markdown(bench).splitlines():
            assert _flat(line) in page, f"docs/benchmarks.md does not quote the recorded line: {line}"
