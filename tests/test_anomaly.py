"""mg.detect_anomaly(): the first layer producing NaN/Inf is named, in forward and backward."""
import numpy as np
import pytest

import minigrad as mg


class Log(mg.nn.Layer):
    """y = log(x): NaN for negative x, -Inf at 0 (a classic source of anomalies)."""

    def forward(self, x):
        self._cache = x
        xp = mg.backend.get_array_module(x)
        return xp.log(x)

    def backward(self, dy):
        return dy / self.take_cache()


def _model():
    return mg.nn.Sequential(mg.nn.Linear(3, 3), Log(), mg.nn.Linear(3, 2))


def test_forward_anomaly_names_first_producer():
    model = _model()
    model[0].weight.data[...] = -1.0  # linear output negative -> log gives NaN
    model[0].bias.data[...] = 0.0
    x = np.ones((2, 3), "float32")
    with np.errstate(invalid="ignore"):
        with pytest.raises(mg.AnomalyError, match=r"Log '1'.forward: output of shape \(2, 3\) contains 6 NaN"):
            with mg.detect_anomaly():
                model(x)
        y = model(x)  # outside the block: no check, NaN flows silently as in NumPy
    assert np.isnan(y).all()


def test_backward_anomaly_names_layer():
    model = _model()
    model[0].weight.data[...] = 0.0
    model[0].bias.data[...] = 0.0   # log(0) = -inf forward; backward divides by 0
    with np.errstate(divide="ignore", invalid="ignore"):
        with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"Log '1'.forward: output.*Inf"):
            model(np.ones((2, 3), "float32"))
        model.clear_cache()
        model(np.ones((2, 3), "float32"))
        with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"Linear '2'.backward: gradient of "
                                                                       r"parameter 'weight'.*Inf"):
            model.backward(np.ones((2, 2), "float32"))


def test_nan_in_data_blames_the_input():
    model = _model()
    x = np.ones((2, 3), "float32")
    x[0, 1] = np.nan
    with mg.detect_anomaly(), pytest.raises(mg.AnomalyError, match=r"Sequential.forward: input of shape \(2, 3\) "
                                                                   r"contains 1 NaN and 0 Inf.*check the data"):
        model(x)
    with mg.detect_anomaly(check_inputs=False), pytest.raises(mg.AnomalyError, match="Linear '0'.forward: output"):
        model(x)


def test_finite_run_passes_and_flag_restored():
    model = mg.nn.Sequential(mg.nn.Conv2d(1, 2, 3), mg.nn.Flatten(), mg.nn.Linear(8, 2))
    with mg.detect_anomaly():
        y = model(np.ones((1, 1, 4, 4), "float32"))
        model.backward(np.ones_like(y))
    assert not mg.anomaly.is_anomaly_enabled()
