"""BatchNorm1d/2d and LayerNorm vs PyTorch: train and eval forward, input and parameter gradients,
running statistics after several steps (momentum and cumulative), state-dict keys, finite
differences, the strict backend and error messages."""
import numpy as np
import pytest

import minigrad as mg
from support.zoo_checks import assert_close, strict_run

torch = pytest.importorskip("torch")

BN_CASES = [  # (mg class, torch class, input shape)
    ("BatchNorm1d", (6, 3)),
    ("BatchNorm1d", (4, 3, 5)),
    ("BatchNorm2d", (3, 3, 4, 5)),
]


def _pair(name, c, dtype, seed=0, **kwargs):
    ours = getattr(mg.nn, name)(c, dtype=dtype, **kwargs)
    ref = getattr(torch.nn, name)(c, dtype=getattr(torch, dtype), **kwargs)
    rng = np.random.default_rng(seed)
    if ours.weight is not None:
        ours.weight.data[...] = rng.uniform(0.5, 1.5, c)
        ours.bias.data[...] = rng.standard_normal(c)
    ref.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ours.state_dict().items()})
    return ours, ref


def _step(ours, ref, x, dy, dtype):
    """One forward/backward of both; compares output, input and parameter gradients."""
    ours.zero_grad()
    ref.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))
    assert_close(ours(x), yt, dtype, "output")
    assert_close(ours.backward(dy), xt.grad, dtype, "input gradient")
    if ours.weight is not None:
        assert_close(ours.weight.grad, ref.weight.grad, dtype, "weight gradient")
        assert_close(ours.bias.grad, ref.bias.grad, dtype, "bias gradient")


def _compare_buffers(ours, ref, dtype):
    ref_state = ref.state_dict()
    for key, value in ours.state_dict().items():
        if key == "num_batches_tracked":
            assert value.dtype == np.int64 and int(value) == int(ref_state[key])
        else:
            assert_close(value, ref_state[key], dtype, key)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("momentum", [0.1, None, 0.3])
@pytest.mark.parametrize("case", BN_CASES, ids=str)
def test_batchnorm_train_steps_then_eval_match_torch(case, momentum, dtype):
    name, shape = case
    ours, ref = _pair(name, shape[1], dtype, momentum=momentum)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        _step(ours, ref, x, rng.standard_normal(shape).astype(dtype), dtype)
        _compare_buffers(ours, ref, dtype)
    ours.eval()
    ref.eval()
    x = rng.standard_normal(shape).astype(dtype)
    _step(ours, ref, x, rng.standard_normal(shape).astype(dtype), dtype)
    _compare_buffers(ours, ref, dtype)
    assert int(ours.num_batches_tracked) == 3


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("case", BN_CASES, ids=str)
def test_batchnorm_affine_and_tracking_options_match_torch(case, track, affine):
    name, shape = case
    ours, ref = _pair(name, shape[1], "float64", affine=affine, track_running_stats=track)
    rng = np.random.default_rng(2)
    for training in (True, True, False):
        ours.train(training)
        ref.train(training)
        _step(ours, ref, rng.standard_normal(shape), rng.standard_normal(shape), "float64")
    assert [k for k in ours.state_dict()] == [k for k in ref.state_dict()]


def test_batchnorm_state_dict_keys_and_buffer_dtypes():
    bn = mg.nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    bn.to(dtype="float64")
    assert bn.running_mean.dtype == np.float64 and bn.num_batches_tracked.dtype == np.int64
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(mg.nn.BatchNorm1d(3, affine=False, track_running_stats=False).state_dict()) == []
    ln = mg.nn.LayerNorm((3, 4))
    assert list(ln.state_dict()) == list(torch.nn.LayerNorm((3, 4)).state_dict())
    assert list(mg.nn.LayerNorm(3, bias=False).state_dict()) == list(torch.nn.LayerNorm(3, bias=False).state_dict())


def test_batchnorm_load_torch_running_stats_and_reset():
    ref = torch.nn.BatchNorm2d(3).double()
    ref(torch.randn(4, 3, 2, 2, dtype=torch.float64))
    ours = mg.nn.BatchNorm2d(3, dtype="float64")
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    np.testing.assert_array_equal(ours.running_var, ref.running_var.numpy())
    assert int(ours.num_batches_tracked) == 1 and ours.num_batches_tracked.dtype == np.int64
    ours.reset_running_stats()
    assert not ours.running_mean.any() and (ours.running_var == 1).all() and int(ours.num_batches_tracked) == 0


LN_CASES = [((4, 5), 5, {}), ((2, 3, 4, 5), (4, 5), {}), ((3, 6), 6, dict(bias=False)),
            ((2, 3, 4), 4, dict(elementwise_affine=False)), ((2, 3, 4), (3, 4), dict(eps=1e-3))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", LN_CASES, ids=str)
def test_layernorm_matches_torch(case, dtype):
    shape, normalized, kwargs = case
    ours = mg.nn.LayerNorm(normalized, dtype=dtype, **kwargs)
    ref = torch.nn.LayerNorm(normalized, dtype=getattr(torch, dtype), **kwargs)
    rng = np.random.default_rng(3)
    for param in ours.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    ref.load_state_dict({k: torch.tensor(np.array(v)) for k, v in ours.state_dict().items()})
    x = (rng.standard_normal(shape) * 3 - 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).backward(torch.tensor(dy))
    assert_close(ours(x), ref(torch.tensor(x)), dtype, "output")
    assert_close(ours.backward(dy), xt.grad, dtype, "input gradient")
    for name, param in ours.named_parameters():
        assert_close(param.grad, getattr(ref, name).grad, dtype, f"{name} gradient")


def _with_random_params(layer, seed=4):
    rng = np.random.default_rng(seed)
    for param in layer.parameters():
        param.data[...] = rng.uniform(0.5, 1.5, param.shape)
    if getattr(layer, "running_var", None) is not None:
        layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    return layer


FD_LAYERS = [
    lambda: mg.nn.BatchNorm1d(3),
    lambda: mg.nn.BatchNorm1d(3).eval(),
    lambda: mg.nn.BatchNorm2d(3),
    lambda: mg.nn.BatchNorm2d(3).eval(),
    lambda: mg.nn.BatchNorm2d(3, affine=False, track_running_stats=False).eval(),
    lambda: mg.nn.BatchNorm2d(3, bias=False),
    lambda: mg.nn.LayerNorm((3, 4)),
    lambda: mg.nn.LayerNorm(4, elementwise_affine=False),
]
FD_SHAPES = [(4, 3), (4, 3), (2, 3, 2, 3), (2, 3, 2, 3), (2, 3, 2, 3), (2, 3, 2, 3), (2, 3, 4), (3, 4)]


@pytest.mark.parametrize("index", range(len(FD_LAYERS)))
def test_norm_finite_differences(index):
    layer = _with_random_params(FD_LAYERS[index]().to(dtype="float64"))
    x = np.random.default_rng(5).standard_normal(FD_SHAPES[index])
    assert mg.gradcheck(layer, x)


@pytest.mark.parametrize("index", range(len(FD_LAYERS)))
def test_norm_strict_backend(index):
    layer = _with_random_params(FD_LAYERS[index]())
    x = np.random.default_rng(6).standard_normal(FD_SHAPES[index]).astype("float32")
    strict_run(layer, [x], np.ones_like(x))


def test_norm_on_each_backend(backend, xp):
    bn = mg.nn.BatchNorm2d(3)
    x = xp.asarray(np.random.default_rng(7).standard_normal((2, 3, 4, 4)).astype("float32"))
    y = bn(x)
    dx = bn.backward(xp.ones_like(y))
    for array in (y, dx, bn.running_mean, bn.weight.grad, bn.num_batches_tracked):
        assert mg.backend.backend_of(array) == backend
    assert int(bn.num_batches_tracked) == 1


def test_norm_errors():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4-D input \(N, C, H, W\), got 3-D"):
        mg.nn.BatchNorm2d(3)(np.ones((3, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2-D or 3-D input \(N, C\) or \(N, C, L\)"):
        mg.nn.BatchNorm1d(3)(np.ones((2, 3, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"expected input with 3 channels \(num_features=3\).*\(2, 4, 5, 5\)"):
        mg.nn.BatchNorm2d(3)(np.ones((2, 4, 5, 5), "float32"))
    with pytest.raises(TypeError, match="floating-point input.*int64"):
        mg.nn.BatchNorm1d(3)(np.ones((2, 3), "int64"))
    with pytest.raises(TypeError, match="input has dtype float64 but weight has dtype float32"):
        mg.nn.BatchNorm1d(3)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="more than 1 value per channel when training"):
        mg.nn.BatchNorm1d(3)(np.ones((1, 3), "float32"))
    mg.nn.BatchNorm1d(3).eval()(np.ones((1, 3), "float32"))  # fine in eval
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        mg.nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"LayerNorm: expected input whose trailing dimensions are "
                                         r"normalized_shape=\(4, 5\), got input of shape \(2, 5, 4\)"):
        mg.nn.LayerNorm((4, 5))(np.ones((2, 5, 4), "float32"))
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        mg.nn.LayerNorm(())
    bn = mg.nn.BatchNorm2d(3)
    bn(np.ones((2, 3, 2, 2), "float32"))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(2, 3, 2, 2\)"):
        bn.backward(np.ones((2, 3, 2), "float32"))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("offset", [0.0, 50.0], ids=["centred", "offset-50"])
def test_batch_norm_in_chunks_of_samples_is_the_same_bits_on_any_number_of_threads(offset, training):
    """A batch big enough to be cut into chunks of samples (functional/batch_stats.py) gives the same output,
    gradients and running statistics on 1, 2 and 3 threads, and matches PyTorch: for data near zero mean (the
    one-pass statistics) and far from it (the two-pass fallback), in train and eval mode."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 64, 16, 16)) * 2.0 + offset          # 8 MiB in float64: several chunks
    dy = rng.standard_normal(x.shape)
    state = {"weight": rng.standard_normal(64), "bias": rng.standard_normal(64),
             "running_mean": np.full(64, offset) + rng.standard_normal(64), "running_var": rng.random(64) + 0.5,
             "num_batches_tracked": np.array(3)}
    results = []
    saved = mg.get_num_threads()
    try:
        for count in (1, 2, 3):
            mg.set_num_threads(count)
            layer = mg.nn.BatchNorm2d(64, momentum=0.3, dtype="float64")
            layer.load_state_dict(state)
            layer.train(training)
            y = layer(x)
            results.append((y, layer.backward(dy), layer.weight.grad, layer.bias.grad, layer.running_mean,
                            layer.running_var))
    finally:
        mg.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    module = torch.nn.BatchNorm2d(64, momentum=0.3).double()
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    module.train(training)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    expected = (yt, xt.grad, module.weight.grad, module.bias.grad, module.running_mean, module.running_var)
    for ours, theirs in zip(results[0], expected):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-10)
