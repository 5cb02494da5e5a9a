"""Freezing parameters (Parameter.requires_grad, Layer.requires_grad_), as in PyTorch: a frozen
parameter has no gradient (None), none is computed or accumulated for it, optimizers leave it
unchanged, and everything else matches PyTorch with the same parameters frozen (float64, 1e-10)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.functional import conv as conv_module

torch = pytest.importorskip("torch")


def _pair():
    """A small CNN in minigrad and in torch with the same float64 weights (BatchNorm included)."""
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(2), torch.nn.Conv2d(4, 3, 3), torch.nn.Flatten(),
                              torch.nn.Linear(12, 5)).double()
    ours = mg.nn.Sequential(mg.nn.Conv2d(2, 4, 3, padding=1, dtype="float64"), mg.nn.BatchNorm2d(4, dtype="float64"),
                            mg.nn.ReLU(), mg.nn.MaxPool2d(2), mg.nn.Conv2d(4, 3, 3, dtype="float64"), mg.nn.Flatten(),
                            mg.nn.Linear(12, 5, dtype="float64"))
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
    return ours, ref


def _close(a, b):
    np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-13)


def test_parameter_flag():
    p = mg.nn.Parameter(np.ones(3, "float32"), requires_grad=False)
    assert p.requires_grad is False and p.grad is None
    p.zero_grad()                                   # nothing to zero, no error
    p.accumulate(np.ones(3, "float32"))             # a frozen parameter takes nothing
    assert p.grad is None
    assert p.requires_grad_(True) is p and p.grad is None          # trainable again, no gradient yet
    p.accumulate(np.ones(3, "float32"))
    np.testing.assert_array_equal(p.grad, np.ones(3, "float32"))
    with pytest.raises(TypeError, match="requires_grad must be True or False"):
        p.requires_grad = "no"


@pytest.mark.parametrize("frozen", [["0"], ["0", "1"], ["4"], ["6"], ["0", "1", "4"]])
def test_frozen_layers_match_torch_through_three_optimizer_steps(frozen):
    ours, ref = _pair()
    for name in frozen:
        assert ours[int(name)].requires_grad_(False) is ours[int(name)]
        ref[int(name)].requires_grad_(False)
    opt = mg.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    frozen_before = {k: v.copy() for k, v in ours.state_dict().items() if k.split(".")[0] in frozen
                     and "running" not in k and "num_batches" not in k}
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((4, 2, 8, 8))
        target = rng.integers(0, 5, 4)
        criterion = mg.nn.CrossEntropyLoss()
        loss = criterion(ours(x), target)
        opt.zero_grad()
        dx = ours.backward(criterion.backward())
        x_ref = torch.tensor(x, requires_grad=True)
        loss_ref = torch.nn.functional.cross_entropy(ref(x_ref), torch.from_numpy(target))
        opt_ref.zero_grad()
        loss_ref.backward()
        np.testing.assert_allclose(loss, loss_ref.item(), rtol=1e-12)
        _close(dx, x_ref.grad)
        for (name, p), (name_ref, p_ref) in zip(ours.named_parameters(), ref.named_parameters()):
            assert name == name_ref
            assert (p.grad is None) == (p_ref.grad is None) == (not p_ref.requires_grad), name
            if p.grad is not None:
                _close(p.grad, p_ref.grad)
        opt.step()
        opt_ref.step()
    for key, value in ours.state_dict().items():
        _close(value, ref.state_dict()[key])
    for key, value in frozen_before.items():
        assert np.array_equal(ours.state_dict()[key], value), f"{key} moved although frozen"


def test_adam_leaves_a_frozen_parameter_with_a_stale_gradient_alone():
    lin = mg.nn.Linear(3, 2, dtype="float64")
    opt = mg.optim.AdamW(lin.parameters(), lr=0.1, weight_decay=0.1)
    x = np.ones((4, 3))
    lin.backward(np.ones_like(lin(x)))
    lin.weight.requires_grad = False
    before = lin.weight.data.copy()
    opt.step()
    assert np.array_equal(lin.weight.data, before) and lin.weight.grad is None
    assert not np.array_equal(lin.bias.data, 0 * lin.bias.data)


def test_no_weight_gradient_is_computed_and_a_frozen_stem_is_not_run_backward(monkeypatch):
    """Sequential.backward_parameters stops at the first layer with a trainable parameter; a frozen
    conv asks its kernel for no weight gradient."""
    ours, _ = _pair()
    ours[0].requires_grad_(False)
    ours[1].requires_grad_(False)
    ours[4].weight.requires_grad = False
    calls = []
    real = conv_module.conv_backward

    def spy(*args, **kwargs):
        calls.append((kwargs["need_input"], kwargs["need_weight"], kwargs["need_bias"]))
        return real(*args, **kwargs)

    monkeypatch.setattr("minigrad.nn.conv.conv_backward", spy)
    y = ours(np.random.default_rng(0).standard_normal((2, 2, 8, 8)))
    ours.backward_parameters(np.ones_like(y))
    assert calls == [(False, False, True)]          # only the second conv, for its bias; the stem never ran
    assert ours[4].bias.grad.any() and ours[4].weight.grad is None and ours[0].weight.grad is None


def test_graph_with_a_frozen_layer_matches_torch():
    torch.manual_seed(1)
    lin1, lin2 = torch.nn.Linear(4, 4).double(), torch.nn.Linear(4, 3).double()
    lin1.requires_grad_(False)
    graph = mg.nn.Graph()
    x = graph.input("x")
    h = graph.add("lin1", mg.nn.Linear(4, 4, dtype="float64"), x)
    h = graph.add("act", mg.nn.Tanh(), h)
    graph.output(graph.add("lin2", mg.nn.Linear(4, 3, dtype="float64"), h))
    graph.load_state_dict({"lin1.weight": lin1.weight.detach().numpy().copy(), "lin1.bias": lin1.bias.detach().numpy().copy(),
                           "lin2.weight": lin2.weight.detach().numpy().copy(), "lin2.bias": lin2.bias.detach().numpy().copy()})
    graph.lin1.requires_grad_(False)
    data = np.random.default_rng(2).standard_normal((5, 4))
    y = graph(data)
    graph.backward_parameters(np.ones_like(y))
    lin2(torch.tanh(lin1(torch.from_numpy(data)))).sum().backward()
    assert graph.lin1.weight.grad is None
    _close(graph.lin2.weight.grad, lin2.weight.grad)
