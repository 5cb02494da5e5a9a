"""GroupNorm, InstanceNorm2d and LocalResponseNorm vs PyTorch (float64 at 1e-10, float32 loose): output, input and
parameter gradients, running statistics over several steps in train then eval; finite differences; gradients
accumulating over two backward calls; the functional forms; state-dict keys; PyTorch's refusals and warnings with
the layer's name; each backend and the strict backend."""
import warnings

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F
from minigrad.backend import BackendUnavailableError, cupy_available
from support.zoo_checks import assert_close, strict_run

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _x(shape, seed=0, dtype="float64"):
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 0.5).astype(dtype)


def _pair(name, args, kwargs, dtype, seed=0):
    """The minigrad layer and torch's, with the same random parameters and running statistics."""
    ref = getattr(torch.nn, name)(*args, **kwargs).to(getattr(torch, dtype))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for key, tensor in ref.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = rng.uniform(0.5, 2.0, tuple(tensor.shape)) if key.endswith("var") else \
                    rng.standard_normal(tuple(tensor.shape))
                tensor.copy_(torch.from_numpy(values))
    extra = {"dtype": dtype} if name != "LocalResponseNorm" else {}
    ours = getattr(mg.nn, name)(*args, **kwargs, **extra)
    ours.load_state_dict({k: v.numpy().copy() for k, v in ref.state_dict().items()})
    return ours, ref


def _step(ours, ref, x, dy, dtype):
    """One forward and backward of both (gradients zeroed first): output, input and parameter gradients."""
    ours.zero_grad()
    ref.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))
    assert_close(ours(x), yt, dtype, "output")
    assert_close(ours.backward(dy), xt.grad, dtype, "input gradient")
    for name, param in ours.named_parameters():
        assert_close(param.grad, getattr(ref, name).grad, dtype, f"{name} gradient")


def _buffers(ours, ref, dtype):
    theirs = ref.state_dict()
    assert list(ours.state_dict()) == list(theirs)
    for key, value in ours.state_dict().items():
        if key == "num_batches_tracked":
            assert value.dtype == np.int64 and int(value) == int(theirs[key]) == 0   # InstanceNorm never counts
        else:
            assert_close(value, theirs[key], dtype, key)


GN_CASES = [(1, 6, (4, 6)), (2, 6, (3, 6, 5)), (3, 6, (2, 6, 3, 4)), (6, 6, (2, 6, 3, 4)), (2, 4, (2, 4, 2, 3, 2))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"bias": False}, {"eps": 1e-2}], ids=str)
@pytest.mark.parametrize("case", GN_CASES, ids=str)
def test_group_norm_matches_torch(case, kwargs, dtype):
    groups, channels, shape = case
    ours, ref = _pair("GroupNorm", (groups, channels), kwargs, dtype)
    for training, seed in ((True, 1), (False, 2)):             # the same in both modes
        ours.train(training)
        ref.train(training)
        _step(ours, ref, _x(shape, seed, dtype), _x(shape, seed + 10, dtype), dtype)


IN_OPTIONS = [{}, {"affine": True}, {"affine": True, "bias": False}, {"track_running_stats": True},
              {"track_running_stats": True, "affine": True, "momentum": 0.3}, {"track_running_stats": True,
                                                                              "momentum": None, "eps": 1e-3}]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (4, 5, 6)], ids=str)
@pytest.mark.parametrize("kwargs", IN_OPTIONS, ids=str)
def test_instance_norm_train_steps_then_eval_match_torch(kwargs, shape, dtype):
    ours, ref = _pair("InstanceNorm2d", (4,), kwargs, dtype)
    for step in range(3):
        _step(ours, ref, _x(shape, step, dtype), _x(shape, step + 10, dtype), dtype)
        _buffers(ours, ref, dtype)
    ours.eval()
    ref.eval()
    _step(ours, ref, _x(shape, 7, dtype), _x(shape, 8, dtype), dtype)
    _buffers(ours, ref, dtype)


def test_instance_norm_running_statistics_by_hand():
    """running = (1 - m) running + m * batch average of each sample's mean / unbiased variance; None: m = 0."""
    x = _x((3, 2, 4, 5))
    layer = mg.nn.InstanceNorm2d(2, momentum=0.25, track_running_stats=True, dtype="float64")
    layer(x)
    np.testing.assert_allclose(layer.running_mean, 0.25 * x.mean(axis=(2, 3)).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * x.var(axis=(2, 3), ddof=1).mean(axis=0), rtol=1e-12)
    frozen = mg.nn.InstanceNorm2d(2, momentum=None, track_running_stats=True, dtype="float64")
    frozen(x)
    assert (frozen.running_mean == 0).all() and (frozen.running_var == 1).all()
    assert int(layer.num_batches_tracked) == int(frozen.num_batches_tracked) == 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 6, 3, 4), (2, 5, 2, 3, 2)], ids=str)
def test_local_response_norm_matches_torch(shape, size, dtype):
    for options in ((), (0.5, 0.6, 2.0), (3.0, 1.5, 0.5)):
        ours, ref = _pair("LocalResponseNorm", (size,) + options, {}, dtype)
        _step(ours, ref, _x(shape, size, dtype), _x(shape, size + 1, dtype), dtype)


def test_local_response_norm_by_hand():
    """d_c = k + alpha/size * sum of x^2 over channels c - size//2 .. c + (size-1)//2; y = x / d^beta."""
    x = _x((2, 5, 3))
    for size in (2, 3, 4):
        padded = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2), (0, 0)))
        window = sum(padded[:, j:j + 5] for j in range(size))
        expected = x / (1.5 + 0.3 / size * window) ** 0.7
        np.testing.assert_allclose(mg.nn.LocalResponseNorm(size, 0.3, 0.7, 1.5)(x), expected, rtol=1e-12)


FD_LAYERS = {
    "group_norm": (lambda: mg.nn.GroupNorm(2, 4), (3, 4, 3)),
    "group_norm_one_group_2d": (lambda: mg.nn.GroupNorm(1, 4, bias=False), (3, 4)),
    "group_norm_no_affine": (lambda: mg.nn.GroupNorm(4, 4, affine=False), (2, 4, 2, 3)),
    "instance_norm": (lambda: mg.nn.InstanceNorm2d(3), (2, 3, 3, 2)),
    "instance_norm_affine": (lambda: mg.nn.InstanceNorm2d(3, affine=True), (2, 3, 2, 3)),
    "instance_norm_unbatched": (lambda: mg.nn.InstanceNorm2d(3, affine=True), (3, 2, 3)),
    "instance_norm_tracking_train": (lambda: mg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
                                     (2, 3, 2, 2)),
    "instance_norm_tracking_eval": (lambda: mg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).eval(),
                                    (2, 3, 2, 2)),
    "lrn_2": (lambda: mg.nn.LocalResponseNorm(2, 0.8, 0.75, 1.0), (2, 5, 3)),
    "lrn_3": (lambda: mg.nn.LocalResponseNorm(3, 0.5, 1.3, 2.0), (2, 4, 2, 3)),
    "lrn_4": (lambda: mg.nn.LocalResponseNorm(4, 2.0, 0.6, 0.7), (1, 6, 2, 1, 2)),
}


def _with_random_state(layer, seed=4):
    rng = np.random.default_rng(seed)
    for param in layer.parameters():
        param.data[...] = rng.uniform(0.5, 1.5, param.shape)
    if getattr(layer, "running_var", None) is not None:
        layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    return layer


@pytest.mark.parametrize("name", sorted(FD_LAYERS))
def test_finite_differences(name):
    make, shape = FD_LAYERS[name]
    layer = _with_random_state(make().to(dtype="float64"))
    assert mg.gradcheck(layer, _x(shape, 5))


@pytest.mark.parametrize("name", sorted(FD_LAYERS))
def test_strict_backend(name):
    make, shape = FD_LAYERS[name]
    x = _x(shape, 6, "float32")
    strict_run(_with_random_state(make()), [x], np.ones_like(x))


@pytest.mark.parametrize("name", ["GroupNorm", "InstanceNorm2d"])
def test_parameter_gradients_accumulate_over_two_backwards_like_torch(name):
    args, kwargs, shape = ((2, 4), {}, (3, 4, 5)) if name == "GroupNorm" else ((4,), {"affine": True}, (2, 4, 3, 3))
    ours, ref = _pair(name, args, kwargs, "float64")
    for seed in (1, 2):
        x, dy = _x(shape, seed), _x(shape, seed + 5)
        ours(x)
        ours.backward(dy)
        ref(torch.tensor(x)).backward(torch.tensor(dy))
    for key, param in ours.named_parameters():
        assert_close(param.grad, getattr(ref, key).grad, "float64", f"accumulated {key} gradient")


def test_group_norm_of_one_value_per_group_is_zero_like_torch():
    """Each group a single value: xhat = 0 and its gradient 0 (torch's differ from 0 by rounding only)."""
    layer = mg.nn.GroupNorm(6, 6, dtype="float64")
    x, dy = _x((4, 6)), _x((4, 6), 1)
    y = layer(x)
    np.testing.assert_allclose(y, np.broadcast_to(layer.bias.data, y.shape), atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.GroupNorm(6, 6).double()(xt).backward(torch.tensor(dy))
    np.testing.assert_allclose(layer.backward(dy), xt.grad.numpy(), atol=1e-10)


def test_functional_forms_match_torch_and_the_layers():
    x = _x((3, 6, 4, 5))
    weight, bias = _x(6, 1), _x(6, 2)
    np.testing.assert_allclose(F.group_norm(x, 3, weight, bias, 1e-3), TF.group_norm(
        torch.tensor(x), 3, torch.tensor(weight), torch.tensor(bias), 1e-3).numpy(), rtol=1e-10, atol=1e-12)
    layer = mg.nn.GroupNorm(3, 6, dtype="float64")
    assert np.array_equal(F.group_norm(x, 3, layer.weight, layer.bias), layer(x))      # Parameters as torch
    rm, rv = _x(6, 3), np.abs(_x(6, 4)) + 0.5
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    for use_input_stats in (True, False):
        ours = F.instance_norm(x, rm, rv, weight, bias, use_input_stats, 0.2, 1e-4)
        theirs = TF.instance_norm(torch.tensor(x), rm_t, rv_t, torch.tensor(weight), torch.tensor(bias),
                                  use_input_stats, 0.2, 1e-4)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rm, rm_t.numpy(), rtol=1e-12)       # updated in place, as torch's
        np.testing.assert_allclose(rv, rv_t.numpy(), rtol=1e-12)
    assert np.array_equal(F.instance_norm(x), mg.nn.InstanceNorm2d(6)(x))
    for size in (2, 3):
        np.testing.assert_allclose(F.local_response_norm(x, size, 0.4, 0.9, 1.2), TF.local_response_norm(
            torch.tensor(x), size, 0.4, 0.9, 1.2).numpy(), rtol=1e-10, atol=1e-12)
        assert np.array_equal(F.local_response_norm(x, size), mg.nn.LocalResponseNorm(size)(x))


def test_state_dict_keys_repr_and_reset_like_torch():
    pairs = [((2, 4), {}), ((2, 4), {"affine": False}), ((2, 4), {"bias": False})]
    for args, kwargs in pairs:
        assert list(mg.nn.GroupNorm(*args, **kwargs).state_dict()) == list(torch.nn.GroupNorm(*args, **kwargs)
                                                                           .state_dict())
        assert repr(mg.nn.GroupNorm(*args, **kwargs)) == repr(torch.nn.GroupNorm(*args, **kwargs))
    for kwargs in IN_OPTIONS:
        assert list(mg.nn.InstanceNorm2d(3, **kwargs).state_dict()) == list(torch.nn.InstanceNorm2d(3, **kwargs)
                                                                            .state_dict())
        assert repr(mg.nn.InstanceNorm2d(3, **kwargs)) == repr(torch.nn.InstanceNorm2d(3, **kwargs))
    assert repr(mg.nn.LocalResponseNorm(3, 0.5, 0.6, 2.0)) == repr(torch.nn.LocalResponseNorm(3, 0.5, 0.6, 2.0))
    layer = mg.nn.InstanceNorm2d(3, track_running_stats=True)
    layer(_x((2, 3, 4, 4), dtype="float32"))
    assert layer.running_mean.dtype == np.float32 and layer.num_batches_tracked.dtype == np.int64
    layer.reset_running_stats()
    assert not layer.running_mean.any() and (layer.running_var == 1).all()


@pytest.mark.parametrize("name,args", [("GroupNorm", (2, 4)), ("InstanceNorm2d", (3,))])
def test_positional_device_and_dtype_like_torch(name, args):
    torch_params = list(torch.nn.__dict__[name].__init__.__code__.co_varnames)
    values = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}      # with parameters
    positional = list(args) + [values[p] for p in torch_params[len(args) + 1:torch_params.index("device")]]
    layer = getattr(mg.nn, name)(*positional, "cpu", "float64", bias=True)
    reference = getattr(torch.nn, name)(*positional, "cpu", torch.float64, bias=True)
    assert layer.backend == "numpy" and layer.dtype == np.float64 and list(layer.state_dict()) == list(
        reference.state_dict())
    assert getattr(mg.nn, name)(*positional).dtype == np.float32
    with pytest.raises(TypeError, match=rf"is a dtype, not a device.*{name}\("):
        getattr(mg.nn, name)(*positional, "float64")
    if not cupy_available():
        with pytest.raises(BackendUnavailableError):
            getattr(mg.nn, name)(*positional, "cuda")


def test_errors_name_the_layer():
    gn = mg.nn.GroupNorm(2, 4)
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(4\) must be divisible by num_groups \(3\)"):
        mg.nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="GroupNorm: num_groups must be a positive int, got 0"):
        mg.nn.GroupNorm(0, 4)
    with pytest.raises(ValueError, match=r"GroupNorm: expected input of at least 2 dimensions .* got 1-D"):
        gn(np.ones(4, "float32"))
    with pytest.raises(ValueError, match=r"GroupNorm: expected input with 4 channels .* \(2, 6, 3\)"):
        gn(np.ones((2, 6, 3), "float32"))
    with pytest.raises(ValueError, match=r"divisible by num_groups=2, got input of shape \(2, 5, 3\)"):
        mg.nn.GroupNorm(2, 4, affine=False)(np.ones((2, 5, 3), "float32"))
    assert mg.nn.GroupNorm(2, 4, affine=False)(_x((2, 6, 3))).shape == (2, 6, 3)   # as torch: C unused
    with pytest.raises(ValueError, match="GroupNorm: expected more than 1 value per channel when training"):
        mg.nn.GroupNorm(2, 2)(np.ones((1, 2), "float32"))
    with pytest.raises(ValueError, match="GroupNorm: expected spatial dimensions of size > 0"):
        gn(np.ones((2, 4, 0), "float32"))
    with pytest.raises(TypeError, match="GroupNorm: input has dtype float64 but weight has dtype float32"):
        gn(np.ones((2, 4, 3)))
    with pytest.raises(TypeError, match="GroupNorm: expected a floating-point input"):
        gn(np.ones((2, 4, 3), "int64"))
    gn(_x((2, 4, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"GroupNorm: expected grad_out of shape \(2, 4, 3\)"):
        gn.backward(np.ones((2, 4), "float32"))
    with pytest.raises(RuntimeError, match="GroupNorm: backward called before forward"):
        mg.nn.GroupNorm(2, 4).backward(np.ones((2, 4, 3), "float32"))

    inorm = mg.nn.InstanceNorm2d(3, affine=True)
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3-D or 4-D input .* got 2-D"):
        inorm(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected input with 3 channels .* \(2, 4, 3, 3\)"):
        inorm(np.ones((2, 4, 3, 3), "float32"))
    with pytest.raises(ValueError, match="InstanceNorm2d: expected more than 1 spatial element when training"):
        mg.nn.InstanceNorm2d(3)(np.ones((2, 3, 1, 1), "float32"))
    assert mg.nn.InstanceNorm2d(3, track_running_stats=True).eval()(np.ones((2, 3, 1, 1), "float32")).shape == \
        (2, 3, 1, 1)                                               # eval with running statistics: as torch
    with pytest.raises(ValueError, match="InstanceNorm2d: momentum must be a number in"):
        mg.nn.InstanceNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="InstanceNorm2d: eps must be a finite number"):
        mg.nn.InstanceNorm2d(3, eps=-1.0)

    with pytest.raises(ValueError, match="LocalResponseNorm: size must be a positive int"):
        mg.nn.LocalResponseNorm(0)
    with pytest.raises(ValueError, match="LocalResponseNorm: beta must be a finite number"):
        mg.nn.LocalResponseNorm(3, beta=float("nan"))
    with pytest.raises(ValueError, match=r"LocalResponseNorm: expected 3-D or higher input .* got 2-D"):
        mg.nn.LocalResponseNorm(3)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match=r"group_norm: expected weight of shape \(4,\)"):
        F.group_norm(_x((2, 4, 3)), 2, np.ones(3))
    with pytest.raises(ValueError, match="local_response_norm: size must be a positive int"):
        F.local_response_norm(_x((2, 4, 3)), -1)


def test_instance_norm_channel_mismatch_warns_like_torch_without_affine():
    x = _x((2, 4, 3, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = mg.nn.InstanceNorm2d(3)(x)
        torch.nn.InstanceNorm2d(3)(torch.tensor(x))
    assert [str(w.message).startswith("InstanceNorm2d: input's size at dim=1 (4) does not match") for w in caught
            if "InstanceNorm2d" in str(w.message)] == [True]
    assert len([w for w in caught if "does not match num_features" in str(w.message)]) == 2      # torch's and ours
    np.testing.assert_allclose(y, TF.instance_norm(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected input with 3 channels"):
        mg.nn.InstanceNorm2d(3, track_running_stats=True)(x)      # torch: RuntimeError on running_mean's size


def test_instance_norm_empty_inputs():
    """As torch: an empty batch is refused with affine=True (torch: IndexError) and accepted without; minigrad
    also refuses it in training with running statistics, which torch turns into NaN."""
    empty = np.ones((0, 3, 4, 4), "float32")
    with pytest.raises(ValueError, match="InstanceNorm2d: expected a non-empty batch with affine=True"):
        mg.nn.InstanceNorm2d(3, affine=True)(empty)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected a non-empty batch in training with track"):
        mg.nn.InstanceNorm2d(3, track_running_stats=True)(empty)
    ref = torch.nn.InstanceNorm2d(3, track_running_stats=True)
    ref(torch.from_numpy(empty))
    assert torch.isnan(ref.running_mean).all()                     # why: torch's statistics are lost
    layer = mg.nn.InstanceNorm2d(3, track_running_stats=True).eval()
    assert layer(empty).shape == (0, 3, 4, 4) and layer.backward(empty).shape == (0, 3, 4, 4)
    layer = mg.nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
    y = layer(np.ones((2, 3, 0, 4), "float32"))                    # no spatial values: statistics kept
    layer.backward(y)
    assert (layer.running_var == 1).all() and (layer.weight.grad == 0).all()


def test_on_each_backend(backend, xp):
    x = xp.asarray(_x((2, 4, 3, 3), dtype="float32"))
    for layer in (mg.nn.GroupNorm(2, 4), mg.nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
                  mg.nn.LocalResponseNorm(3)):
        y = layer(x)
        dx = layer.backward(xp.ones_like(y))
        arrays = [y, dx] + [p.grad for p in layer.parameters()] + [b for _, b in layer.named_buffers()]
        assert {mg.backend.backend_of(a) for a in arrays} == {backend}
        assert y.dtype == dx.dtype == np.float32


@pytest.mark.parametrize("offset", [0.0, 50.0])
@pytest.mark.parametrize("name", ["GroupNorm", "InstanceNorm2d"])
def test_norm_in_chunks_of_samples_is_the_same_bits_on_any_number_of_threads(name, offset):
    """A batch big enough to be cut into chunks of samples (functional/norm_more.py) gives the same output and
    gradients on 1, 2 and 3 threads, and matches PyTorch, also for data far from zero mean (the backward works
    from sums of dy and dy * x, as PyTorch's)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 64, 16, 16)) + offset             # 8 MiB in float64: several chunks
    dy = rng.standard_normal(x.shape)
    weight, bias = rng.standard_normal(64), rng.standard_normal(64)
    args = (8, 64) if name == "GroupNorm" else (64,)
    kwargs = {} if name == "GroupNorm" else {"affine": True}
    results = []
    saved = mg.get_num_threads()
    try:
        for count in (1, 2, 3):
            mg.set_num_threads(count)
            layer = getattr(mg.nn, name)(*args, dtype="float64", **kwargs)
            layer.load_state_dict({"weight": weight, "bias": bias})
            y = layer(x)
            results.append((y, layer.backward(dy), layer.weight.grad, layer.bias.grad))
    finally:
        mg.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    module = getattr(torch.nn, name)(*args, **kwargs).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight))
        module.bias.copy_(torch.from_numpy(bias))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    for ours, theirs in zip(results[0], (yt, xt.grad, module.weight.grad, module.bias.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-10)
