"""float16 on the CuPy backend is refused up front, with an error naming what is unsupported.

The fused CUDA kernels (softmax cross-entropy, the SGD and Adam steps) do not compile for float16
(tests/kernels/test_cuda_kernel_nvrtc.py compiles every kernel for backend.GPU_FLOAT_DTYPES), so a
float16 model would fail at its first step on a GPU; instead ``Layer.to``, ``Parameter.to`` and every
layer's input check refuse it. On NumPy float16 stays accepted. The cupy cases run on a GPU or on
the simulated CuPy (MINIGRAD_TEST_CUPY=sim).
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import backend as B

FLOAT16 = r"dtype float16 is not supported on the 'cupy' backend .*float32 and float64 only.*use float32"


def test_the_backend_names_its_gpu_dtypes():
    assert B.GPU_FLOAT_DTYPES == ("float32", "float64")
    for name in ("cupy", "cuda", "GPU"):
        with pytest.raises(TypeError, match="where: " + FLOAT16):
            B.check_backend_dtype(name, "float16", "where")
    for name, dtype in (("cupy", "float32"), ("cupy", np.float64), ("cupy", "int64"), ("numpy", "float16")):
        B.check_backend_dtype(name, dtype, "where")       # accepted: no error


@pytest.fixture
def cupy_backend():
    """The cupy backend (a GPU, or the simulated CuPy); skips without one."""
    if not B.cupy_available():
        pytest.skip("needs CuPy and a GPU, or MINIGRAD_TEST_CUPY=sim")
    mg.set_backend("cupy")


def _model():
    return mg.nn.Sequential(mg.nn.Linear(4, 3), mg.nn.ReLU(), mg.nn.Linear(3, 2))


def test_float16_stays_accepted_on_numpy():
    model = _model().to("numpy", dtype="float16")
    out = model(np.ones((2, 4), np.float16))
    assert out.dtype == np.float16


@pytest.mark.gpu
def test_model_to_cupy_float16_is_refused_before_anything_moves(cupy_backend):
    model = _model().to("numpy")
    with pytest.raises(TypeError, match="Sequential.to: " + FLOAT16):
        model.to("cupy", dtype="float16")
    assert all(p.backend == "numpy" and p.dtype == np.float32 for p in model.parameters())
    model.to("numpy", dtype="float16")                    # a float16 model on the host ...
    with pytest.raises(TypeError, match="Sequential.to: " + FLOAT16):
        model.to("cupy")                                  # ... cannot move to the GPU either
    with pytest.raises(TypeError, match="Parameter.to: " + FLOAT16):
        model.parameters()[0].to("cupy")
    model.to("cupy", dtype="float32")                     # float32 on the GPU is fine
    assert all(p.backend == "cupy" for p in model.parameters())
    with pytest.raises(TypeError, match="Sequential.to: " + FLOAT16):
        model.to(dtype=np.float16)                        # cast in place on the GPU: refused too


@pytest.mark.gpu
def test_float16_input_on_cupy_is_refused_by_the_layers_and_the_loss(cupy_backend):
    xp = mg.backend.active_module()
    linear = mg.nn.Linear(4, 3).to("cupy")
    x16 = xp.asarray(np.ones((2, 4), np.float16))
    with pytest.raises(TypeError, match=r"Linear.*input: " + FLOAT16):
        linear(x16)
    conv = mg.nn.Conv2d(1, 2, 3).to("cupy")
    with pytest.raises(TypeError, match=r"Conv2d.*input: " + FLOAT16):
        conv(xp.asarray(np.ones((1, 1, 5, 5), np.float16)))
    with pytest.raises(TypeError, match=FLOAT16):
        mg.nn.CrossEntropyLoss()(x16, xp.asarray(np.array([0, 1])))


@pytest.mark.gpu
def test_a_float16_parameter_on_cupy_is_refused_at_construction(cupy_backend):
    xp = mg.backend.active_module()
    with pytest.raises(TypeError, match=r"Parameter: " + FLOAT16):
        mg.nn.Parameter(xp.zeros(3, dtype="float16"))
    assert mg.nn.Parameter(np.zeros(3, "float16")).dtype == np.float16   # on NumPy: accepted
