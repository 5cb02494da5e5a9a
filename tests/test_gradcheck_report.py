"""mg.gradcheck(..., report=True) and `minigrad gradcheck --model NAME`: a gradient check a person can read."""
import io
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg


class ScaledWrongly(mg.nn.Layer):
    """y = x * w, whose backward forgets x in the weight gradient (a deliberate bug)."""

    def __init__(self):
        super().__init__()
        self.w = mg.nn.Parameter(np.full((3,), 1.5))

    def forward(self, x):
        self._cache = x
        return x * self.w.data

    def backward(self, grad_out):
        x = self.take_cache()
        self.w.accumulate(grad_out.sum(axis=0), self.label)      # wrong: should be (grad_out * x).sum(axis=0)
        return grad_out * self.w.data


def _report(layer, x, **options):
    out = io.StringIO()
    result = mg.gradcheck(layer, x, report=True, file=out, **options)
    return result, out.getvalue().splitlines()


def test_a_correct_layer_gets_a_table_and_a_plain_pass():
    result, lines = _report(mg.nn.Conv2d(3, 4, 3, padding=1), np.random.default_rng(0).standard_normal((2, 3, 5, 5)))
    assert result and result.passed
    assert lines[0].startswith("gradcheck(Conv2d): central differences in float64, eps 1e-06")
    assert lines[1].split()[:3] == ["gradient", "of", "shape"]
    rows = {line.split("  ")[0].strip(): line for line in lines[2:5]}
    assert set(rows) == {"input 0", "parameter 'weight'", "parameter 'bias'"}
    assert all(line.rstrip().endswith("PASS") for line in rows.values())
    assert "(2, 3, 5, 5)      150" in rows["input 0"]                  # shape, then every entry checked
    assert any("below 1e-6 a correct gradient" in line for line in lines)
    assert any("float32 cannot do better than about 1e-3" in line for line in lines)
    assert lines[-1] == "PASS: every gradient agrees with finite differences."
    for row in result.rows:
        assert row.max_relative_error < 1e-6 and row.max_abs_error < 1e-8


def test_a_broken_layer_is_reported_as_failing_with_the_parameter_named():
    x = np.random.default_rng(1).standard_normal((4, 3)) + 2.0
    result, lines = _report(ScaledWrongly(), x)
    assert not result
    failing = [line for line in lines if line.rstrip().endswith("FAIL")]
    assert len(failing) == 1 and failing[0].startswith("parameter 'w'")
    assert lines[-1] == "FAIL: the gradient of parameter 'w' disagrees with finite differences."
    with pytest.raises(mg.GradcheckError, match=r"gradient of parameter 'w' disagrees with finite differences"):
        mg.gradcheck(ScaledWrongly(), x)                                 # without report: raises, as before


def test_entries_spot_checks_a_network():
    mg.manual_seed(0)
    result, lines = _report(mg.models.lenet5(), np.random.default_rng(0).standard_normal((2, 1, 28, 28)), entries=4)
    assert result
    checked = {row.what: len(row.indices) for row in result.rows}
    assert checked["input 0"] == 4 and checked["parameter '7.weight'"] == 4 and checked["parameter '0.bias'"] == 4
    assert "4 random entries per array at most" in lines[0]


def test_a_kink_within_eps_is_told_apart_from_a_wrong_gradient():
    """ReLU at x = 3e-7: a step of 1e-6 crosses the kink, a step of 1e-8 does not; the gradient is right."""
    x = np.array([[3e-7, -0.5, 0.7]])
    result, lines = _report(mg.nn.ReLU(), x)
    assert result and result.rows[0].kinks == 1
    assert lines[2].rstrip().endswith("PASS*")
    assert any(line.startswith("* 1 entry disagreed at eps 1e-06 and agreed at eps 1e-08") for line in lines)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "minigrad", "gradcheck", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("model", ["lenet5", "mlp", "vgg_small"])
def test_minigrad_gradcheck_passes_for_the_built_in_models(model):
    done = _cli("--model", model, "--entries", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"minigrad gradcheck --model {model}: a random batch of 2, 3 random entries per array"
    assert done.stdout.rstrip().endswith("PASS: every gradient agrees with finite differences.")


def test_minigrad_gradcheck_refuses_bad_arguments_in_one_line():
    done = _cli("--model", "lenet6")
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = _cli("--entries", "0")
    assert done.returncode == 2 and "--entries" in done.stderr and len(done.stderr.strip().splitlines()) == 1
