"""Learning-rate schedules: closed forms over epochs, warm-up composition, plateau, state_dict, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import deltanet as dn
from deltanet.optim import (
    SGD,
    Adam,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    get_schedule,
)

BASE = 0.1


def make_opt(lr=BASE):
    return SGD([dn.Parameter(np.ones(2))], lr=lr)


def epoch_lrs(schedule, epochs, metrics=None):
    """The rate used during each epoch 1..epochs, driving the schedule as the trainer does."""
    out = []
    for e in range(epochs):
        assert schedule.optimizer.lr == schedule.lr
        out.append(schedule.lr)
        schedule.step(None if metrics is None else metrics[e])
    return out


def test_constant():
    assert epoch_lrs(ConstantLR(make_opt()), 6) == [BASE] * 6


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (4, 1.0)])
def test_step_decay(step_size, gamma):
    expected = [BASE * gamma ** (e // step_size) for e in range(12)]
    assert epoch_lrs(StepLR(make_opt(), step_size, gamma), 12) == pytest.approx(expected, rel=1e-15)


def test_step_decay_by_hand():
    # every 2 epochs x 0.1: 0.1, 0.1, 0.01, 0.01, 0.001
    assert epoch_lrs(StepLR(make_opt(), 2), 5) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-14)


@pytest.mark.parametrize("gamma", [0.9, 0.5])
def test_exponential_decay(gamma):
    assert epoch_lrs(ExponentialLR(make_opt(), gamma), 10) == pytest.approx([BASE * gamma**e for e in range(10)], rel=1e-14)


@pytest.mark.parametrize("t_max, eta_min", [(10, 0.0), (4, 0.01)])
def test_cosine_annealing(t_max, eta_min):
    lrs = epoch_lrs(CosineAnnealingLR(make_opt(), t_max, eta_min), t_max + 4)
    expected = [eta_min + (BASE - eta_min) * (1 + math.cos(math.pi * min(e, t_max) / t_max)) / 2 for e in range(t_max + 4)]
    assert lrs == pytest.approx(expected, rel=1e-14, abs=1e-17)
    assert lrs[0] == BASE
    assert lrs[t_max // 2] == pytest.approx((BASE + eta_min) / 2, rel=1e-14)         # half-way (t_max even)
    assert lrs[t_max:] == pytest.approx([eta_min] * 4, abs=1e-17)          # stays at eta_min after t_max


def test_schedule_drives_the_optimizer_updates():
    p = dn.Parameter(np.zeros(2))
    opt = SGD([p], lr=BASE)
    schedule = ExponentialLR(opt, 0.5)
    for e in range(3):
        before = p.value.copy()
        p.grad = np.ones(2)
        opt.step()
        np.testing.assert_allclose(before - p.value, BASE * 0.5**e, rtol=1e-15)
        schedule.step()


# -- warm-up -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("start_factor", [0.0, 0.25])
def test_warmup_then_step_decay(start_factor):
    warmup = 4
    schedule = LinearWarmup(StepLR(make_opt(), step_size=2, gamma=0.5), warmup, start_factor=start_factor)
    lrs = epoch_lrs(schedule, 10)
    ramp = [BASE * (start_factor + (1 - start_factor) * (k + 1) / warmup) for k in range(warmup)]
    after = [BASE * 0.5 ** (e // 2) for e in range(10 - warmup)]    # the step schedule starts when the warm-up ends
    assert lrs == pytest.approx(ramp + after, rel=1e-14)
    assert lrs[0] > 0 and lrs[warmup - 1] == BASE


def test_warmup_by_hand():
    # 4 epochs from 0: 0.025, 0.05, 0.075, 0.1; then constant 0.1
    assert epoch_lrs(LinearWarmup(make_opt(), 4), 6) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-14)


def test_warmup_then_cosine():
    warmup, t_max = 3, 5
    lrs = epoch_lrs(LinearWarmup(CosineAnnealingLR(make_opt(), t_max), warmup), warmup + t_max + 1)
    cosine = [BASE * (1 + math.cos(math.pi * e / t_max)) / 2 for e in range(t_max + 1)]
    assert lrs == pytest.approx([BASE / 3, 2 * BASE / 3, BASE, *cosine], rel=1e-14, abs=1e-17)


def test_warmup_per_batch():
    warmup, n = 2, 5
    schedule = LinearWarmup(ExponentialLR(make_opt(), 0.5), warmup, per_batch=True, steps_per_epoch=n)
    batch_lrs = []
    for _ in range(4):
        for _ in range(n):
            assert schedule.optimizer.lr == schedule.lr
            batch_lrs.append(schedule.lr)
            schedule.step_batch()
        schedule.step(None)
    ramp = [BASE * (b + 1) / (warmup * n) for b in range(warmup * n)]
    after = [BASE] * n + [BASE * 0.5] * n
    assert batch_lrs == pytest.approx(ramp + after, rel=1e-14)


def test_warmup_then_plateau_ignores_warmup_metrics():
    schedule = LinearWarmup(ReduceLROnPlateau(make_opt(), factor=0.5, patience=1), 2)
    # bad metrics during the warm-up do not count; then 2 bad epochs (> patience 1) reduce
    lrs = epoch_lrs(schedule, 6, metrics=[5.0, 9.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs == pytest.approx([BASE / 2, BASE, BASE, BASE, BASE, BASE / 2], rel=1e-14)


def test_get_schedule():
    opt = make_opt()
    assert type(get_schedule("step", opt, step_size=3)) is StepLR
    assert type(get_schedule("Constant", make_opt())) is ConstantLR
    assert get_schedule("exponential", make_opt(), gamma=0.9).gamma == 0.9
    plateau = get_schedule("plateau", make_opt(), patience=3)
    assert (type(plateau), plateau.patience) == (ReduceLROnPlateau, 3)
    cosine = get_schedule("cosine", make_opt(), epochs=20, warmup_epochs=5, start_factor=0.1)
    assert type(cosine) is LinearWarmup and type(cosine.schedule) is CosineAnnealingLR
    assert (cosine.schedule.t_max, cosine.warmup_epochs, cosine.start_factor) == (15, 5, 0.1)
    assert get_schedule("cosine", make_opt(), t_max=7).t_max == 7
    choices = "constant, step, exponential, cosine, plateau"
    with pytest.raises(ValueError, match=f"unknown schedule 'linear'; choose one of: {choices}"):
        get_schedule("linear", make_opt())
    with pytest.raises(ValueError, match="schedule 'cosine' needs t_max"):
        get_schedule("cosine", make_opt())
    with pytest.raises(TypeError, match=r"schedule 'step' .*step_size"):
        get_schedule("step", make_opt())


# -- reduce on plateau ------------------------------------------------------------------------------------

def test_plateau_reduces_after_patience():
    # patience 2: improvements at epochs 1-2, then 3 epochs without: reduced after the 3rd (epoch 5)
    schedule = ReduceLROnPlateau(make_opt(), factor=0.5, patience=2)
    lrs = epoch_lrs(schedule, 9, metrics=[1.0, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.9, 0.9])
    assert lrs == pytest.approx([BASE] * 5 + [BASE / 2] * 3 + [BASE / 4], rel=1e-14)
    assert schedule.best == 0.9 and schedule.num_reductions == 2


def test_plateau_min_delta():
    # improvements of 0.005 < min_delta 0.01 do not count
    schedule = ReduceLROnPlateau(make_opt(), factor=0.1, patience=1, min_delta=0.01)
    lrs = epoch_lrs(schedule, 4, metrics=[1.0, 0.995, 0.99, 0.985])
    assert lrs == pytest.approx([BASE, BASE, BASE, BASE / 10], rel=1e-14)


def test_plateau_cooldown():
    # patience 0 reduces at every bad epoch, except during the 2 cooldown epochs after a reduction
    schedule = ReduceLROnPlateau(make_opt(), factor=0.5, patience=0, cooldown=2)
    lrs = epoch_lrs(schedule, 8, metrics=[1.0] * 8)
    assert lrs == pytest.approx([BASE, BASE, BASE / 2, BASE / 2, BASE / 2, BASE / 4, BASE / 4, BASE / 4], rel=1e-14)


def test_plateau_min_lr():
    schedule = ReduceLROnPlateau(make_opt(), factor=0.1, patience=0, min_lr=0.005)
    lrs = epoch_lrs(schedule, 5, metrics=[1.0] * 5)
    assert lrs == pytest.approx([BASE, BASE, BASE / 10, 0.005, 0.005], rel=1e-14)
    assert schedule.num_reductions == 2


def test_plateau_max_mode_and_nan():
    schedule = ReduceLROnPlateau(make_opt(), factor=0.5, patience=0, mode="max")
    assert epoch_lrs(schedule, 4, metrics=[0.5, 0.6, 0.55, 0.7]) == pytest.approx([BASE, BASE, BASE, BASE / 2])
    schedule = ReduceLROnPlateau(make_opt(), factor=0.5, patience=0)
    assert epoch_lrs(schedule, 3, metrics=[1.0, float("nan"), 0.5]) == pytest.approx([BASE, BASE, BASE / 2])


def test_plateau_needs_a_metric():
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau\.step needs the monitored metric"):
        ReduceLROnPlateau(make_opt()).step()


# -- state_dict: resume exactly ------------------------------------------------------------------------------

BUILDERS = {
    "constant": lambda opt: ConstantLR(opt),
    "step": lambda opt: StepLR(opt, 3, 0.5),
    "exponential": lambda opt: ExponentialLR(opt, 0.8),
    "cosine": lambda opt: CosineAnnealingLR(opt, 12, 0.001),
    "plateau": lambda opt: ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1),
    "warmup+cosine": lambda opt: LinearWarmup(CosineAnnealingLR(opt, 8), 3, start_factor=0.1),
    "warmup+plateau": lambda opt: LinearWarmup(ReduceLROnPlateau(opt, factor=0.5, patience=0), 2),
    "batch-warmup+step": lambda opt: LinearWarmup(StepLR(opt, 2), 2, per_batch=True, steps_per_epoch=3),
}
METRICS = [1.0, 0.8, 0.8, 0.81, 0.7, 0.7, 0.7, 0.7, 0.65, 0.65, 0.65, 0.65, 0.65, 0.6, 0.6]


def drive(schedule, epochs, start=0):
    lrs = []
    for e in range(start, start + epochs):
        for _ in range(3):
            lrs.append(schedule.optimizer.lr)
            schedule.step_batch()
        schedule.step(METRICS[e])
    return lrs


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_state_dict_round_trip_continues_identically(kind):
    a = BUILDERS[kind](make_opt())
    drive(a, 5)
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))          # JSON-able, no arrays
    b = BUILDERS[kind](make_opt(lr=0.5))                                      # a fresh run, other base rate
    b.load_state_dict(state)
    assert b.optimizer.lr == a.optimizer.lr == b.lr
    assert drive(b, 10, start=5) == drive(a, 10, start=5)


def test_load_state_dict_checks_the_type():
    with pytest.raises(ValueError, match="state is for 'StepLR', not ExponentialLR"):
        ExponentialLR(make_opt(), 0.5).load_state_dict(StepLR(make_opt(), 2).state_dict())


# -- validation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("build, error, message", [
    (lambda o: StepLR(o, 0), ValueError, "step_size must be an int >= 1, got 0"),
    (lambda o: StepLR(o, 2.5), ValueError, "step_size must be an int >= 1, got 2.5"),
    (lambda o: StepLR(o, 2, gamma=0.0), ValueError, r"gamma must be in \(0, 1\], got 0.0"),
    (lambda o: ExponentialLR(o, 1.5), ValueError, r"gamma must be in \(0, 1\], got 1.5"),
    (lambda o: CosineAnnealingLR(o, 0), ValueError, "t_max must be an int >= 1, got 0"),
    (lambda o: CosineAnnealingLR(o, 10, eta_min=-1), ValueError, "eta_min must be >= 0, got -1"),
    (lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor must be in \(0, 1\), got 1.0"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), ValueError, "patience must be an int >= 0, got -1"),
    (lambda o: ReduceLROnPlateau(o, cooldown=True), ValueError, "cooldown must be an int >= 0, got True"),
    (lambda o: ReduceLROnPlateau(o, min_lr=-0.1), ValueError, "min_lr must be >= 0, got -0.1"),
    (lambda o: ReduceLROnPlateau(o, mode="up"), ValueError, "mode must be 'min' or 'max', got 'up'"),
    (lambda o: LinearWarmup(o, 0), ValueError, "warmup_epochs must be an int >= 1, got 0"),
    (lambda o: LinearWarmup(o, 2, start_factor=1.5), ValueError, r"start_factor must be in \[0, 1\], got 1.5"),
    (lambda o: LinearWarmup(o, 2, per_batch=True), ValueError, "needs steps_per_epoch"),
    (lambda o: LinearWarmup(LinearWarmup(o, 2), 2), TypeError, "cannot wrap another LinearWarmup"),
    (lambda o: LinearWarmup("cosine", 2), TypeError, "expected a Schedule or an Optimizer, got str"),
    (lambda o: StepLR(o.params, 2), TypeError, "StepLR: expected an Optimizer, got list"),
])
def test_validation(build, error, message):
    with pytest.raises(error, match=message):
        build(make_opt())


def test_schedules_work_with_any_optimizer():
    opt = Adam([dn.Parameter(np.ones(2))], lr=1e-3)
    schedule: Schedule = get_schedule("step", opt, step_size=1, gamma=0.5)
    schedule.step()
    assert opt.lr == schedule.lr == 5e-4
