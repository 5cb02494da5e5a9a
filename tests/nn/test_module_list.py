"""ModuleList, ModuleDict and Layer.apply against torch.nn: names in the state dict, parameters, .to,
train/eval, the list/dict protocol, errors; a custom layer built on a ModuleList trains like torch's twin."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import Layer, Linear, ModuleDict, ModuleList, ReLU

torch = pytest.importorskip("torch")


class MLP(Layer):
    """The custom layer of minigrad/nn/module_list.py's docstring."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = ModuleList(Linear(a, b, dtype="float64") for a, b in zip(sizes, sizes[1:]))
        self.heads = ModuleDict({"main": Linear(sizes[-1], 2, dtype="float64"), "aux": ReLU()})

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.heads["main"](self.heads["aux"](x))

    def backward(self, grad):
        grad = self.heads["aux"].backward(self.heads["main"].backward(grad))
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad


class TorchMLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.heads = torch.nn.ModuleDict({"main": torch.nn.Linear(sizes[-1], 2), "aux": torch.nn.ReLU()})

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.heads["main"](self.heads["aux"](x))


def test_state_dict_names_and_gradients_match_torch():
    ours, theirs = MLP([5, 4, 3]), TorchMLP([5, 4, 3]).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 5))
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    out_t.sum().backward()
    out = ours(x)
    dx = ours.backward(np.ones_like(out))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12)
    for (name, p), (name_t, p_t) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == name_t
        np.testing.assert_allclose(p.grad, p_t.grad.numpy(), rtol=1e-12)


def test_to_train_eval_and_zero_grad_reach_the_held_layers():
    model = MLP([3, 3])
    model.to(dtype="float32")
    assert all(p.dtype == np.float32 for p in model.parameters()) and len(model.parameters()) == 4
    model.eval()
    assert not model.layers[0].training and not model.heads["aux"].training


def test_list_protocol_like_torch():
    a, b, c = Linear(1, 1), Linear(1, 2), Linear(1, 3)
    ours, theirs = ModuleList([a, b]), torch.nn.ModuleList([torch.nn.Linear(1, 1), torch.nn.Linear(1, 2)])
    ours.insert(0, c)
    theirs.insert(0, torch.nn.Linear(1, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [layer.weight.shape for layer in ours] == [(3, 1), (1, 1), (2, 1)]
    assert ours[-1] is b and isinstance(ours[1:], ModuleList) and len(ours[1:]) == 2
    del ours[0]
    del theirs[0]
    assert list(ours.state_dict()) == list(theirs.state_dict()) and ours[0] is a
    ours[1] = c
    assert ours[1] is c and c.name == "1"
    ours += [Linear(2, 2)]
    assert len(ours) == 3 and len(ours + ModuleList([a])) == 4
    assert list(reversed(ours))[0].weight.shape == (2, 2)


def test_dict_protocol_like_torch():
    heads = ModuleDict([("a", Linear(1, 1)), ("b", ReLU())])
    assert heads.keys() == ["a", "b"] and "a" in heads and len(heads) == 2 and list(heads) == ["a", "b"]
    heads.update({"c": Linear(1, 2)})
    assert heads.pop("b").__class__ is ReLU and list(heads.state_dict()) == ["a.weight", "a.bias", "c.weight",
                                                                               "c.bias"]
    del heads["a"]
    assert heads.keys() == ["c"] and [type(v) for v in heads.values()] == [Linear]
    heads.clear()
    assert len(heads) == 0


def test_errors_name_the_container():
    with pytest.raises(TypeError, match="ModuleList: entry '0' must be a minigrad Layer, got int"):
        ModuleList([1])
    with pytest.raises(IndexError, match="ModuleList index 2 is out of range for 1 layers"):
        ModuleList([ReLU()])[2]
    with pytest.raises(KeyError, match=r"ModuleDict has no layer 'x'; it has \['a'\]"):
        ModuleDict({"a": ReLU()})["x"]
    with pytest.raises(ValueError, match="invalid layer name 'a.b'"):
        ModuleDict({"a.b": ReLU()})
    with pytest.raises(TypeError, match=r"element #0 should be a \(name, layer\) pair"):
        ModuleDict([ReLU()])
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        ModuleList([ReLU()])(np.ones(2))


def test_apply_visits_children_first_like_torch():
    seen, seen_t = [], []
    MLP([2, 2, 2]).apply(lambda layer: seen.append(type(layer).__name__))
    TorchMLP([2, 2, 2]).apply(lambda module: seen_t.append(type(module).__name__))
    assert seen[:-1] == seen_t[:-1] and (seen[-1], seen_t[-1]) == ("MLP", "TorchMLP")


def test_apply_initialises_weights_in_place():
    model = mg.nn.Sequential(Linear(3, 4), ReLU(), Linear(4, 2))

    def init(layer):
        if isinstance(layer, Linear):
            layer.weight.data[...] = 0.5
            layer.bias.data[...] = 0.0

    assert model.apply(init) is model
    assert all((layer.weight.data == 0.5).all() for layer in (model[0], model[2]))
