"""Allocations whose size the user's arguments control are checked before they are made (runtime/memory.py):
the padding modes pad only after the check, constructors draw their weights in the parameter's dtype (no
float64 temporary the size of the weight) and refuse sizes that do not fit, and layers outside the convolution
and pooling kernels (activations, normalisation, losses) check their outputs, also for broadcast views whose
logical size is far larger than their memory. Peaks are measured with tracemalloc, which sees NumPy's buffers.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad.runtime import memory
from support.memory_peak import traced_peak


@pytest.fixture
def limit_100m(monkeypatch):
    monkeypatch.setenv(memory.ENV, "100M")


@pytest.mark.parametrize("mode, shape, padding", [("replicate", (2, 1, 1, 1), 20000),
                                                   ("circular", (1, 1, 3000, 3000), 3000),
                                                   ("reflect", (1, 1, 3000, 3000), 2999)])
def test_padding_modes_are_refused_before_the_input_is_padded(limit_100m, mode, shape, padding):
    x = np.zeros(shape, np.float32)
    layer = mg.nn.Conv2d(1, 1, 1, padding=padding, padding_mode=mode)
    error, peak = traced_peak(lambda: layer(x))
    assert isinstance(error, MemoryError), error
    assert str(error).startswith(f"Conv2d: {mode}-padded input of shape ({shape[0]}, 1, "), error
    assert peak < 4 << 20, f"{peak} bytes allocated before the refusal"     # used to be the padded input: GBs


def test_constructors_refuse_weights_that_do_not_fit_naming_the_layer(limit_100m):
    with pytest.raises(MemoryError, match=r"^Linear\(60000, 60000\): weight of shape \(60000, 60000\) needs "
                                          r"14400000000 bytes .* use smaller layer sizes"):
        mg.nn.Linear(60000, 60000)
    with pytest.raises(MemoryError, match=r"^Conv2d\(4096, 4096, kernel_size=\(7, 7\)\): weight of shape"):
        mg.nn.Conv2d(4096, 4096, 7)
    with pytest.raises(MemoryError, match=r"^ConvTranspose2d\(4096, 4096, kernel_size=\(7, 7\)\): weight"):
        mg.nn.ConvTranspose2d(4096, 4096, 7)
    with pytest.raises(MemoryError, match=r"^BatchNorm2d\(100000000\): weight, bias and running statistics"):
        mg.nn.BatchNorm2d(100_000_000)
    with pytest.raises(MemoryError, match=r"^LayerNorm\(\(10000, 10000\)\): weight and bias"):
        mg.nn.LayerNorm((10000, 10000))


def test_a_float32_weight_is_initialised_without_a_float64_copy():
    """Linear(4096, 4096): a 64 MiB float32 weight used to cost 64 + 128 MiB (a float64 draw, then astype)."""
    weight_bytes = 4096 * 4096 * 4
    layer, peak = traced_peak(lambda: mg.nn.Linear(4096, 4096))
    assert isinstance(layer, mg.nn.Linear)
    assert peak < weight_bytes + (2 << 20), f"peak {peak} bytes for a {weight_bytes}-byte weight"
    # (trunc_normal_ fills through the same chunked draw; its per-element inverse CDF is too slow to time here)
    for init, shape in ((mg.nn.init.uniform_, (4096, 4096)), (mg.nn.init.normal_, (4096, 4096)),
                        (mg.nn.init.kaiming_normal_, (4096, 4096))):
        array = np.empty(shape, np.float32)                           # 64 MiB
        result, peak = traced_peak(lambda: init(array))
        assert result is array and peak < array.nbytes // 2, (init.__name__, peak)   # chunk-sized temporaries
        assert np.isfinite(array).all() and array.std() > 0


def test_the_chunked_draw_gives_the_numbers_of_one_draw():
    """The same seed gives the same weights as before (one float64 draw cast to float32), for any size."""
    for size in (1, 5, 65536, 65537, 300_001):
        mg.manual_seed(3)
        drawn = mg.random.uniform(-0.5, 0.5, (size,), "float32")
        assert np.array_equal(drawn, np.random.default_rng(3).uniform(-0.5, 0.5, size=size).astype(np.float32))
    generator = np.random.default_rng(9)
    array = np.empty((300, 700), np.float64)[:, ::2]                 # not contiguous: filled through a copy
    mg.nn.init.normal_(array, 1.0, 2.0, generator=generator)
    assert np.array_equal(array, np.random.default_rng(9).normal(1.0, 2.0, size=(300, 350)))
    weight = mg.nn.Parameter(np.empty((5, 0), np.float32))
    mg.nn.init.uniform_(weight)                                       # zero elements: nothing drawn, no error


@pytest.mark.parametrize("make, copies", [(lambda: mg.nn.ReLU(), 2), (lambda: mg.nn.GELU(), 14),
                                          (lambda: mg.nn.BatchNorm1d(20000), 3), (lambda: mg.nn.LayerNorm(20000), 3),
                                          (lambda: mg.nn.Dropout(0.5), 3), (lambda: mg.nn.Softmax(dim=1), 2)])
def test_layers_check_their_outputs_for_broadcast_inputs(limit_100m, make, copies):
    """A broadcast view of 4 bytes that reads as 1.6 GB: its output would be 1.6 GB."""
    big = np.broadcast_to(np.float32(1.0), (20000, 20000))
    layer = make()
    error, peak = traced_peak(lambda: layer(big))
    assert isinstance(error, MemoryError), error
    assert str(error).startswith(f"{type(layer).__name__}: forward's output and temporaries for an input of shape "
                                 f"(20000, 20000) needs {copies * 1_600_000_000} bytes"), error
    assert peak < 1 << 20


def test_losses_and_layers_in_a_model_check_too(limit_100m):
    big = np.broadcast_to(np.float32(1.0), (20000, 20000))
    with pytest.raises(MemoryError, match=r"^MSELoss: forward's output"):
        mg.nn.MSELoss()(big, big)
    with pytest.raises(MemoryError, match=r"^Tanh '1': forward's output"):
        mg.nn.Sequential(mg.nn.Identity(), mg.nn.Tanh())(big)


def test_small_inputs_are_not_checked_against_the_machine(monkeypatch):
    """Under SMALL bytes no /proc file is read (the cost of the check in a training step is one comparison)."""
    monkeypatch.delenv(memory.ENV, raising=False)
    monkeypatch.setattr(memory, "available_bytes", lambda: pytest.fail("read the machine for a small input"))
    out = mg.nn.Sequential(mg.nn.Linear(8, 8), mg.nn.ReLU(), mg.nn.BatchNorm1d(8))(np.ones((4, 8), np.float32))
    assert out.shape == (4, 8)


def _broadcast(*shape):
    return np.broadcast_to(np.float32(1.0), shape)


@pytest.mark.parametrize("call, words", [
    (lambda: mg.functional.gelu(_broadcast(20000, 20000)), "gelu: output and temporaries"),
    (lambda: mg.functional.erf(_broadcast(20000, 20000)), "erf: output and temporaries"),
    (lambda: mg.functional.mse_loss(_broadcast(20000, 20000), _broadcast(20000, 20000)), "mse_loss: output"),
    (lambda: mg.functional.cross_entropy(_broadcast(20000, 20000), np.zeros(20000, "int64")), "cross_entropy: "),
    (lambda: mg.functional.relu(_broadcast(20000, 20000)), "relu: output and temporaries"),
    (lambda: mg.functional.pad2d(np.zeros((1, 1, 2, 2), np.float32), (20000,) * 4), "pad2d: zeros-padded input"),
    (lambda: mg.functional.pad2d(np.zeros((1, 1, 2, 2), np.float32), (20000,) * 4, "replicate"),
     "pad2d: replicate-padded input"),
    (lambda: mg.functional.adaptive_avg_pool2d(_broadcast(1, 1, 30000, 30000), 29999),
     "adaptive_avg_pool2d: output of shape (1, 1, 29999, 29999)"),
    (lambda: mg.nn.AvgPool2d(2)(_broadcast(1, 1, 30000, 30000)), "AvgPool2d: output of shape (1, 1, 15000, 15000)"),
    (lambda: mg.nn.Linear(40000, 4)(_broadcast(40000, 40000)),
     "Linear: output (and a contiguous copy of the input) of shape (40000, 4)"),
], ids=["gelu", "erf", "mse_loss", "cross_entropy", "relu", "pad2d", "pad2d replicate", "adaptive_avg_pool2d",
        "AvgPool2d divisor", "Linear strided input"])
def test_what_an_outside_probe_got_oom_killed_is_refused_first(limit_100m, call, words):
    """Each of these was OOM-killed in a 512 MiB cgroup: an allocation made before (or without) the check."""
    error, peak = traced_peak(call)
    assert isinstance(error, MemoryError), error
    assert str(error).startswith(words), error
    assert peak < 4 << 20, f"{peak} bytes allocated before the refusal"


def test_a_transposed_convolution_counts_its_scatter_buffer(monkeypatch):
    """ConvTranspose2d(1, 1, 3, stride=10000) on 2x2: a 381 MiB result that peaked at 802 MB; counted twice now."""
    monkeypatch.setenv(memory.ENV, "600M")
    layer = mg.nn.ConvTranspose2d(1, 1, 3, stride=10000)
    error, peak = traced_peak(lambda: layer(np.zeros((1, 1, 2, 2), np.float32)))
    assert isinstance(error, MemoryError) and str(error).startswith("ConvTranspose2d: result of shape (1, 1, 10003"), error
    assert peak < 4 << 20
