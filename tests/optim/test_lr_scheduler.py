"""Schedulers against torch.optim.lr_scheduler: the lr (and momentum) sequence over 40 steps,
several parameter groups, state-dict round trips (JSON-friendly) and argument errors."""
import json

import numpy as np
import pytest

from minigrad import optim
from minigrad.nn import Parameter
from minigrad.optim import lr_scheduler as sched

torch = pytest.importorskip("torch")

STEPS = 40

CASES = [
    ("StepLR", dict(step_size=7)),
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 30], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=17, eta_min=0.001)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.9, total_iters=12)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=STEPS)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], epochs=4, steps_per_epoch=10, anneal_strategy="linear", pct_start=0.25)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=STEPS + 1, three_phase=True, div_factor=10.0)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=STEPS, cycle_momentum=False)),
]
OPTIMIZERS = [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01)), ("RMSprop", dict(lr=0.02, momentum=0.5))]


def _groups(params):
    return [{"params": params[:1]}, {"params": params[1:], "lr": 0.05}]


def _make(lib, opt_name, opt_kwargs, name, kwargs):
    if lib == "torch":
        params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        opt = getattr(torch.optim, opt_name)(_groups(params), **opt_kwargs)
        return opt, getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    params = [Parameter(np.zeros(2)), Parameter(np.zeros(3))]
    opt = getattr(optim, opt_name)(_groups(params), **opt_kwargs)
    return opt, getattr(sched, name)(opt, **kwargs)


def _snapshot(opt):
    return [(g["lr"], g.get("momentum"), tuple(g["betas"]) if "betas" in g else None) for g in opt.param_groups]


@pytest.mark.parametrize("opt_name,opt_kwargs", OPTIMIZERS, ids=[o for o, _ in OPTIMIZERS])
@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_sequence_matches_torch(name, kwargs, opt_name, opt_kwargs):
    t_opt, t_sched = _make("torch", opt_name, opt_kwargs, name, kwargs)
    opt, s = _make("mg", opt_name, opt_kwargs, name, kwargs)
    ours, theirs = [_snapshot(opt)], [_snapshot(t_opt)]
    for _ in range(STEPS):
        opt.step()
        t_opt.step()                   # no gradients: a no-op that keeps torch's order check quiet
        s.step()
        t_sched.step()
        ours.append(_snapshot(opt))
        theirs.append(_snapshot(t_opt))
        assert s.get_last_lr() == t_sched.get_last_lr()
    assert ours == theirs              # bit-for-bit: the same recursive formulas as torch


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_state_dict_round_trip_resumes_the_schedule(name, kwargs):
    opt, s = _make("mg", "SGD", dict(lr=0.1, momentum=0.9), name, kwargs)
    for _ in range(13):
        opt.step()
        s.step()
    opt_state = opt.state_dict()
    opt_state["param_groups"] = json.loads(json.dumps(opt_state["param_groups"]))  # checkpoints store JSON
    sched_state = json.loads(json.dumps(s.state_dict()))
    opt2, s2 = _make("mg", "SGD", dict(lr=0.1, momentum=0.9), name, kwargs)
    s2.load_state_dict(sched_state)
    opt2.load_state_dict(opt_state)
    for _ in range(STEPS - 14):
        for o, sc in ((opt, s), (opt2, s2)):
            o.step()
            sc.step()
        assert _snapshot(opt) == _snapshot(opt2)
        assert s.get_last_lr() == s2.get_last_lr()


def test_milestones_survive_json():
    opt, s = _make("mg", "SGD", dict(lr=1.0), "MultiStepLR", dict(milestones=[3, 3, 5]))
    state = json.loads(json.dumps(s.state_dict()))
    assert state["milestones"] == [3, 3, 5]
    _, s2 = _make("mg", "SGD", dict(lr=1.0), "MultiStepLR", dict(milestones=[1]))
    s2.load_state_dict(state)
    assert s2.milestones == s.milestones


@pytest.mark.parametrize("make,exc,words", [
    (lambda o: sched.StepLR(o, step_size=0), ValueError, ["StepLR", "step_size"]),
    (lambda o: sched.CosineAnnealingLR(o, T_max=0), ValueError, ["CosineAnnealingLR", "T_max"]),
    (lambda o: sched.LinearLR(o, start_factor=0.0), ValueError, ["LinearLR", "start_factor"]),
    (lambda o: sched.LinearLR(o, end_factor=1.5), ValueError, ["LinearLR", "end_factor"]),
    (lambda o: sched.MultiStepLR(o, milestones=[2.5]), ValueError, ["MultiStepLR", "milestone"]),
    (lambda o: sched.OneCycleLR(o, max_lr=1.0), ValueError, ["OneCycleLR", "total_steps"]),
    (lambda o: sched.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, ["pct_start"]),
    (lambda o: sched.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError,
     ["anneal_strategy"]),
    (lambda o: sched.OneCycleLR(o, max_lr=[1.0, 2.0, 3.0], total_steps=10), ValueError,
     ["OneCycleLR", "expected 2 values for max_lr"]),
    (lambda o: sched.StepLR(o, step_size=2, last_epoch=5), KeyError, ["initial_lr"]),
    (lambda o: sched.StepLR("sgd", step_size=2), TypeError, ["StepLR", "Optimizer", "str"]),
])
def test_errors(make, exc, words):
    opt, _ = _make("mg", "SGD", dict(lr=0.1, momentum=0.9), "StepLR", dict(step_size=1))
    for group in opt.param_groups:
        del group["initial_lr"]
    with pytest.raises(exc) as info:
        make(opt)
    for word in words:
        assert word in str(info.value)


def test_one_cycle_refuses_stepping_past_total_steps_and_momentum_free_optimizers():
    params = [Parameter(np.zeros(2))]
    s = sched.OneCycleLR(optim.SGD(params, lr=0.1, momentum=0.9), max_lr=1.0, total_steps=3)
    for _ in range(3):
        s.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 4 times, but total_steps is 3"):
        s.step()

    class NoMomentum(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1, weight_decay=0.0))

    with pytest.raises(ValueError, match="cycle_momentum=True needs an optimizer with momentum or betas"):
        sched.OneCycleLR(NoMomentum(params), max_lr=1.0, total_steps=3)
