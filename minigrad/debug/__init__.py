"""Tools that check a network's numbers: gradients against finite differences, and the first NaN/Inf.

    mg.gradcheck(layer, x)            # every gradient of a layer against central differences (float64)
    mg.gradcheck(model, x, entries=10, report=True)   # a spot check of a network, printed as a table
    with mg.detect_anomaly(): ...     # raise at the first layer whose forward or backward makes a NaN/Inf
    with mg.trace(): ...              # print every layer's forward and backward: shapes, dtype, time, norms
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
from .tracing import is_tracing, trace

__all__ = ["gradcheck", "GradcheckError", "GradcheckReport", "detect_anomaly", "AnomalyError", "is_anomaly_enabled",
           "trace", "is_tracing"]
