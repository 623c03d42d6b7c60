"""fastnn.optim: optimizer descriptions (torch's signatures, defaults, checks) and LR schedules
(hand values always, torch's schedulers when torch is importable)."""

import inspect
import json
import math

import numpy as np
import pytest

from fastnn import optim

# API.md's contract: (class, {argument: default}); SGD's lr has no default.
CONTRACT = [
    (optim.SGD, dict(lr=inspect.Parameter.empty, momentum=0.0, nesterov=False, weight_decay=0.0,
                     dampening=0.0)),
    (optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False)),
    (optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False)),
    (optim.Adagrad, dict(lr=1e-2, eps=1e-10, weight_decay=0.0, lr_decay=0.0,
                         initial_accumulator_value=0.0)),
    (optim.RMSprop, dict(lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0,
                         centered=False)),
]


def make(cls, **kw):
    return cls(lr=0.1, **kw) if cls is optim.SGD and "lr" not in kw else cls(**kw)


@pytest.mark.parametrize("cls,defaults", CONTRACT, ids=[c.__name__ for c, _ in CONTRACT])
def test_signature_and_defaults_match_api(cls, defaults):
    params = inspect.signature(cls).parameters
    names = [n for n in params if n != "schedule"]
    assert names == list(defaults)
    for name, default in defaults.items():
        assert params[name].default == default, name
    opt = make(cls)
    hp = opt.hyperparams()
    assert list(hp) == list(defaults)
    for name, default in defaults.items():
        if default is not inspect.Parameter.empty:
            assert hp[name] == default


def test_sgd_requires_lr():
    with pytest.raises(TypeError):
        optim.SGD()


@pytest.mark.parametrize("cls", [c for c, _ in CONTRACT], ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad", [-1e-3, float("nan"), float("inf")])
def test_bad_lr_is_value_error(cls, bad):
    with pytest.raises(ValueError, match="lr"):
        cls(lr=bad)
    opt = make(cls)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = bad


@pytest.mark.parametrize("cls", [c for c, _ in CONTRACT], ids=lambda c: c.__name__)
def test_lr_wrong_type_is_type_error(cls):
    with pytest.raises(TypeError, match="lr"):
        cls(lr="0.1")


@pytest.mark.parametrize("kw,match", [
    (dict(momentum=-0.1), "momentum"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(nesterov=True), "nesterov"),                         # momentum 0
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    (dict(momentum=float("nan")), "momentum"),
])
def test_sgd_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.SGD(0.1, **kw)


def test_sgd_flags_must_be_bool():
    with pytest.raises(TypeError, match="nesterov"):
        optim.SGD(0.1, momentum=0.9, nesterov=1)


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
@pytest.mark.parametrize("betas,exc", [
    ((1.0, 0.999), ValueError), ((0.9, -0.1), ValueError), ((0.9, float("nan")), ValueError),
    ((0.9,), TypeError), (0.9, TypeError), ((0.9, "a"), TypeError),
])
def test_adam_bad_betas(cls, betas, exc):
    with pytest.raises(exc, match="betas"):
        cls(betas=betas)


@pytest.mark.parametrize("cls,kw,match", [
    (optim.Adam, dict(eps=-1e-8), "eps"),
    (optim.AdamW, dict(weight_decay=-0.01), "weight_decay"),
    (optim.Adagrad, dict(lr_decay=-1.0), "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (optim.RMSprop, dict(alpha=-0.5), "alpha"),
    (optim.RMSprop, dict(momentum=float("inf")), "momentum"),
])
def test_other_bad_values(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw)


def test_kinds_and_state_names():
    assert optim.SGD(0.1).kind == "sgd"
    assert optim.SGD(0.1).state_names() == ()
    assert optim.SGD(0.1, momentum=0.9).state_names() == ("momentum_buffer",)
    assert optim.Adam().kind == "adam"
    assert optim.Adam().state_names() == ("exp_avg", "exp_avg_sq")
    assert optim.Adam(amsgrad=True).state_names() == ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    assert optim.AdamW().kind == "adamw"
    assert optim.Adagrad().state_names() == ("sum",)
    assert optim.RMSprop().state_names() == ("square_avg",)
    assert optim.RMSprop(momentum=0.9, centered=True).state_names() == (
        "square_avg", "momentum_buffer", "grad_avg")


def test_state_names_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (optim.SGD(0.1, momentum=0.9), torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
        (optim.Adam(amsgrad=True), torch.optim.Adam, dict(amsgrad=True)),
        (optim.AdamW(), torch.optim.AdamW, {}),
        (optim.Adagrad(), torch.optim.Adagrad, {}),
        (optim.RMSprop(momentum=0.5, centered=True), torch.optim.RMSprop,
         dict(momentum=0.5, centered=True)),
    ]
    for ours, cls, kw in cases:
        p = torch.nn.Parameter(torch.ones(3))
        opt = cls([p], **kw)
        p.grad = torch.ones(3)
        opt.step()
        torch_names = {k for k, v in opt.state[p].items() if k != "step" and v.ndim > 0}
        assert set(ours.state_names()) == torch_names, type(ours).__name__


@pytest.mark.parametrize("opt", [
    optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    optim.Adam(lr=3e-4, betas=(0.8, 0.99), amsgrad=True, schedule=optim.StepLR(5, gamma=0.5)),
    optim.AdamW(schedule=optim.Warmup(10, after=optim.CosineAnnealing(100, per="step"))),
    optim.Adagrad(lr_decay=0.1, initial_accumulator_value=0.1),
    optim.RMSprop(centered=True, momentum=0.3, schedule=optim.InverseScaling(0.25, per="step")),
], ids=lambda o: type(o).__name__)
def test_config_round_trip_through_json(opt):
    config = json.loads(json.dumps(opt.get_config()))
    back = optim.Optimizer.from_config(config)
    assert type(back) is type(opt)
    assert back == opt
    assert back.hyperparams() == opt.hyperparams()
    assert back.schedule == opt.schedule
    assert optim.get(config) == opt


def test_from_config_errors():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.Optimizer.from_config({"kind": "lbfgs", "hyperparams": {}})
    with pytest.raises(TypeError, match="config"):
        optim.Optimizer.from_config("adam")
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.schedule_from_config({"name": "Nope"})


def test_get():
    adam = optim.Adam(lr=0.5)
    assert optim.get(adam) is adam
    for name, cls in [("sgd", optim.SGD), ("Adam", optim.Adam), ("ADAMW", optim.AdamW),
                      ("adagrad", optim.Adagrad), ("rmsprop", optim.RMSprop)]:
        assert type(optim.get(name)) is cls
    assert optim.get("sgd").lr == 0.01
    with pytest.raises(ValueError, match="unknown name 'adamax'"):
        optim.get("adamax")
    with pytest.raises(TypeError, match="optimizer"):
        optim.get(3)


def test_lr_settable_and_repr():
    opt = optim.Adam()
    opt.lr = 0.25
    assert opt.lr == 0.25 and opt.hyperparams()["lr"] == 0.25
    assert opt.lr_at(epoch=7, step=99) == 0.25  # no schedule: the base rate
    assert "Adam(lr=0.25" in repr(opt)
    with pytest.raises(TypeError, match="schedule"):
        optim.Adam(schedule=lambda lr, t: lr)


def test_lr_at_uses_the_counter_of_the_schedule():
    opt = optim.SGD(1.0, schedule=optim.StepLR(2, gamma=0.5, per="epoch"))
    assert opt.lr_at(epoch=3, step=1000) == 0.5
    opt.schedule = optim.StepLR(2, gamma=0.5, per="step")
    assert opt.lr_at(epoch=3, step=5) == 0.25
    opt.lr = 2.0  # a callback changing the base rate moves the whole schedule
    assert opt.lr_at(epoch=0, step=5) == 0.5


# --- schedules ------------------------------------------------------------------------------

def test_schedule_hand_values():
    assert [optim.StepLR(3, gamma=0.1)(1.0, t) for t in (0, 2, 3, 5, 6)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01])
    assert [optim.ExponentialLR(0.5)(2.0, t) for t in range(4)] == [2.0, 1.0, 0.5, 0.25]
    assert [optim.InverseScaling(0.5)(1.0, t) for t in (0, 3, 8)] == pytest.approx(
        [1.0, 0.5, 1 / 3])
    cos = optim.CosineAnnealing(T_max=4, eta_min=0.1)
    assert [cos(1.1, t) for t in (0, 2, 4, 6, 8)] == pytest.approx([1.1, 0.6, 0.1, 0.6, 1.1])
    warm = optim.Warmup(4, after=optim.ExponentialLR(0.5, per="step"))
    assert [warm(1.0, t) for t in range(7)] == pytest.approx(
        [0.25, 0.4375, 0.625, 0.8125, 1.0, 0.5, 0.25])
    assert optim.Warmup(2)(1.0, 10) == 1.0


def test_schedules_are_pure():
    s = optim.CosineAnnealing(10)
    first = [s(0.3, t) for t in range(20)]
    assert [s(0.3, t) for t in reversed(range(20))][::-1] == first


@pytest.mark.parametrize("make,match", [
    (lambda: optim.StepLR(0), "step_size"),
    (lambda: optim.StepLR(2, gamma=0.0), "gamma"),
    (lambda: optim.ExponentialLR(float("nan")), "gamma"),
    (lambda: optim.InverseScaling(-0.5), "power"),
    (lambda: optim.CosineAnnealing(0), "T_max"),
    (lambda: optim.CosineAnnealing(5, eta_min=-1.0), "eta_min"),
    (lambda: optim.Warmup(0), "warmup_steps"),
    (lambda: optim.Warmup(3, after=optim.StepLR(2, per="epoch")), "after"),
    (lambda: optim.StepLR(2, per="batch"), "per"),
])
def test_schedule_bad_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_bad_types():
    with pytest.raises(TypeError, match="step_size"):
        optim.StepLR(2.5)
    with pytest.raises(TypeError, match="after"):
        optim.Warmup(3, after=lambda lr, t: lr)
    with pytest.raises(ValueError, match="t"):
        optim.StepLR(2)(1.0, -1)


def _torch_lrs(torch, make_sched, steps, lr=0.7):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("case", ["step", "exp", "cos", "cos_past_tmax", "warmup", "invscaling"])
def test_schedules_match_torch(case):
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    n = 25
    ours, theirs = {
        "step": (optim.StepLR(4, gamma=0.3), lambda o: S.StepLR(o, 4, gamma=0.3)),
        "exp": (optim.ExponentialLR(0.9), lambda o: S.ExponentialLR(o, 0.9)),
        "cos": (optim.CosineAnnealing(24, eta_min=0.01),
                lambda o: S.CosineAnnealingLR(o, 24, eta_min=0.01)),
        "cos_past_tmax": (optim.CosineAnnealing(10, eta_min=0.05),
                          lambda o: S.CosineAnnealingLR(o, 10, eta_min=0.05)),
        "warmup": (optim.Warmup(6),
                   lambda o: S.LinearLR(o, start_factor=1 / 6, total_iters=6)),
        "invscaling": (optim.InverseScaling(0.5),
                       lambda o: S.LambdaLR(o, lambda t: 1 / (t + 1) ** 0.5)),
    }[case]
    expected = _torch_lrs(torch, theirs, n)
    np.testing.assert_allclose([ours(0.7, t) for t in range(n)], expected, rtol=1e-6, atol=1e-9)


def test_warmup_then_schedule_matches_torch_sequential():
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    w = 5

    def theirs(o):
        return S.SequentialLR(o, [S.LinearLR(o, start_factor=1 / w, total_iters=w),
                                  S.StepLR(o, 3, gamma=0.5)], milestones=[w])

    ours = optim.Warmup(w, after=optim.StepLR(3, gamma=0.5, per="step"))
    expected = _torch_lrs(torch, theirs, 20, lr=0.4)
    np.testing.assert_allclose([ours(0.4, t) for t in range(20)], expected, rtol=1e-6)


def test_sklearn_invscaling_formula():
    # sklearn's SGD solver: learning_rate_init / (time_step + 1) ** power_t, time_step from 0.
    s = optim.InverseScaling(power=0.25)
    assert s(0.01, 15) == pytest.approx(0.01 / 16 ** 0.25)
    assert math.isclose(s(0.01, 0), 0.01)
