"""Single layers forward+backward: Linear, ReLU, BatchNorm2d, GroupNorm, Upsample, a MobileNetV2 block."""
import pytest

from _cases import cases_of, run_case

CASES, SKIPPED = cases_of("layers")


@pytest.mark.skipif(not CASES, reason="; ".join(SKIPPED) or "no cases")
@pytest.mark.parametrize("impl", ["minigrad", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layers(benchmark, case, impl):
    benchmark.group = "layers:" + case.name
    run_case(benchmark, case, impl)
