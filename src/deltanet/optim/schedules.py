"""Learning-rate schedules.

Protocol (what the trainer does)::

    schedule = CosineAnnealingLR(optimizer, t_max=epochs)
    for epoch in range(epochs):
        for batch in batches:
            ...; optimizer.step()
            schedule.step_batch()          # a no-op except for a per-batch warm-up
        schedule.step(metric=val_loss)     # once at the END of every epoch

A schedule reads the optimizer's learning rate at construction as its base
rate ``base_lr`` and from then on owns ``optimizer.lr``: ``schedule.lr`` is
the rate used for the coming updates, and every ``step``/``step_batch`` writes
it to the optimizer. ``schedule.epoch`` counts the ``step()`` calls (completed
epochs), so during epoch ``e`` (1-based) the epoch-based schedules use their
closed form at ``e - 1``. ``state_dict()``/``load_state_dict()`` hold only
JSON-able scalars (no arrays), so a run resumes exactly.
"""

from __future__ import annotations

import math
from typing import Any

from ..constraints import check
from .base import Optimizer, check_int, check_positive, check_unit_interval


class Schedule:
    """Base class: owns ``optimizer.lr``; ``step(metric=None)`` at each epoch's end, ``step_batch()`` after each update.

    Subclasses with a closed form implement :meth:`lr_at`; others override :meth:`step`.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.epoch = 0
        self.lr = self.base_lr

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's arguments (without the optimizer); JSON-able values."""
        return {}

    def lr_at(self, epoch: int) -> float:
        """Learning rate after ``epoch`` completed epochs (the rate of epoch ``epoch + 1``)."""
        raise NotImplementedError

    def step(self, metric: float | None = None) -> None:
        """End of an epoch: advance the epoch count and set the next epoch's rate."""
        self.epoch += 1
        self._set(self.lr_at(self.epoch))

    def step_batch(self) -> None:
        """After an optimizer step: nothing, except in a per-batch warm-up."""

    def _set(self, lr: float) -> None:
        self.lr = float(lr)
        self.optimizer.lr = self.lr

    # -- persistence ---------------------------------------------------------
    def _counters(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "base_lr": self.base_lr, "lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "epoch", "base_lr", "lr", ...}``: JSON-able scalars only."""
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(), **self._counters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` and set the optimizer's learning rate to the restored ``lr``."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: state is for {state.get('type')!r}, not {name}")
        known = self.hyperparameters()
        unknown = sorted(set(state.get("hyperparameters", {})) - set(known))
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unknown hyper-parameters {unknown}; expected {sorted(known)}")
        for k, v in state.get("hyperparameters", {}).items():
            setattr(self, k, v)
        self._load_counters(state)
        self._set(state["lr"])

    def _load_counters(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.base_lr = float(state["base_lr"])

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args}{', ' if args else ''}lr={self.lr:g})"


class ConstantLR(Schedule):
    """The base learning rate for every epoch: ``lr_e = base_lr``."""

    def lr_at(self, epoch: int) -> float:
        return self.base_lr


class StepLR(Schedule):
    r"""Step decay: multiply the rate by ``gamma`` every ``step_size`` epochs.

    ``lr_e = base_lr * gamma ** floor(e / step_size)`` after e completed epochs.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Epochs between two decays (>= 1).
    gamma : float
        Decay factor in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check("step_size", step_size)
        self.gamma = check("gamma", gamma)

    def hyperparameters(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    r"""Exponential decay: ``lr_e = base_lr * gamma ** e`` after e completed epochs.

    Parameters
    ----------
    optimizer : Optimizer
    gamma : float
        Decay factor per epoch in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = check("gamma", gamma)

    def hyperparameters(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.gamma**epoch


class CosineAnnealingLR(Schedule):
    r"""Cosine annealing from ``base_lr`` down to ``eta_min`` over ``t_max`` epochs.

    ``lr_e = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / t_max)) / 2`` for
    e <= t_max completed epochs, and ``eta_min`` afterwards (no restarts; unlike
    ``torch.optim.lr_scheduler.CosineAnnealingLR``, the rate does not rise again
    past ``t_max``).

    Parameters
    ----------
    optimizer : Optimizer
    t_max : int
        Length of the annealing in epochs (>= 1); usually the number of epochs of the run.
    eta_min : float
        Final learning rate (>= 0).

    References
    ----------
    Loshchilov & Hutter (2017), "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR,
    eq. (5) within one period. https://arxiv.org/abs/1608.03983
    """

    def __init__(self, optimizer: Optimizer, t_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.t_max = check_int("t_max", t_max, minimum=1)
        self.eta_min = check_positive("eta_min", eta_min, allow_zero=True)

    def hyperparameters(self) -> dict[str, Any]:
        return {"t_max": self.t_max, "eta_min": self.eta_min}

    def lr_at(self, epoch: int) -> float:
        e = min(epoch, self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * e / self.t_max)) / 2.0


class ReduceLROnPlateau(Schedule):
    r"""Divide the learning rate when the monitored metric (validation loss) stops improving.

    Parameters
    ----------
    optimizer : Optimizer
    factor : float
        Multiplier in (0, 1) applied at each reduction.
    patience : int
        Number of epochs without improvement that are tolerated: the rate is
        reduced at the end of the ``patience + 1``-th consecutive epoch without
        improvement (as in PyTorch).
    min_delta : float
        Absolute improvement that counts: ``metric < best - min_delta`` (mode
        ``"min"``) or ``metric > best + min_delta`` (mode ``"max"``).
    min_lr : float
        Lower bound of the learning rate.
    cooldown : int
        Epochs after a reduction during which bad epochs are not counted.
    mode : {"min", "max"}
        Whether lower (a loss) or higher (an accuracy) is better.

    Notes
    -----
    At the end of each epoch, given the metric m::

        if m improves on best by more than min_delta:   best <- m;  bad <- 0
        else:                                           bad <- bad + 1
        if cooldown_counter > 0:                        cooldown_counter -= 1;  bad <- 0
        if bad > patience:
            lr <- max(lr * factor, min_lr);  cooldown_counter <- cooldown;  bad <- 0

    The first metric always counts as an improvement; a NaN metric never does.
    """

    def __init__(self, optimizer: Optimizer, factor: float = 0.1, patience: int = 10, min_delta: float = 1e-4,
                 min_lr: float = 0.0, cooldown: int = 0, mode: str = "min") -> None:
        super().__init__(optimizer)
        self.factor = check_unit_interval("factor", factor, open_left=True)
        self.patience = check_int("patience", patience)
        self.min_delta = check("min_delta", min_delta)
        self.min_lr = check_positive("min_lr", min_lr, allow_zero=True)
        self.cooldown = check_int("cooldown", cooldown)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.best: float | None = None
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.num_reductions = 0

    def hyperparameters(self) -> dict[str, Any]:
        return {"factor": self.factor, "patience": self.patience, "min_delta": self.min_delta,
                "min_lr": self.min_lr, "cooldown": self.cooldown, "mode": self.mode}

    def _improves(self, metric: float) -> bool:
        if self.best is None:
            return not math.isnan(metric)
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def step(self, metric: float | None = None) -> None:
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step needs the monitored metric (the validation loss), got None")
        metric = float(metric)
        self.epoch += 1
        if self._improves(metric):
            self.best = metric
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.lr * self.factor, self.min_lr)
            if new_lr < self.lr:
                self.num_reductions += 1
            self._set(new_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _counters(self) -> dict[str, Any]:
        return {**super()._counters(), "best": self.best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter, "num_reductions": self.num_reductions}

    def _load_counters(self, state: dict[str, Any]) -> None:
        super()._load_counters(state)
        self.best = None if state["best"] is None else float(state["best"])
        self.num_bad_epochs = int(state["num_bad_epochs"])
        self.cooldown_counter = int(state["cooldown_counter"])
        self.num_reductions = int(state.get("num_reductions", 0))


class LinearWarmup(Schedule):
    r"""Linear warm-up of the learning rate, then any schedule.

    Parameters
    ----------
    schedule_or_optimizer : Schedule or Optimizer
        The schedule that takes over after the warm-up (an optimizer means
        :class:`ConstantLR`). Build it *before* the warm-up: it reads the
        optimizer's base rate at construction.
    warmup_epochs : int
        Length W of the warm-up in epochs (>= 1).
    start_factor : float
        s in [0, 1]: the ramp starts at ``s * lr`` and reaches ``lr``, the
        wrapped schedule's initial rate.
    per_batch : bool
        Ramp after every update (``step_batch``) instead of every epoch.
    steps_per_epoch : int, optional
        Updates per epoch n; required with ``per_batch=True``.

    Notes
    -----
    The ramp has K = W units (epochs), or K = W * n units (updates) per batch.
    Unit k = 0, ..., K-1 uses ``lr_k = lr * (s + (1 - s) * (k + 1) / K)``, so
    the last warm-up epoch (update) uses the full rate and no epoch is wasted
    at rate 0 when s = 0. After W epochs the wrapped schedule runs as if
    training had started then: its own epoch count starts at the end of the
    warm-up, and the metrics of the warm-up epochs are not passed to it.

    References
    ----------
    Goyal et al. (2017), "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour" (gradual warm-up).
    """

    def __init__(self, schedule_or_optimizer: Schedule | Optimizer, warmup_epochs: int, start_factor: float = 0.0,
                 per_batch: bool = False, steps_per_epoch: int | None = None) -> None:
        inner = schedule_or_optimizer
        if isinstance(inner, Optimizer):
            inner = ConstantLR(inner)
        if not isinstance(inner, Schedule):
            raise TypeError(f"LinearWarmup: expected a Schedule or an Optimizer, got {type(inner).__name__}")
        if isinstance(inner, LinearWarmup):
            raise TypeError("LinearWarmup: cannot wrap another LinearWarmup")
        super().__init__(inner.optimizer)
        self.schedule = inner
        self.base_lr = inner.base_lr
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, minimum=1)
        self.start_factor = check_unit_interval("start_factor", start_factor, closed_right=True)
        self.per_batch = bool(per_batch)
        if self.per_batch and steps_per_epoch is None:
            raise ValueError("LinearWarmup(per_batch=True) needs steps_per_epoch (the number of updates per epoch)")
        self.steps_per_epoch = None if steps_per_epoch is None else check_int("steps_per_epoch", steps_per_epoch, minimum=1)
        self.batch = 0
        self._set(self._ramp(0))

    def hyperparameters(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "start_factor": self.start_factor,
                "per_batch": self.per_batch, "steps_per_epoch": self.steps_per_epoch}

    @property
    def in_warmup(self) -> bool:
        return self.epoch < self.warmup_epochs

    def _ramp(self, k: int) -> float:
        """Rate of warm-up unit k (0-based), a fraction of the wrapped schedule's rate."""
        units = self.warmup_epochs * self.steps_per_epoch if self.per_batch else self.warmup_epochs
        s = self.start_factor
        return self.schedule.lr * min(1.0, s + (1.0 - s) * (k + 1) / units)

    def step_batch(self) -> None:
        self.batch += 1
        if self.per_batch and self.in_warmup:
            self._set(self._ramp(self.batch))
        elif not self.in_warmup:
            self.schedule.step_batch()

    def step(self, metric: float | None = None) -> None:
        self.epoch += 1
        if self.in_warmup:
            if not self.per_batch:
                self._set(self._ramp(self.epoch))
        elif self.epoch == self.warmup_epochs:
            self._set(self.schedule.lr)          # warm-up done: the wrapped schedule's epoch 0
        else:
            self.schedule.step(metric)
            self._set(self.schedule.lr)

    def _counters(self) -> dict[str, Any]:
        return {**super()._counters(), "batch": self.batch, "schedule": self.schedule.state_dict()}

    def _load_counters(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state["schedule"])
        super()._load_counters(state)
        self.batch = int(state["batch"])

    def __repr__(self) -> str:
        return (f"LinearWarmup({self.schedule!r}, warmup_epochs={self.warmup_epochs}, start_factor={self.start_factor}, "
                f"per_batch={self.per_batch}, lr={self.lr:g})")


#: Schedule names accepted by :func:`get_schedule`.
SCHEDULES: dict[str, type[Schedule]] = {
    "constant": ConstantLR,
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "plateau": ReduceLROnPlateau,
}


def get_schedule(name: str, optimizer: Optimizer, *, warmup_epochs: int = 0, start_factor: float = 0.0,
                 per_batch: bool = False, steps_per_epoch: int | None = None, epochs: int | None = None,
                 **kw: Any) -> Schedule:
    """Build a schedule by name, optionally wrapped in a :class:`LinearWarmup`.

    Parameters
    ----------
    name : str
        ``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"`` or ``"plateau"``.
    optimizer : Optimizer
    warmup_epochs : int
        If > 0, wrap the schedule in ``LinearWarmup(schedule, warmup_epochs, start_factor,
        per_batch, steps_per_epoch)``.
    epochs : int, optional
        Length of the run; the default ``t_max`` of ``"cosine"`` is ``epochs - warmup_epochs``.
    **kw
        The schedule's own arguments (``step_size``, ``gamma``, ``t_max``, ``eta_min``, ``factor``, ...).

    Examples
    --------
    >>> get_schedule("cosine", opt, epochs=50, warmup_epochs=5)      # doctest: +SKIP
    """
    warmup_epochs = check("warmup_epochs", warmup_epochs)
    key = str(name).lower()
    cls = SCHEDULES.get(key)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if cls is CosineAnnealingLR and "t_max" not in kw:
        if epochs is None:
            raise ValueError("schedule 'cosine' needs t_max (or epochs=, the length of the run)")
        kw["t_max"] = max(1, int(epochs) - int(warmup_epochs))
    try:
        schedule = cls(optimizer, **kw)
    except TypeError as exc:
        if not isinstance(optimizer, Optimizer):
            raise
        raise type(exc)(f"schedule {name!r} ({cls.__name__}): {exc}") from exc   # a ParameterTypeError stays one
    if warmup_epochs:
        schedule = LinearWarmup(schedule, warmup_epochs, start_factor=start_factor, per_batch=per_batch,
                                steps_per_epoch=steps_per_epoch)
    return schedule
