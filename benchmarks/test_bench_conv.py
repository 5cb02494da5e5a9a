"""Conv2d forward+backward: CIFAR/ImageNet ResNet shapes, 1x1, depthwise 3x3."""
import pytest

from _cases import cases_of, run_case

CASES, SKIPPED = cases_of("conv")


@pytest.mark.skipif(not CASES, reason="; ".join(SKIPPED) or "no cases")
@pytest.mark.parametrize("impl", ["minigrad", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conv(benchmark, case, impl):
    benchmark.group = "conv:" + case.name
    run_case(benchmark, case, impl)
