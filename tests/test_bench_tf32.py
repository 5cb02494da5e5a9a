"""The GPU bench compares like with like: PyTorch gets CuPy's TF32 setting (CUPY_TF32), and it is recorded."""
import pytest

from minigrad.bench import cases, runner

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("setting,expected", [(None, False), ("0", False), ("1", True), (" 1 ", True)])
def test_torch_gets_cupys_tf32_setting(monkeypatch, setting, expected):
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if setting is None:
        monkeypatch.delenv("CUPY_TF32", raising=False)
    else:
        monkeypatch.setenv("CUPY_TF32", setting)
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = not expected
        cases.full_fp32(torch)
        assert cases.cupy_tf32() is expected
        assert torch.backends.cudnn.allow_tf32 is expected and torch.backends.cuda.matmul.allow_tf32 is expected
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cupy_results_record_both_settings(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "1")
    pytest.importorskip("cupy", reason="needs CuPy (real or the simulated one: MINIGRAD_TEST_CUPY=sim)")
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        cases.full_fp32(torch)
        info = runner.versions_info("cupy")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    assert info["cupy_tf32"] is True
    assert info["torch_tf32"] == {"cudnn": True, "matmul": True}
