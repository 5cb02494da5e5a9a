"""`minigrad bench`: the options work and the output is well formed (no timing is asserted)."""
import argparse
import json

import pytest

from minigrad import bench
from minigrad.bench.cases import GROUPS, build_cases


def _args(*argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quick_run_writes_json_and_markdown(tmp_path, capsys):
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    status = bench.run(_args("--quick", "--cases", "pool", "--repeat", "1", "--pause", "0", "--no-torch",
                             "--json", str(out), "--markdown", str(md)))
    assert status == 0
    report = json.loads(out.read_text())
    assert report["gemm_peak_gflops"] > 0 and report["quick"] is True
    assert {c["name"] for c in report["cases"]} == {"maxpool2", "maxpool3s2", "avgpool2", "maxpool2-lenet"}
    for case in report["cases"]:
        assert case["minigrad_ms"] > 0 and case["torch_ms"] is None and case["extra_mib"] >= 0
    assert "| pool | maxpool2 |" in md.read_text()
    assert "GEMM peak" in capsys.readouterr().out


def test_conv_cases_report_flops_and_ratio_with_torch(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    assert bench.run(_args("--quick", "--cases", "conv", "--repeat", "1", "--pause", "0", "--json", str(out))) == 0
    report = json.loads(out.read_text())
    cases = report["cases"]
    assert len(cases) == 10
    for case in cases:
        assert case["ratio"] > 0 and case["gflops"] > 0 and 0 < case["pct_peak"]
        if "depthwise" in case["name"]:        # no GEMM design to bound it
            assert case["floor_ms"] is None and case["floor_ratio"] is None
        else:
            assert case["floor_ms"] > 0 and case["floor_ratio"] == pytest.approx(case["minigrad_ms"] / case["floor_ms"])
    assert report["geomean_resnet_floor"] > 0 and report["geomean_floor_vs_torch"] > 0


def test_floor_is_the_three_unfold_gemms():
    """The floor step computes the three products of the exact unfold shapes."""
    from minigrad.bench.cases import conv_floor
    step = conv_floor(n=2, c=3, o=4, length=5, taps=9)
    y, dw, dcols = step()
    m, k = 2 * 5, 3 * 9
    assert {y.shape, dw.shape, dcols.shape} <= {(m, 4), (4, m), (k, 4), (4, k), (m, k), (k, m)}
    assert y.size == m * 4 and dw.size == k * 4 and dcols.size == m * k


def test_train_defaults_are_minigrad_trains():
    from minigrad import cli
    from minigrad.bench.training import TRAIN_DEFAULTS
    for key in ("model", "epochs", "batch_size", "optimizer", "scheduler", "seed"):
        assert TRAIN_DEFAULTS[key] == cli.DEFAULTS[key]
    assert TRAIN_DEFAULTS["lr"] == cli.DEFAULT_LR[cli.DEFAULTS["optimizer"]]


def test_end_to_end_training_reports_both_libraries():
    pytest.importorskip("torch")
    pytest.importorskip("zarr")
    from minigrad.bench.training import format_training, run_training
    results = run_training(quick=True, pause=0, limit_train=512, limit_test=256)
    assert results["config"]["epochs"] == 1 and results["train_images"] == 512 and results["test_images"] == 256
    for side in ("minigrad", "torch"):
        r = results[side]
        assert r["train_seconds"] > 0 and r["images_per_s"] > 0 and 0.0 <= r["test_accuracy"] <= 1.0
    assert results["ratio"] == pytest.approx(results["minigrad"]["train_seconds"] / results["torch"]["train_seconds"])
    assert "training time minigrad / PyTorch" in format_training(results)


def test_train_flag_alone_runs_no_case_group(tmp_path, monkeypatch):
    from minigrad.bench import training
    monkeypatch.setattr(training, "run_training", lambda **kw: {"config": {"epochs": 1, "lr": 0.004, "batch_size": 128},
                                                                 "train_images": 1, "test_images": 1, "minigrad": {
                                                                     "train_seconds": 1.0, "images_per_s": 1.0,
                                                                     "test_accuracy": 0.5}})
    out = tmp_path / "r.json"
    assert bench.run(_args("--quick", "--train", "--no-torch", "--json", str(out))) == 0
    report = json.loads(out.read_text())
    assert report["cases"] == [] and report["train_e2e"]["minigrad"]["test_accuracy"] == 0.5


def test_every_group_builds(capsys):
    import numpy as np
    cases, skipped = build_cases(GROUPS, True, np, "numpy")
    assert {c.group for c in cases} | {"train"} >= set(GROUPS)
    for case in cases:
        case.minigrad()()          # one step of every case runs


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"group": "conv", "name": "a", "ratio": 0.9}, {"group": "pool", "name": "b", "ratio": 1.2}]
    bench.plot_ratios(rows, str(tmp_path / "p.png"), "title")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cupy_backend_fails_clearly_without_a_gpu(capsys):
    from minigrad.backend import cupy_available
    if cupy_available():
        pytest.skip("a GPU is present")
    assert bench.run(_args("--backend", "cupy", "--quick")) == 2
    err = capsys.readouterr().err
    assert "cupy" in err.lower() and "install" in err.lower()  # not installed, or installed without a GPU


def test_unknown_case_group(capsys):
    assert bench.run(_args("--cases", "conv,nope")) == 2
    assert "unknown case group" in capsys.readouterr().err


@pytest.mark.gpu
def test_cupy_run_reports_every_case(tmp_path):
    from minigrad.backend import cupy_available
    if not cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    out = tmp_path / "r.json"
    assert bench.run(_args("--backend", "cupy", "--quick", "--cases", "conv,train", "--repeat", "1",
                           "--pause", "0", "--json", str(out))) == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "cupy" and len(report["cases"]) == 12
    for case in report["cases"]:
        assert case["minigrad_ms"] > 0
