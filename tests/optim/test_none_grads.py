"""A parameter with no gradient in a step (grad None: not reached by the loss, or reset with set_to_none) is
skipped by the optimizer exactly as PyTorch skips it: no weight decay, no momentum or moment update, and its
step count does not advance. Against torch, float64, every step, several optimizers."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import optim

torch = pytest.importorskip("torch")

OPTIMIZERS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "dampening": 0.3}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.01}),
]
# Steps at which each parameter has no gradient (None), over 8 steps.
MISSING = {0: {2, 3}, 1: {0, 5, 6}, 2: set()}


@pytest.mark.parametrize("name,options", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_a_parameter_without_gradient_is_skipped_like_torch(name, options):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s) for s in ((3, 2), (4,), (2,))]
    ours = [mg.nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.tensor(a)) for a in start]
    opt, opt_t = getattr(optim, name)(ours, **options), getattr(torch.optim, name)(theirs, **options)
    for step in range(8):
        opt.zero_grad()                                   # set_to_none=True, as torch's default
        opt_t.zero_grad()
        for i, (p, p_t) in enumerate(zip(ours, theirs)):
            if step in MISSING[i]:
                continue                                  # this parameter gets no gradient this step
            g = rng.standard_normal(p.shape)
            p.accumulate(g)
            p_t.grad = torch.tensor(g)
        assert [p.grad is None for p in ours] == [p.grad is None for p in theirs]
        opt.step()
        opt_t.step()
        for p, p_t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, p_t.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"step {step}")
    moved = [not np.array_equal(p.data, a) for p, a in zip(ours, start)]
    assert all(moved)


def test_a_parameter_that_never_had_a_gradient_is_untouched():
    p, q = mg.nn.Parameter(np.ones(3)), mg.nn.Parameter(np.ones(2))
    opt = optim.AdamW([p, q], lr=0.1, weight_decay=0.5)
    p.accumulate(np.ones(3))
    opt.step()
    np.testing.assert_array_equal(q.data, np.ones(2))       # no decoupled weight decay without a gradient
    assert q not in opt.state and not np.array_equal(p.data, np.ones(3))
