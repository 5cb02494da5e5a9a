"""Max/avg pooling forward+backward."""
import pytest

from _cases import cases_of, run_case

CASES, SKIPPED = cases_of("pool")


@pytest.mark.skipif(not CASES, reason="; ".join(SKIPPED) or "no cases")
@pytest.mark.parametrize("impl", ["minigrad", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pool(benchmark, case, impl):
    benchmark.group = "pool:" + case.name
    run_case(benchmark, case, impl)
