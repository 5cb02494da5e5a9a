"""`minigrad bench` warns when its own measurements are untrustworthy: load average above the core count,
PyTorch timings spreading by more than 30 %, a %-of-peak above 100; and says so in the JSON report.
Measurements are injected: no timing is asserted."""
import argparse
import json

import pytest

from minigrad import bench
from minigrad.bench import runner, trust


def _row(name, torch_s=(1.0, 1.0, 1.0), pct_peak=50.0):
    return {"name": name, "torch_s": list(torch_s), "pct_peak": pct_peak}


def test_steady_measurements_on_an_idle_machine_are_trusted():
    verdict = trust.assess([_row("a", (1.0, 1.05, 0.98, 1.1)), _row("b", pct_peak=None)], cores=2, loads=(0.5, 1.9))
    assert verdict["trustworthy"] and verdict["warnings"] == []
    assert verdict["torch_spread"]["a"] == pytest.approx(trust.spread([1.0, 1.05, 0.98, 1.1]))


@pytest.mark.parametrize("rows, loads, words", [
    ([_row("a")], (0.5, 4.5), "load average 4.5 above the 2 cores"),
    ([_row("a"), _row("conv3x3", (1.0, 1.0, 1.6, 1.0, 2.0))], (), "PyTorch timings spread by more than 30% (conv3x3"),
    ([_row("a", pct_peak=104.0)], (), "above 100% of the measured GEMM peak (a 104%)"),
])
def test_each_sign_of_untrustworthy_measurements_gives_a_warning(rows, loads, words):
    verdict = trust.assess(rows, cores=2, loads=loads)
    assert not verdict["trustworthy"] and len(verdict["warnings"]) == 1
    assert words in verdict["warnings"][0], verdict["warnings"]


def test_spread_is_robust_to_missing_and_single_times():
    assert trust.spread([]) is None and trust.spread([1.0]) is None
    assert trust.spread([1.0, 1.0]) == 0.0


def test_the_report_and_the_output_say_so(tmp_path, capsys, monkeypatch):
    """A quick run with a busy machine and a disturbed peak injected: warnings on stderr, "trust" in the JSON."""
    real_measure = runner.measure

    def measure(*args, **kwargs):
        rows = real_measure(*args, **kwargs)
        for row in rows:
            row["torch_s"] = [1.0, 1.0, 2.0]                # as if PyTorch's times had spread
        return rows
    monkeypatch.setattr(runner, "measure", measure)
    monkeypatch.setattr(runner, "load_average", lambda: 64.0)
    monkeypatch.setattr(runner, "gemm_peak", lambda *a, **k: 1e-6)   # every case then beats the "peak"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    args = parser.parse_args(["--quick", "--cases", "layers", "--repeat", "1", "--pause", "0", "--no-torch",
                              "--json", str(out), "--markdown", str(md)])
    assert bench.run(args) == 0
    report = json.loads(out.read_text())
    verdict = report["trust"]
    assert verdict["trustworthy"] is False and verdict["load_average"] == [64.0, 64.0]
    assert [w.split(" ")[0] for w in verdict["warnings"]] == ["load", "PyTorch", "above"]
    err = capsys.readouterr().err
    assert err.count("minigrad bench: warning: untrustworthy measurements: ") == 3
    assert "**Untrustworthy measurements:** load average 64.0 above" in md.read_text()
