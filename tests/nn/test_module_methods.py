"""torch.nn.Module's tree methods on a Layer (nn/module_tree.py), against a torch twin: walking with recurse
and prefixes, registering and looking up by dotted path, casting and moving, forward hooks."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import BatchNorm1d, Linear, Parameter, ReLU, Sequential

torch = pytest.importorskip("torch")


def _pair():
    ours = Sequential(Linear(3, 4), BatchNorm1d(4), ReLU(), Sequential(Linear(4, 2)))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(),
                                 torch.nn.Sequential(torch.nn.Linear(4, 2)))
    return ours, theirs


def test_walking_matches_torch():
    ours, theirs = _pair()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_parameters(prefix="m")] == [n for n, _ in theirs.named_parameters(prefix="m")]
    assert [n for n, _ in ours[0].named_parameters(recurse=False)] == ["weight", "bias"]
    assert ours.parameters(recurse=False) == [] and len(list(theirs.parameters(recurse=False))) == 0
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert len(ours.buffers()) == len(list(theirs.buffers()))
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_modules(prefix="net")] == [n for n, _ in theirs.named_modules(prefix="net")]


def test_shared_layers_are_listed_once_unless_asked():
    shared = Linear(2, 2)
    model = Sequential(shared, ReLU(), shared)
    twin_shared = torch.nn.Linear(2, 2)
    twin = torch.nn.Sequential(twin_shared, torch.nn.ReLU(), twin_shared)
    assert len(model.parameters()) == len(list(twin.parameters())) == 2
    assert [n for n, _ in model.named_modules(remove_duplicate=False)] == \
        [n for n, _ in twin.named_modules(remove_duplicate=False)]
    assert [n for n, _ in model.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in twin.named_parameters(remove_duplicate=False)]


def test_registering_and_looking_up_by_path_match_torch():
    ours, theirs = _pair()
    ours.add_module("head", Linear(2, 1))
    theirs.add_module("head", torch.nn.Linear(2, 1))
    ours[3].register_parameter("scale", Parameter(np.ones(2, "float32")))
    theirs[3].register_parameter("scale", torch.nn.Parameter(torch.ones(2)))
    ours.register_module("tail", ReLU())
    theirs.register_module("tail", torch.nn.ReLU())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.get_submodule("3.0") is ours[3][0] and ours.get_submodule("") is ours
    assert ours.get_parameter("3.scale") is ours[3].scale
    assert ours.get_buffer("1.running_mean") is ours[1].running_mean
    replacement = Linear(4, 2)
    ours.set_submodule("3.0", replacement)
    assert ours[3][0] is replacement
    with pytest.raises(AttributeError, match=r"Sequential has no sub-layer 'nine' \(looking for '3.nine.x'"):
        ours.get_submodule("3.nine.x")
    with pytest.raises(AttributeError, match="Linear has no parameter 'gamma'"):
        ours.get_parameter("0.gamma")
    with pytest.raises(TypeError, match="add_module: 'x' must be a minigrad Layer, got Linear"):
        ours.add_module("x", torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match="register_parameter: 'p' must be a minigrad Parameter"):
        ours.register_parameter("p", np.ones(2))
    with pytest.raises(KeyError, match="contain no '.'"):
        ours.add_module("a.b", ReLU())


def test_casting_and_moving():
    model = Sequential(Linear(3, 2), BatchNorm1d(2))
    assert model.double() is model and all(p.dtype == np.float64 for p in model.parameters())
    assert model[1].running_var.dtype == np.float64 and model[1].num_batches_tracked.dtype == np.int64
    assert model.float().dtype == np.float32 and model.half().dtype == np.float16
    assert model.cpu().backend == "numpy"
    with pytest.raises(NotImplementedError, match="device=3 is not supported"):
        model.cuda(3)


def test_forward_hooks_see_and_replace_like_torch():
    ours, theirs = _pair()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    seen, seen_t = {}, {}
    handle = ours[2].register_forward_hook(lambda layer, args, out: seen.update(relu=out.copy()))   # -> None
    theirs[2].register_forward_hook(lambda m, args, out: seen_t.update(relu=out.detach().numpy().copy()))
    ours[0].register_forward_pre_hook(lambda layer, args: (args[0] * 2,))
    theirs[0].register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    ours[3].register_forward_hook(lambda layer, args, out: out + 1)
    theirs[3].register_forward_hook(lambda m, args, out: out + 1)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    y, y_t = ours(x), theirs(torch.tensor(x))
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen["relu"], seen_t["relu"], rtol=1e-5, atol=1e-6)
    handle.remove()
    seen.clear()
    ours(x)
    assert seen == {}
    with pytest.raises(TypeError, match="a hook must be callable"):
        ours.register_forward_hook(3)


def test_a_hooked_model_still_backwards_the_right_forward():
    mg.manual_seed(0)
    model = Sequential(Linear(3, 4, dtype="float64"), ReLU(), Linear(4, 2, dtype="float64"))
    loss = mg.nn.MSELoss()
    x, target = np.random.default_rng(1).standard_normal((5, 3)), np.zeros((5, 2))
    loss(model(x), target)
    model.backward(loss.backward())
    reference = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    features = []
    with model[1].register_forward_hook(lambda layer, args, out: features.append(out)):
        loss(model(x), target)
        model(x * 3)
        model.backward(loss.backward())
    assert len(features) == 2
    assert all(np.array_equal(p.grad, g) for p, g in zip(model.parameters(), reference))
