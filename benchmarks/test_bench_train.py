"""Full training steps: LeNet-5 and MLP 784-256-10 (forward, cross-entropy, backward, SGD)."""
import pytest

from _cases import cases_of, run_case

CASES, SKIPPED = cases_of("train")


@pytest.mark.skipif(not CASES, reason="; ".join(SKIPPED) or "no cases")
@pytest.mark.parametrize("impl", ["minigrad", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_train(benchmark, case, impl):
    benchmark.group = "train:" + case.name
    run_case(benchmark, case, impl)
