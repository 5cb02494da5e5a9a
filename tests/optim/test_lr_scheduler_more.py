"""ExponentialLR, ConstantLR, PolynomialLR, LambdaLR, MultiplicativeLR, CosineAnnealingWarmRestarts, SequentialLR, ChainedScheduler and
ReduceLROnPlateau against torch.optim.lr_scheduler: the lr of every parameter group over 300 steps (bit for
bit), state-dict round trips (through JSON) at step 150 into a fresh optimizer and scheduler, the
constructors' signatures, and argument errors that name the scheduler."""
import inspect
import json
import warnings

import numpy as np
import pytest

from minigrad import optim
from minigrad.nn import Parameter
from minigrad.optim import lr_scheduler as sched

torch = pytest.importorskip("torch")
TORCH = torch.optim.lr_scheduler

STEPS = 300
HALF = 150
NEW = ["ExponentialLR", "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR", "CosineAnnealingWarmRestarts", "SequentialLR",
       "ChainedScheduler", "ReduceLROnPlateau"]


def _lambda_a(epoch):
    return 0.97 ** epoch


def _lambda_b(epoch):
    return 1.0 / (1 + epoch // 25)


class Warmup:
    """A callable object: LambdaLR saves its __dict__ (plain functions are not saved)."""

    def __init__(self, steps):
        self.steps, self.calls = steps, 0

    def __call__(self, epoch):
        self.calls += 1
        return min(1.0, (epoch + 1) / self.steps)


# (id, build(lib, optimizer), how the scheduler is stepped: "plain", "metric" or a list of epochs)
FRACTIONS = [i / 7 for i in range(STEPS)]                         # 7 batches per epoch: epoch + i / 7
MIXED = [None if i % 40 >= 30 else 0.5 * i for i in range(STEPS)]  # step(epoch) interleaved with step()
CASES = [
    ("exponential", lambda L, o: L.ExponentialLR(o, gamma=0.98), "plain"),
    ("constant", lambda L, o: L.ConstantLR(o, factor=0.25, total_iters=40), "plain"),
    ("constant-default", lambda L, o: L.ConstantLR(o), "plain"),
    ("polynomial", lambda L, o: L.PolynomialLR(o, total_iters=200, power=2.0), "plain"),
    ("polynomial-short", lambda L, o: L.PolynomialLR(o), "plain"),
    ("sequential-constant-polynomial", lambda L, o: L.SequentialLR(
        o, [L.ConstantLR(o, factor=0.5, total_iters=10), L.PolynomialLR(o, total_iters=100, power=0.5)],
        milestones=[10]), "plain"),
    ("lambda-one", lambda L, o: L.LambdaLR(o, lr_lambda=_lambda_a), "plain"),
    ("lambda-per-group", lambda L, o: L.LambdaLR(o, [_lambda_a, _lambda_b]), "plain"),
    ("multiplicative", lambda L, o: L.MultiplicativeLR(o, lambda e: 0.99 if e % 3 else 1.015), "plain"),
    ("multiplicative-per-group", lambda L, o: L.MultiplicativeLR(o, [lambda e: 0.995, _lambda_b]), "plain"),
    ("warm-restarts", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=10), "plain"),
    ("warm-restarts-mult2", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.001),
     "plain"),
    ("warm-restarts-float-epoch", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=1e-4),
     FRACTIONS),
    ("warm-restarts-float-epoch-mult1", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=4), FRACTIONS),
    ("warm-restarts-interleaved", lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=6, T_mult=3), MIXED),
    ("sequential-linear-cosine", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=10), L.CosineAnnealingLR(o, T_max=120, eta_min=0.001)],
        milestones=[10]), "plain"),
    ("sequential-linear-exponential", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=20), L.ExponentialLR(o, gamma=0.99)],
        milestones=[20]), "plain"),
    ("sequential-three", lambda L, o: L.SequentialLR(
        o, [L.ExponentialLR(o, gamma=0.9), L.MultiStepLR(o, milestones=[20, 40], gamma=0.5),
            L.LinearLR(o, start_factor=0.5, total_iters=30), L.StepLR(o, step_size=17, gamma=0.7)],
        milestones=[15, 90, 200]), "plain"),
    ("chained-exponential-step", lambda L, o: L.ChainedScheduler(
        [L.ExponentialLR(o, gamma=0.99), L.StepLR(o, step_size=30, gamma=0.5)]), "plain"),
    ("chained-with-optimizer", lambda L, o: L.ChainedScheduler(
        [L.LinearLR(o, start_factor=0.2, total_iters=15), L.MultiplicativeLR(o, lambda e: 0.995)], optimizer=o),
     "plain"),
    ("plateau-min-rel", lambda L, o: L.ReduceLROnPlateau(o, patience=5), "metric"),
    ("plateau-max-abs", lambda L, o: L.ReduceLROnPlateau(o, mode="max", threshold_mode="abs", threshold=0.002,
                                                         patience=3, factor=0.5), "metric"),
    ("plateau-min-abs-cooldown", lambda L, o: L.ReduceLROnPlateau(o, threshold_mode="abs", patience=2, cooldown=4,
                                                                  factor=0.7, min_lr=1e-3), "metric"),
    ("plateau-max-rel-min-lrs", lambda L, o: L.ReduceLROnPlateau(o, mode="max", patience=0, cooldown=1, factor=0.8,
                                                                 min_lr=[0.02, 0.004], eps=1e-6), "metric"),
]
IDS = [case[0] for case in CASES]


def _metrics(maximize):
    """A noisy curve that improves quickly, then slowly, then stalls (seeded)."""
    rng = np.random.default_rng(7)
    t = np.arange(STEPS)
    loss = 1.0 / (1.0 + 0.05 * t) + 0.02 * rng.standard_normal(STEPS)
    values = (1.0 - loss) if maximize else loss
    return [float(v) for v in values]


def _make(lib, build):
    if lib == "torch":
        params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        opt = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.05}], lr=0.1, momentum=0.9)
        return opt, build(TORCH, opt)
    params = [Parameter(np.zeros(2)), Parameter(np.zeros(3))]
    opt = optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.05}], lr=0.1, momentum=0.9)
    return opt, build(sched, opt)


def _stepper(how, case_id):
    """step(i, opt, scheduler): one optimizer step then one scheduler step, the i-th of the run."""
    metrics = _metrics("max" in case_id) if how == "metric" else None

    def step(i, opt, s):
        opt.step()                      # no gradients: a no-op that keeps torch's order check quiet
        if how == "plain":
            s.step()
        elif how == "metric":
            s.step(metrics[i])
        elif how[i] is None:
            s.step()
        else:
            s.step(how[i])
    return step


def _lrs(opt):
    return [group["lr"] for group in opt.param_groups]


def _torch_run(build, step):
    opt, s = _make("torch", build)
    lrs = [_lrs(opt)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(STEPS):
            step(i, opt, s)
            lrs.append(_lrs(opt))
    return lrs


@pytest.mark.parametrize("case_id,build,how", CASES, ids=IDS)
def test_sequence_matches_torch(case_id, build, how):
    step = _stepper(how, case_id)
    theirs = _torch_run(build, step)
    opt, s = _make("mg", build)
    ours = [_lrs(opt)]
    for i in range(STEPS):
        step(i, opt, s)
        ours.append(_lrs(opt))
        assert s.get_last_lr() == ours[-1]
    assert ours == theirs              # bit for bit, every group and step
    assert len({tuple(lrs) for lrs in ours}) >= (2 if case_id.startswith("constant") else 3), \
        "the schedule should move the lr"          # ConstantLR has two values by design


@pytest.mark.parametrize("case_id,build,how", CASES, ids=IDS)
def test_state_dict_round_trip_at_step_150_continues_identically(case_id, build, how):
    step = _stepper(how, case_id)
    theirs = _torch_run(build, step)
    opt, s = _make("mg", build)
    for i in range(HALF):
        step(i, opt, s)
    opt_state = opt.state_dict()
    opt_state["param_groups"] = json.loads(json.dumps(opt_state["param_groups"]))   # checkpoints store JSON
    sched_state = json.loads(json.dumps(s.state_dict()))
    opt2, s2 = _make("mg", build)      # fresh optimizer and scheduler (built at step 0)
    s2.load_state_dict(sched_state)
    opt2.load_state_dict(opt_state)    # the saved lrs
    assert _lrs(opt2) == theirs[HALF]
    for i in range(HALF, STEPS):
        step(i, opt2, s2)
        assert _lrs(opt2) == theirs[i + 1], f"step {i + 1}"
        assert s2.get_last_lr() == theirs[i + 1]


def test_lambda_state_saves_callable_objects_but_not_functions():
    opt, s = _make("mg", lambda L, o: L.LambdaLR(o, [Warmup(40), _lambda_a]))
    t_opt, t_s = _make("torch", lambda L, o: L.LambdaLR(o, [Warmup(40), _lambda_a]))
    for _ in range(12):
        opt.step()
        s.step()
        t_opt.step()
        t_s.step()
    state = json.loads(json.dumps(s.state_dict()))
    assert state["lr_lambdas"] == [{"steps": 40, "calls": 13}, None] == t_s.state_dict()["lr_lambdas"]
    fresh = Warmup(5)
    _, s2 = _make("mg", lambda L, o: L.LambdaLR(o, [fresh, _lambda_a]))
    s2.load_state_dict(state)
    assert (fresh.steps, fresh.calls) == (40, 13)
    assert s2.last_epoch == 12 and s2.get_last_lr() == s.get_last_lr()


def test_plateau_attributes_follow_torch():
    opt, s = _make("mg", lambda L, o: L.ReduceLROnPlateau(o, patience=1, cooldown=2))
    _, t_s = _make("torch", lambda L, o: L.ReduceLROnPlateau(o, patience=1, cooldown=2))
    assert isinstance(s, sched.LRScheduler) and _lrs(opt) == [0.1, 0.05] == s.get_last_lr()
    for value in [1.0, 0.5, 0.6, 0.7, 0.8, 0.4, np.float64(0.9)]:   # a 0-d array/scalar metric is fine
        s.step(value)
        t_s.step(value)
        assert (s.best, s.num_bad_epochs, s.cooldown_counter, s.in_cooldown, s.last_epoch) == \
               (t_s.best, t_s.num_bad_epochs, t_s.cooldown_counter, t_s.in_cooldown, t_s.last_epoch)
        assert s.get_last_lr() == t_s.get_last_lr()
    assert s.get_last_lr() == [0.010000000000000002, 0.005000000000000001]      # one reduction happened
    assert s.is_better(0.3, 0.4) and not s.is_better(0.39999, 0.4)              # rel threshold 1e-4
    assert s.state_dict() == t_s.state_dict()


@pytest.mark.parametrize("name", NEW)
def test_signatures_match_torch(name):
    ours = inspect.signature(getattr(sched, name))
    theirs = inspect.signature(getattr(TORCH, name))
    theirs_params = [p for p in theirs.parameters.values() if p.name != "verbose"]
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.kind, p.default) for p in theirs_params]


def test_new_schedulers_are_reexported_from_lr_scheduler():
    from minigrad.optim import lr_scheduler_base, lr_scheduler_compose, lr_scheduler_decay, lr_scheduler_plateau
    assert sched.LRScheduler is lr_scheduler_base.LRScheduler
    assert sched.ReduceLROnPlateau is lr_scheduler_plateau.ReduceLROnPlateau
    assert sched.SequentialLR is lr_scheduler_compose.SequentialLR
    assert sched.LambdaLR is lr_scheduler_decay.LambdaLR
    assert set(NEW) <= set(sched.__all__)


def _other_optimizer():
    return optim.SGD([Parameter(np.zeros(1))], lr=0.3)


@pytest.mark.parametrize("make,exc,words", [
    (lambda o: sched.ReduceLROnPlateau(o, mode="avg"), ValueError, ["ReduceLROnPlateau", "mode", "'avg'"]),
    (lambda o: sched.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError,
     ["ReduceLROnPlateau", "threshold_mode", "'pct'"]),
    (lambda o: sched.ReduceLROnPlateau(o, factor=1.0), ValueError, ["ReduceLROnPlateau", "factor", "1.0"]),
    (lambda o: sched.ReduceLROnPlateau(o, min_lr=[0.1, 0.2, 0.3]), ValueError,
     ["ReduceLROnPlateau", "expected 2 values for min_lr"]),
    (lambda o: sched.ReduceLROnPlateau(o, patience=-1), ValueError, ["ReduceLROnPlateau", "patience"]),
    (lambda o: sched.ReduceLROnPlateau("sgd"), TypeError, ["ReduceLROnPlateau", "Optimizer", "str"]),
    (lambda o: sched.ReduceLROnPlateau(o).step(), TypeError, ["ReduceLROnPlateau.step", "step(val_loss)"]),
    (lambda o: sched.ReduceLROnPlateau(o).step("low"), TypeError, ["ReduceLROnPlateau.step", "metrics", "str"]),
    (lambda o: sched.ExponentialLR(o, gamma="0.9"), TypeError, ["ExponentialLR", "gamma"]),
    (lambda o: sched.LambdaLR(o, [_lambda_a]), ValueError, ["LambdaLR", "expected 2 lr_lambdas", "got 1"]),
    (lambda o: sched.MultiplicativeLR(o, [_lambda_a] * 3), ValueError, ["MultiplicativeLR", "expected 2"]),
    (lambda o: sched.MultiplicativeLR(o, 0.95), TypeError, ["MultiplicativeLR", "lr_lambda", "float"]),
    (lambda o: sched.LambdaLR(o, [_lambda_a, 0.5]), TypeError, ["LambdaLR", "lr_lambda", "index 1"]),
    (lambda o: sched.LambdaLR("sgd", _lambda_a), TypeError, ["LambdaLR", "Optimizer"]),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=0), ValueError, ["CosineAnnealingWarmRestarts", "T_0"]),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=2.5), ValueError, ["CosineAnnealingWarmRestarts", "T_0"]),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=0), ValueError, ["T_mult"]),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=5, eta_min="0"), TypeError, ["eta_min"]),
    (lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=5).step(-1.5), ValueError,
     ["CosineAnnealingWarmRestarts.step", "epoch must be >= 0"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), sched.StepLR(_other_optimizer(), 2)], [3]),
     ValueError, ["SequentialLR", "schedulers[1]", "StepLR", "another optimizer"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), sched.StepLR(o, 2)], [3, 6]), ValueError,
     ["SequentialLR", "expected 1 milestones", "got 2"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), sched.StepLR(o, 2)], []), ValueError,
     ["SequentialLR", "expected 1 milestones", "got 0"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), sched.StepLR(o, 2), sched.StepLR(o, 3)],
                                  [6, 3]), ValueError, ["SequentialLR", "increasing"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), sched.ReduceLROnPlateau(o)], [3]), ValueError,
     ["SequentialLR", "schedulers[1]", "ReduceLROnPlateau"]),
    (lambda o: sched.SequentialLR(o, [], []), ValueError, ["SequentialLR", "at least one scheduler"]),
    (lambda o: sched.SequentialLR(o, [sched.ExponentialLR(o, 0.9), "cosine"], [3]), TypeError,
     ["SequentialLR", "schedulers[1]", "str"]),
    (lambda o: sched.ChainedScheduler([sched.ExponentialLR(o, 0.9), sched.StepLR(_other_optimizer(), 2)]),
     ValueError, ["ChainedScheduler", "schedulers[1]", "another optimizer"]),
    (lambda o: sched.ChainedScheduler([sched.ExponentialLR(o, 0.9)], optimizer=_other_optimizer()), ValueError,
     ["ChainedScheduler", "schedulers[0]", "another optimizer"]),
    (lambda o: sched.ChainedScheduler([sched.ReduceLROnPlateau(o)]), ValueError,
     ["ChainedScheduler", "ReduceLROnPlateau"]),
    (lambda o: sched.ChainedScheduler(sched.ExponentialLR(o, 0.9)), TypeError, ["ChainedScheduler", "list"]),
])
def test_errors_name_the_scheduler(make, exc, words):
    opt, _ = _make("mg", lambda L, o: None)
    with pytest.raises(exc) as info:
        make(opt)
    for word in words:
        assert word in str(info.value)


def test_load_state_dict_of_another_shape_is_refused():
    _, s = _make("mg", lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9), L.StepLR(o, 2)]))
    _, one = _make("mg", lambda L, o: L.ChainedScheduler([L.ExponentialLR(o, 0.9)]))
    with pytest.raises(ValueError, match="ChainedScheduler.load_state_dict: the state holds 2 inner scheduler"):
        one.load_state_dict(s.state_dict())
    _, lam = _make("mg", lambda L, o: L.LambdaLR(o, _lambda_a))
    state = lam.state_dict()
    state["lr_lambdas"] = [None]
    with pytest.raises(ValueError, match="LambdaLR.load_state_dict: the state holds 1 lr_lambdas"):
        lam.load_state_dict(state)
    _, plateau = _make("mg", lambda L, o: L.ReduceLROnPlateau(o))
    with pytest.raises(ValueError, match="ReduceLROnPlateau: mode must be 'min' or 'max'"):
        plateau.load_state_dict(dict(plateau.state_dict(), mode="lowest"))
