"""End-to-end parity with PyTorch: whole networks, their gradients and several optimizer steps.

LeNet-5, vgg_small (BatchNorm, Dropout off) and ResNet-20 (a Graph of residual-block Graphs) have
PyTorch twins (tests/support/torch_twins.py) with the same state-dict names. Torch initialises the twin
(BatchNorm affine parameters and running statistics randomised so eval mode is not an identity),
the weights are copied into minigrad with load_state_dict, and then:

1. forward output, CrossEntropy loss and every parameter gradient (and the BatchNorm running
   statistics after that forward) match torch in the same dtype: float64 to 1e-10, float32 to 1e-4.
2. all weights and buffers after 5 steps of SGD(lr=0.05, momentum=0.9, nesterov=True,
   weight_decay=5e-4) and, separately, 5 steps of AdamW(lr=1e-3, weight_decay=1e-2) match:
   * float64: free-running, minigrad float64 vs torch float64, 1e-10, train and eval BatchNorm.
   * float32: minigrad float32 vs torch *float64* started from the same (float32) weights, 1e-4.
     Why not torch float32: over several steps of train-mode BatchNorm with a batch of 4, torch's own
     float32 run departs from its float64 run by up to ~2e-3 (measured; minigrad's float32 stayed
     within ~3e-7 of it), so the float64 trajectory is the meaningful reference.
     In train mode each step starts both models from the same weights (teacher forcing): a
     float32 ReLU/max-pool decision within one rounding error of a tie may legitimately go the
     other way, and train-mode BatchNorm plus large steps amplify such a flip chaotically; with
     forcing each step's update is compared on its own. Eval mode (and LeNet) run free.
     AdamW runs with eps=1e-3 in float32: with eps=1e-8 Adam's first step is lr*sign(g), which turns
     float32 rounding noise in near-zero gradients into full +-lr steps in any framework.
Tolerances are relative to each tensor's scale: |ours - ref| <= rtol * (|ref| + max|ref|); the float64
AdamW weights get 1e-9, since dividing by sqrt(v) + eps magnifies the rounding of gradients near eps.

With forcing (weights, BatchNorm buffers and optimizer state), every step also runs a float64
minigrad model (exact to 1e-10, part 1) on the same weights and compares the discrete decisions
(ReLU masks, max-pool argmaxes): a step where float32 decided a near-tie the other way is not
compared (at most 2 of the 5 may be such steps).
The seed is fixed (0). Even with forcing, a float32 train-mode step can hit such a near-tie: for two
of the seeds 1-3 one ResNet-20 SGD step (of 5) had a gradient ~1e-2 off in float32 while our float64
run on the same weights matched torch to 1e-14. If a kernel change ever moves float32 rounding enough to fail
a float32 train-mode case here, check the float64 cases first: they are the exactness proof.
"""
import numpy as np
import pytest

import minigrad as mg

torch = pytest.importorskip("torch")
from support import torch_twins  # noqa: E402  (tests/support/torch_twins.py)

F = torch.nn.functional
RTOL = {"float64": 1e-10, "float32": 1e-4}
BATCH = 4
STEPS = 5

MODELS = {
    "lenet5": (lambda dtype: mg.models.lenet5(dtype=dtype), torch_twins.lenet5, (1, 28, 28)),
    "vgg_small": (lambda dtype: mg.models.vgg_small(dropout=0.0, dtype=dtype),
                  lambda: torch_twins.vgg_small(dropout=0.0), (3, 32, 32)),
    "resnet20": (lambda dtype: mg.models.resnet20(dtype=dtype), torch_twins.ResNet20, (3, 32, 32)),
}
CASES = [("lenet5", "float64", "train"), ("lenet5", "float32", "train")] + [
    (model, dtype, mode) for model in ("vgg_small", "resnet20") for dtype in ("float64", "float32")
    for mode in ("train", "eval")]
CASE_IDS = [f"{m}-{d}-{b}" for m, d, b in CASES]


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One thread on both sides.

    torch: its OpenMP threads collapse when the cores are shared (CI, the thread pool of minigrad's
    own kernels); one thread keeps the reference runs fast and steady.
    minigrad: its thread count sets how the batch is chunked, so it moves float32 rounding, and with
    it which near-ties a float32 ReLU decides which way. Measured: with 2 threads, ResNet-20 AdamW
    step 2 (seed 0) flips one ReLU of layer3.1.relu1 whose input is within rounding of 0 (the float64
    model does not), which moves one weight of layer3.0.conv2 by 3e-4 relative; with 1 thread no mask
    flips. One thread makes these float32 cases the same on every machine whatever its core count;
    1, 2 and 3 threads are checked against each other in tests/test_conv_fast_paths.py."""
    previous_torch, previous_ours = torch.get_num_threads(), mg.get_num_threads()
    torch.set_num_threads(1)
    mg.set_num_threads(1)
    yield
    torch.set_num_threads(previous_torch)
    mg.set_num_threads(previous_ours)


def _close(ours, ref, dtype, what, rtol=None):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    ours = np.asarray(ours)
    assert ours.shape == ref.shape, what
    if ref.dtype.kind != "f":                       # num_batches_tracked
        np.testing.assert_array_equal(ours, ref, err_msg=what)
        return
    assert ours.dtype == np.dtype(dtype), f"{what}: dtype {ours.dtype}, expected {dtype}"
    rtol = rtol or RTOL[dtype]
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    np.testing.assert_allclose(ours.astype("float64"), ref.astype("float64"), rtol=rtol, atol=rtol * scale,
                               err_msg=what)


def _compare_state(model, twin, dtype, when, rtol=None):
    ref = twin.state_dict()
    ours = model.state_dict()
    assert sorted(ours) == sorted(ref)
    for key, value in ours.items():
        _close(value, ref[key], dtype, f"{key} {when}", rtol)


def _setup(name, dtype, mode, twin_dtype=None, seed=0):
    """(minigrad model, torch twin, batches); both models hold the same weights."""
    build, build_twin, in_shape = MODELS[name]
    torch.manual_seed(seed)
    twin = torch_twins.randomize_batchnorm(build_twin(), seed)          # float32 weights
    model = build(dtype)
    result = model.load_state_dict(torch_twins.to_numpy_state(twin.to(getattr(torch, dtype))))
    assert result.missing_keys == [] and result.unexpected_keys == []
    twin = twin.to(getattr(torch, twin_dtype or dtype))
    twin.train(mode == "train")
    model.train(mode == "train")
    rng = np.random.default_rng(seed + 1)
    batches = [(rng.standard_normal((BATCH,) + in_shape).astype(dtype), rng.integers(0, 10, BATCH))
               for _ in range(STEPS)]
    return model, twin, batches


def _step_both(model, twin, criterion, x, target, after_forward=None):
    """Forward, loss and backward in both frameworks; returns (logits, loss) of each."""
    y = model(x)
    if after_forward is not None:
        after_forward()
    loss = criterion(y, target)
    model.backward(criterion.backward())
    twin_dtype = next(twin.parameters()).dtype
    yt = twin(torch.from_numpy(x).to(twin_dtype))
    loss_t = F.cross_entropy(yt, torch.from_numpy(target))
    loss_t.backward()
    return (y, loss), (yt, loss_t)


@pytest.mark.parametrize("name,dtype,mode", CASES, ids=CASE_IDS)
def test_forward_loss_and_gradients_match_torch(name, dtype, mode):
    model, twin, batches = _setup(name, dtype, mode)
    x, target = batches[0]
    criterion = mg.nn.CrossEntropyLoss()
    (y, loss), (yt, loss_t) = _step_both(model, twin, criterion, x, target)
    _close(y, yt, dtype, "logits")
    assert np.ndim(loss) == 0
    _close(loss, loss_t, dtype, "loss")
    grads = dict(model.named_parameters())
    for key, param in twin.named_parameters():
        _close(grads[key].grad, param.grad, dtype, f"gradient of {key}")
    _compare_state(model, twin, dtype, "after one forward")   # running statistics (train mode)


def _optimizers(kind, dtype, model, twin):
    if kind == "sgd":
        options = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        return mg.optim.SGD(model.parameters(), **options), torch.optim.SGD(twin.parameters(), **options)
    options = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8 if dtype == "float64" else 1e-3, weight_decay=1e-2)
    return mg.optim.AdamW(model.parameters(), **options), torch.optim.AdamW(twin.parameters(), **options)


def _decisions(model):
    """The discrete choices of the last forward: each ReLU's mask and each max pool's argmax, by name."""
    from minigrad.nn.pooling import ReluAfterPool
    choices = {}
    for name, layer in model.named_modules():
        if isinstance(layer, mg.nn.ReLU) and isinstance(layer._cache[0], np.ndarray):
            choices[name] = np.asarray(layer._cache[0]).copy()          # (mask, the input's dtype)
        elif isinstance(layer, mg.nn.MaxPool2d):
            saved = layer._cache
            if isinstance(saved, ReluAfterPool):      # ran before its ReLU (nn/fusion.py): argmax and the mask
                choices[name + " relu"] = saved.mask.copy()
                saved = saved.pool
            choices[name] = np.asarray(saved[0]).copy()
    return choices


def _float64_decisions(name, twin, x, mode):
    """The choices a float64 minigrad model (exact to 1e-10, tested above) makes on the twin's weights."""
    model = MODELS[name][0]("float64")
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    model.train(mode == "train")
    model(x.astype("float64"))
    return _decisions(model)


def _force_same_optimizer_state(model, twin, opt, opt_t, dtype):
    """Teacher forcing of the optimizer: the twin's momentum / Adam moments, rounded to `dtype`, in both."""
    twin_params = dict(twin.named_parameters())
    with torch.no_grad():
        for name, param in model.named_parameters():
            theirs = opt_t.state.get(twin_params[name], {})
            for key, value in theirs.items():
                if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim > 0:
                    value.copy_(value.to(getattr(torch, dtype)).to(value.dtype))
                    opt.state[param][key][...] = value.numpy().astype(dtype)


def _force_same_weights(model, twin, dtype):
    """Teacher forcing: round the twin's float64 state to `dtype` and give it to both models."""
    with torch.no_grad():
        for tensor in list(twin.parameters()) + list(twin.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(getattr(torch, dtype)).to(tensor.dtype))
    model.load_state_dict({k: (v.numpy().astype(dtype) if v.is_floating_point() else v.numpy())
                           for k, v in twin.state_dict().items()})


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("name,dtype,mode", CASES, ids=CASE_IDS)
def test_weights_after_five_steps_match_torch(name, dtype, mode, optimizer):
    model, twin, batches = _setup(name, dtype, mode, twin_dtype="float64")
    opt, opt_t = _optimizers(optimizer, dtype, model, twin)
    criterion = mg.nn.CrossEntropyLoss()
    forcing = dtype == "float32" and mode == "train" and name != "lenet5"
    ours, flipped_steps, flipped = {}, [], []
    for step, (x, target) in enumerate(batches):
        if forcing:
            _force_same_weights(model, twin, dtype)
            _force_same_optimizer_state(model, twin, opt, opt_t, dtype)
            reference = _float64_decisions(name, twin, x, mode)
        opt.zero_grad()
        opt_t.zero_grad()
        (_, loss), (_, loss_t) = _step_both(model, twin, criterion, x, target,
                                            after_forward=lambda: ours.update(_decisions(model)))
        _close(loss, loss_t, dtype, f"loss at step {step}")
        opt.step()
        opt_t.step()
        if forcing:
            flipped = [key for key in reference if not np.array_equal(reference[key], ours[key])]
            if flipped:
                # A float32 ReLU input or max-pool candidate within rounding of a tie went the other
                # way than in float64 (seen: a BatchNorm output of -2.2e-7 in float64, +1.3e-7 in
                # float32, scale 5.5, at a ReLU of vgg_small). That step's gradients legitimately
                # differ; the next step starts again from the forced state.
                flipped_steps.append((step, flipped))
                continue
            _compare_state(model, twin, dtype, f"after {optimizer} step {step}")
    assert len(flipped_steps) <= 2, f"float32 decisions differ from float64 at too many steps: {flipped_steps}"
    if flipped:
        return                                          # the last step was one of them
    rtol = 1e-9 if dtype == "float64" and optimizer == "adamw" else None
    _compare_state(model, twin, dtype, f"after {STEPS} {optimizer} steps", rtol)
