"""Tools that check a network's numbers: gradients against finite differences, and the first NaN/Inf.

    mg.gradcheck(layer, x)            # every gradient of a layer against central differences (float64)
    with mg.detect_anomaly(): ...     # raise at the first layer whose forward or backward makes a NaN/Inf
"""
from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from .gradcheck import GradcheckError, gradcheck

__all__ = ["gradcheck", "GradcheckError", "detect_anomaly", "AnomalyError", "is_anomaly_enabled"]
