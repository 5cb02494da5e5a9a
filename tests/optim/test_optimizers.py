"""mg.optim.SGD/Adam/AdamW/RMSprop against torch.optim (float64, several steps, every option),
param groups, state dicts, backend/dtype following, the strict backend and argument errors."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import optim
from minigrad.nn import Parameter
from support.strict_backend import StrictArray, assert_strict, strict_layer, to_strict
from support.grads import set_grad

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 1, 3)]

SGD_CASES = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True),
    dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=0.02, maximize=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True),
]
ADAM_CASES = [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99)),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, weight_decay=0.05, amsgrad=True, eps=1e-6),
    dict(lr=0.01, maximize=True, weight_decay=0.01),
    dict(lr=0.01, betas=(0.0, 0.5), amsgrad=True, maximize=True),
]
RMSPROP_CASES = [
    dict(),
    dict(lr=0.01, alpha=0.9),
    dict(lr=0.01, momentum=0.9),
    dict(lr=0.01, centered=True),
    dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
    dict(lr=0.005, weight_decay=0.01, eps=1e-4, maximize=True),
    dict(lr=0.005, centered=True, maximize=True, alpha=0.5),
]
CASES = ([("SGD", c) for c in SGD_CASES] + [("Adam", c) for c in ADAM_CASES]
         + [("AdamW", c) for c in ADAM_CASES] + [("RMSprop", c) for c in RMSPROP_CASES])


def _ids(cases):
    return [name + "-" + ("-".join(f"{k}={v}" for k, v in c.items()) or "default") for name, c in cases]


def _torch_opt(name, params, kwargs):
    return getattr(torch.optim, name)(params, foreach=False, **kwargs)


def _pair(rng, shapes=SHAPES, dtype="float64"):
    """The same initial values as minigrad Parameters and torch leaf tensors."""
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    mg_params = [Parameter(v.copy()) for v in values]
    t_params = [torch.tensor(v.copy(), requires_grad=True) for v in values]
    return mg_params, t_params


def _set_grads(rng, mg_params, t_params):
    for p, t in zip(mg_params, t_params):
        g = rng.standard_normal(p.shape).astype(p.dtype)
        set_grad(p, g)
        t.grad = torch.tensor(g.copy())


def _assert_close(mg_params, t_params, rtol=1e-10, atol=1e-12, what=""):
    for i, (p, t) in enumerate(zip(mg_params, t_params)):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{what} param {i}")


def _assert_state_close(mg_opt, t_opt, mg_params, t_params):
    for i, (p, t) in enumerate(zip(mg_params, t_params)):
        ours, theirs = mg_opt.state.get(p, {}), t_opt.state.get(t, {})
        assert set(ours) == set(theirs), f"state names of param {i}: {set(ours)} vs torch {set(theirs)}"
        for key, value in theirs.items():
            if key == "step":
                assert ours[key] == int(value.item())
            else:
                np.testing.assert_allclose(ours[key], value.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name,kwargs", CASES, ids=_ids(CASES))
def test_matches_torch(name, kwargs, rng):
    mg_params, t_params = _pair(rng)
    mg_opt = getattr(optim, name)(mg_params, **kwargs)
    t_opt = _torch_opt(name, t_params, kwargs)
    for step in range(6):
        _set_grads(rng, mg_params, t_params)
        mg_opt.step()
        t_opt.step()
        _assert_close(mg_params, t_params, what=f"step {step}")
    _assert_state_close(mg_opt, t_opt, mg_params, t_params)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
                                         ("AdamW", dict(lr=0.01, amsgrad=True)),
                                         ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_float32_matches_torch_and_keeps_dtype(name, kwargs, rng):
    mg_params, t_params = _pair(rng, dtype="float32")
    mg_opt = getattr(optim, name)(mg_params, **kwargs)
    t_opt = _torch_opt(name, t_params, kwargs)
    for _ in range(4):
        _set_grads(rng, mg_params, t_params)
        mg_opt.step()
        t_opt.step()
    _assert_close(mg_params, t_params, rtol=1e-5, atol=1e-6)
    for p in mg_params:
        assert p.dtype == np.float32
        for value in mg_opt.state[p].values():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32


def test_linear_model_with_param_groups_matches_torch(rng):
    """A small MLP trained through its own backward, two groups with different lr and weight decay."""
    model = mg.nn.Linear(4, 3, dtype="float64")
    t_model = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        t_model.weight.copy_(torch.tensor(model.weight.data))
        t_model.bias.copy_(torch.tensor(model.bias.data))
    groups = lambda w, b: [{"params": [w], "lr": 0.1, "weight_decay": 0.01}, {"params": [b]}]  # noqa: E731
    mg_opt = optim.SGD(groups(model.weight, model.bias), lr=0.01, momentum=0.9, nesterov=True)
    t_opt = torch.optim.SGD(groups(t_model.weight, t_model.bias), lr=0.01, momentum=0.9, nesterov=True,
                            foreach=False)
    for _ in range(5):
        x = rng.standard_normal((6, 4))
        mg_opt.zero_grad()
        t_opt.zero_grad()
        y = model(x)
        model.backward(2 * y / y.size)                      # d/dy of mean(y**2)
        (t_model(torch.tensor(x)) ** 2).mean().backward()
        mg_opt.step()
        t_opt.step()
    _assert_close([model.weight, model.bias], [t_model.weight, t_model.bias])
    assert [g["lr"] for g in mg_opt.param_groups] == [0.1, 0.01]
    assert mg_opt.param_groups[1]["weight_decay"] == 0.0


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01)), ("RMSprop", dict(momentum=0.9, centered=True)),
                                         ("SGD", dict(lr=0.1, momentum=0.9))])
def test_param_groups_with_different_options_match_torch(name, kwargs, rng):
    mg_params, t_params = _pair(rng)
    opts = []
    for params in (mg_params, t_params):
        groups = [{"params": params[:1], "lr": 0.003}, {"params": params[1:], "weight_decay": 0.1}]
        opts.append(getattr(optim, name)(groups, **kwargs) if params is mg_params
                    else _torch_opt(name, groups, kwargs))
    for _ in range(4):
        _set_grads(rng, mg_params, t_params)
        for opt in opts:
            opt.step()
    _assert_close(mg_params, t_params)


def _structure(sd):
    return {"state": {i: sorted(s) for i, s in sd["state"].items()},
            "param_groups": [(sorted(k for k in g if k != "params"), g["params"]) for g in sd["param_groups"]]}


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(amsgrad=True)),
                                         ("AdamW", dict()), ("RMSprop", dict(centered=True, momentum=0.3))])
def test_state_dict_has_torch_structure(name, kwargs, rng):
    mg_params, t_params = _pair(rng)
    groups = lambda ps: [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5}]  # noqa: E731
    mg_opt = getattr(optim, name)(groups(mg_params), **kwargs)
    t_opt = _torch_opt(name, groups(t_params), kwargs)
    _set_grads(rng, mg_params, t_params)
    mg_opt.step()
    t_opt.step()
    ours, theirs = mg_opt.state_dict(), t_opt.state_dict()
    assert set(ours) == {"state", "param_groups"}
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in theirs["param_groups"]]
    assert {i: sorted(s) for i, s in ours["state"].items()} == {i: sorted(s) for i, s in theirs["state"].items()}
    for ours_g, theirs_g in zip(ours["param_groups"], theirs["param_groups"]):
        assert set(ours_g) <= set(theirs_g)
        for key in ours_g:
            if key != "params":
                assert ours_g[key] == theirs_g[key], key


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01)),
                                         ("RMSprop", dict(centered=True, momentum=0.3))])
def test_state_dict_round_trip_continues_identically(name, kwargs, rng):
    params = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    opt = getattr(optim, name)([{"params": params[:1], "lr": 0.02}, {"params": params[1:]}], **kwargs)
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(6)]

    def run(opt, params, steps):
        for step in steps:
            for p, g in zip(params, grads[step]):
                set_grad(p, g)
            opt.step()

    run(opt, params, range(3))
    saved = opt.state_dict()
    clones = [Parameter(p.data.copy()) for p in params]
    fresh = getattr(optim, name)([{"params": clones[:1], "lr": 999.0}, {"params": clones[1:]}], lr=123.0)
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in opt.param_groups]
    run(opt, params, range(3, 6))
    run(fresh, clones, range(3, 6))
    for p, q in zip(params, clones):
        np.testing.assert_array_equal(p.data, q.data)
    # the saved dict is a snapshot: later steps did not change it, and loading copied it
    for index, entry in saved["state"].items():
        for key, value in entry.items():
            if isinstance(value, np.ndarray):
                assert not np.shares_memory(value, fresh.state[clones[index]][key])


def test_load_state_dict_casts_to_param_dtype_and_checks_shapes(rng):
    params = [Parameter(rng.standard_normal((2, 3)).astype("float32"))]
    opt = optim.Adam(params)
    set_grad(params[0], 1)
    opt.step()
    sd = opt.state_dict()
    target = [Parameter(np.zeros((2, 3)))]                    # float64 parameter
    other = optim.Adam(target)
    other.load_state_dict(sd)
    assert other.state[target[0]]["exp_avg"].dtype == np.float64
    wrong = optim.Adam([Parameter(np.zeros((3, 2)))], lr=0.5)
    with pytest.raises(ValueError, match=r"Adam.load_state_dict.*exp_avg.*\(2, 3\).*\(3, 2\)"):
        wrong.load_state_dict(sd)
    assert wrong.state == {} and wrong.param_groups[0]["lr"] == 0.5      # untouched
    with pytest.raises(ValueError, match="2 parameter groups but the optimizer has 1"):
        other.load_state_dict({"state": {}, "param_groups": sd["param_groups"] * 2})
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict but 1"):
        other.load_state_dict({"state": {}, "param_groups": [{**sd["param_groups"][0], "params": [0, 1]}]})


def test_zero_grad_and_none_grads(rng):
    a, b = Parameter(rng.standard_normal(3)), Parameter(rng.standard_normal(2))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    set_grad(a, 1.0)
    b.grad = None                                             # skipped, like torch
    before = b.data.copy()
    opt.step()
    np.testing.assert_array_equal(b.data, before)
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    assert not a.grad.any() and b.grad is None
    opt.zero_grad()                                           # torch's default: set_to_none=True
    assert a.grad is None and b.grad is None


def _model():
    return mg.nn.Linear(3, 2, dtype="float64")


OPTIMIZERS = [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
              lambda ps: optim.SGD(ps, lr=0.1, maximize=True, weight_decay=0.1),
              lambda ps: optim.Adam(ps, amsgrad=True, weight_decay=0.1, maximize=True),
              lambda ps: optim.AdamW(ps, amsgrad=True),
              lambda ps: optim.RMSprop(ps, centered=True, momentum=0.5, weight_decay=0.1, maximize=True)]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=["SGD-nesterov", "SGD-plain", "Adam", "AdamW", "RMSprop"])
def test_strict_backend(make, rng):
    model = strict_layer(_model())
    opt = make(model.parameters())
    for _ in range(3):
        x = to_strict(rng.standard_normal((4, 3)))
        opt.zero_grad()
        y = model(x)
        model.backward(y)
        opt.step()
    for p in model.parameters():
        assert_strict(p.data, "parameter after step")
        assert_strict(p.grad, "gradient after step")
        for key, value in opt.state[p].items():
            if key != "step":
                assert_strict(value, f"optimizer state {key}")
    for entry in opt.state_dict()["state"].values():
        for key, value in entry.items():
            if key != "step":
                assert_strict(value, f"state_dict {key}")


@pytest.mark.parametrize("make", OPTIMIZERS[2:], ids=["Adam", "AdamW", "RMSprop"])
def test_state_follows_model_between_backends_and_dtypes(make, rng):
    model = _model()
    opt = make(model.parameters())
    reference = _model()
    reference.load_state_dict(model.state_dict())
    ref_opt = make(reference.parameters())
    grads = [[rng.standard_normal(p.shape) for p in model.parameters()] for _ in range(4)]

    def step(m, o, g):
        for p, gi in zip(m.parameters(), g):
            set_grad(p, gi)
        o.step()

    step(model, opt, grads[0])
    step(reference, ref_opt, grads[0])
    strict_layer(model)                                       # the model moves to another backend
    step(model, opt, grads[1])
    step(reference, ref_opt, grads[1])
    for p in model.parameters():
        for key, value in opt.state[p].items():
            if key != "step":
                assert_strict(value, f"state {key} after the model moved")
    model.to("numpy")                                         # and back
    step(model, opt, grads[2])
    step(reference, ref_opt, grads[2])
    for p, q in zip(model.parameters(), reference.parameters()):
        assert type(p.data) is np.ndarray
        assert all(type(v) is np.ndarray for k, v in opt.state[p].items() if k != "step")
        np.testing.assert_array_equal(p.data, q.data)
    model.to(dtype="float32")                                 # a dtype change is followed too
    step(model, opt, [g.astype("float32") for g in grads[3]])
    for p in model.parameters():
        assert all(v.dtype == np.float32 for k, v in opt.state[p].items() if k != "step")


def test_load_state_dict_onto_other_backend(rng):
    model = _model()
    opt = optim.Adam(model.parameters())
    for p in model.parameters():
        set_grad(p, rng.standard_normal(p.shape))
    opt.step()
    sd = opt.state_dict()                                     # numpy arrays
    strict_model = strict_layer(_model())
    strict_opt = optim.Adam(strict_model.parameters())
    strict_opt.load_state_dict(sd)
    for p in strict_model.parameters():
        assert_strict(strict_opt.state[p]["exp_avg"], "loaded state")


@pytest.mark.gpu
def test_state_follows_model_to_cupy(rng):
    if not mg.backend.cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    model = _model()
    opt = optim.AdamW(model.parameters(), amsgrad=True)
    for p in model.parameters():
        set_grad(p, rng.standard_normal(p.shape))
    opt.step()
    model.to("cupy")
    for p in model.parameters():
        set_grad(p, 1.0)
    opt.step()
    for p in model.parameters():
        assert mg.backend.backend_of(opt.state[p]["exp_avg"]) == "cupy"


# -- errors --------------------------------------------------------------------------------------------

def _p(shape=(2,)):
    return Parameter(np.zeros(shape))


@pytest.mark.parametrize("make,exc,words", [
    (lambda: optim.SGD([_p()], lr=-0.1), ValueError, ["SGD", "learning rate", "-0.1"]),
    (lambda: optim.Adam([_p()], lr=-1), ValueError, ["Adam", "learning rate"]),
    (lambda: optim.Adam([_p()], betas=(1.0, 0.999)), ValueError, ["Adam", "beta", "index 0"]),
    (lambda: optim.AdamW([_p()], betas=(0.9, -0.1)), ValueError, ["AdamW", "beta", "index 1"]),
    (lambda: optim.Adam([_p()], betas=(0.9,)), ValueError, ["Adam", "betas must be a pair"]),
    (lambda: optim.RMSprop([_p()], alpha=-0.5), ValueError, ["RMSprop", "alpha"]),
    (lambda: optim.SGD([_p()], momentum=-1), ValueError, ["SGD", "momentum"]),
    (lambda: optim.SGD([_p()], weight_decay=-1), ValueError, ["SGD", "weight_decay"]),
    (lambda: optim.SGD([_p()], nesterov=True), ValueError, ["SGD", "nesterov", "momentum > 0"]),
    (lambda: optim.SGD([], lr=0.1), ValueError, ["SGD", "empty parameter list"]),
    (lambda: optim.Adam([{"params": []}]), ValueError, ["Adam", "group 0 is empty"]),
    (lambda: optim.SGD([np.zeros(2)]), TypeError, ["SGD", "ndarray", "not a minigrad Parameter"]),
    (lambda: optim.SGD(_p()), TypeError, ["SGD", "iterable", "Parameter"]),
    (lambda: optim.SGD(_model()), TypeError, ["SGD", "model.parameters()"]),
    (lambda: optim.Adam([Parameter(np.zeros(2, dtype=np.int64))]), TypeError, ["Adam", "floating-point", "int64"]),
])
def test_constructor_errors(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    for word in words:
        assert word in str(info.value)


def test_parameter_in_two_groups_is_refused():
    p = _p()
    with pytest.raises(ValueError, match="SGD: some parameters appear in more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([p, p], lr=0.1)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_gradient_of_wrong_shape_dtype_or_backend(name):
    p = _p((2, 3))
    opt = getattr(optim, name)([_p(), p], lr=0.1)
    before = p.data.copy()
    p.grad = np.ones((3, 2))
    with pytest.raises(ValueError, match=rf"{name}: gradient of parameter 1 has shape \(3, 2\) but the parameter "
                                         r"has shape \(2, 3\)"):
        opt.step()
    p.grad = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=rf"{name}: gradient of parameter 1 has dtype float32 but the parameter "
                                        "has dtype float64"):
        opt.step()
    p.grad = to_strict(np.ones((2, 3)))
    with pytest.raises(mg.BackendMismatchError, match=rf"{name}: parameter 1 lives on numpy but its gradient on "
                                                      "strict"):
        opt.step()
    np.testing.assert_array_equal(p.data, before)
    assert not isinstance(p.data, StrictArray)


def test_step_hooks_run_around_step_like_torch():
    p = Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.5)
    seen = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append(("pre", float(p.data[0]))))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append(("post", float(p.data[0]))))
    set_grad(p, 1.0)
    opt.step()
    pre.remove()
    opt.step()
    assert seen == [("pre", 1.0), ("post", 0.5), ("post", 0.0)]
    with pytest.raises(TypeError, match="SGD: a hook must be callable"):
        opt.register_step_pre_hook(None)
