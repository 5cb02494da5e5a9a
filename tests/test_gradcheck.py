"""mg.gradcheck accepts correct gradients and catches wrong ones, naming the culprit."""
import numpy as np
import pytest

import minigrad as mg


class Square(mg.nn.Layer):
    """y = x^2 * scale; correct when wrong=False, off by a factor 2 in dx when wrong=True."""

    def __init__(self, wrong=False, wrong_param=False):
        super().__init__()
        self.scale = mg.nn.Parameter(np.array([1.5], "float32"))
        self.wrong, self.wrong_param = wrong, wrong_param

    def forward(self, x):
        self._cache = x
        return x * x * self.scale.data

    def backward(self, dy):
        x = self.take_cache()
        factor = 1.0 if self.wrong else 2.0
        grad_scale = (dy * x * x).sum().reshape(1) * (3.0 if self.wrong_param else 1.0)
        self.scale.accumulate(grad_scale)
        return factor * dy * x * self.scale.data


def test_correct_layer_passes():
    assert mg.gradcheck(Square(), np.random.default_rng(0).standard_normal((3, 4)))


def test_wrong_input_gradient_is_caught():
    with pytest.raises(mg.GradcheckError, match="Square.*gradient of input 0 disagrees"):
        mg.gradcheck(Square(wrong=True), np.random.default_rng(0).standard_normal((3, 4)))


def test_wrong_parameter_gradient_is_caught():
    with pytest.raises(mg.GradcheckError, match="gradient of parameter 'scale' disagrees"):
        mg.gradcheck(Square(wrong_param=True), np.random.default_rng(0).standard_normal((3, 4)))


def test_original_layer_untouched():
    layer = Square()
    mg.gradcheck(layer, np.ones((2, 2)))
    assert layer.scale.data.dtype == np.float32 and layer.scale.grad is None


def test_function_pair_and_bad_argument():
    f = lambda x: np.sin(x)  # noqa: E731
    assert mg.gradcheck((f, lambda dy, x: dy * np.cos(x)), np.linspace(-2, 2, 7))
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck((f, lambda dy, x: dy * np.sin(x)), np.linspace(-2, 2, 7))
    with pytest.raises(TypeError, match="expected a Layer"):
        mg.gradcheck(42, np.ones(2))
