"""The reference's convergence criteria, as callbacks.

- loss threshold: L < epsilon                      -> :class:`LossThreshold`
- gradient norm:  ||grad L|| < epsilon             -> :class:`GradNormThreshold`
- validation performance (patience, min_delta)     -> :class:`EarlyStopping`
- maximum iterations: stop after T epochs          -> the trainer's ``epochs``

Each is optional and they combine: the first that fires ends the run, and the
history's ``stop_reason`` / ``stop_message`` say which one and why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .. import backend
from ..constraints import check
from .callbacks import Callback

if TYPE_CHECKING:
    from .history import History
    from .trainer import Trainer


class LossThreshold(Callback):
    """Stop when the epoch's training loss falls below ``threshold`` (L < epsilon).

    The epoch's training loss is the batch-size-weighted mean of its batch
    losses (``history["train_loss"]``), L2 term included when the history's
    ``loss_includes_l2`` is set. ``monitor="val_loss"`` tests the validation loss instead.
    """

    reason = "loss_threshold"

    def __init__(self, threshold: float, monitor: str = "train_loss") -> None:
        self.threshold = check("loss_below", threshold, "stop_loss_below")
        if monitor not in ("train_loss", "val_loss"):
            raise ValueError(f"LossThreshold: monitor must be 'train_loss' or 'val_loss', got {monitor!r}")
        self.monitor = monitor

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        value = record.get(self.monitor)
        if value is not None and value < self.threshold:
            trainer.request_stop(self.reason, f"{self.monitor.replace('_', ' ')} {value:.6g} < {self.threshold:g} "
                                              f"(stop_loss_below) at epoch {epoch}")

    def config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "monitor": self.monitor}


class GradNormThreshold(Callback):
    """Stop when the epoch's gradient norm falls below ``threshold`` (||grad L|| < epsilon).

    The norm tested is ``history["grad_norm"]``: the mean over the epoch's
    batches of the global L2 norm of all parameter gradients (before clipping).
    With mini-batches it carries sampling noise and stays above the norm of the
    full-data gradient; with ``batch_size >= n_samples`` it is exactly ||grad L||
    at the epoch's weights.
    """

    reason = "grad_norm_threshold"

    def __init__(self, threshold: float) -> None:
        self.threshold = check("grad_norm_below", threshold, "stop_grad_norm_below")

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        value = record.get("grad_norm")
        if value is not None and value < self.threshold:
            trainer.request_stop(self.reason, f"gradient norm {value:.6g} < {self.threshold:g} "
                                              f"(stop_grad_norm_below) at epoch {epoch}")

    def config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


class EarlyStopping(Callback):
    """Stop when a monitored metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A history key: ``"val_loss"`` (default), ``"val_accuracy"``, ``"train_loss"``, ...
    patience : int
        Number of epochs without improvement to tolerate; training stops at the
        ``patience``-th such epoch in a row.
    min_delta : float
        An epoch improves on the best value b only if its value v satisfies
        v < b - min_delta (``mode="min"``) or v > b + min_delta (``mode="max"``).
    restore_best : bool
        When training ends (for any reason), load the weights of the best epoch
        (a copy of weights and buffers is kept each time the metric improves).
    mode : ``"min"`` or ``"max"``
        Whether lower or higher is better (``"max"`` for accuracies).

    Attributes
    ----------
    best : float
        Best value seen (inf / -inf before the first epoch).
    best_epoch : int or None
    wait : int
        Epochs since the last improvement.
    """

    reason = "early_stopping"

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0,
                 restore_best: bool = True, mode: str = "min") -> None:
        patience = check("patience", patience, "EarlyStopping: patience")
        min_delta = check("min_delta", min_delta, "EarlyStopping: min_delta")
        restore_best = check("restore_best", restore_best, "EarlyStopping: restore_best")
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best = restore_best
        self.mode = mode
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.wait = 0
        self.best_state: dict[str, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "patience": self.patience, "min_delta": self.min_delta,
                "restore_best": self.restore_best, "mode": self.mode}

    def __repr__(self) -> str:
        return "EarlyStopping(" + ", ".join(f"{k}={v!r}" for k, v in self.config().items()) + ")"

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta``."""
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, trainer: Trainer) -> None:
        if self.monitor.startswith("val_") and not trainer.has_validation:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r} but fit got no validation data; pass "
                             "validation_data=(X_val, y_val) or validation_fraction=0.1, or monitor 'train_loss'")
        if not trainer.resuming:          # a fresh fit starts a fresh watch; a resumed run keeps its own
            self._reset()

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        if self.monitor not in record:
            raise ValueError(f"EarlyStopping: unknown monitor {self.monitor!r}; history keys: {', '.join(record)}")
        value = record[self.monitor]
        if value is None:
            raise ValueError(f"EarlyStopping: {self.monitor!r} is not recorded for this task")
        if self.improved(value):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best:
                xp = backend.xp
                self.best_state = {k: xp.array(v, copy=True) for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.request_stop(self.reason, f"{self.monitor} did not improve by more than {self.min_delta:g} for "
                                              f"{self.patience} epochs (best {self.best:.6g} at epoch {self.best_epoch}); "
                                              f"stopped at epoch {epoch}")

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        if self.best_epoch is not None:
            history.best_epoch = self.best_epoch
        if self.restore_best and self.best_state is not None and self.best_epoch != trainer.epoch:
            trainer.model.load_state_dict(self.best_state)
            if history.stop_message is not None:
                history.stop_message += f"; restored the weights of epoch {self.best_epoch}"

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.wait = int(state["wait"])
        self.best_state = state.get("best_state")


def make_early_stopping(spec: Any) -> EarlyStopping | None:
    """The trainer's ``early_stopping`` argument as an :class:`EarlyStopping` (or None).

    ``None`` / ``False`` -> no early stopping, ``True`` -> the defaults, a dict ->
    ``EarlyStopping(**spec)``, an instance -> itself.
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        return EarlyStopping()
    if isinstance(spec, EarlyStopping):
        return spec
    if isinstance(spec, dict):
        return EarlyStopping(**spec)
    raise TypeError(f"early_stopping must be None, True, a dict of EarlyStopping arguments or an EarlyStopping, "
                    f"got {type(spec).__name__}")


def make_criteria(stop_loss_below: float | None, stop_grad_norm_below: float | None,
                  early_stopping: Any) -> tuple[list[Callback], EarlyStopping | None]:
    """The trainer's convergence criteria in the order they are checked at the end of each epoch -- loss
    threshold, gradient-norm threshold, early stopping -- and the early stopping among them (or None)."""
    criteria: list[Callback] = []
    if stop_loss_below is not None:
        criteria.append(LossThreshold(stop_loss_below))
    if stop_grad_norm_below is not None:
        criteria.append(GradNormThreshold(stop_grad_norm_below))
    stopping = make_early_stopping(early_stopping)
    if stopping is not None:
        criteria.append(stopping)
    return criteria, stopping


def finish_fit(trainer: Any, callbacks: Any, n_epochs: int) -> None:
    """The end of a ``fit`` call: its stop reason and message (the first request wins; none: the epoch limit of
    ``n_epochs``), the history's best epoch, then ``on_train_end`` (which may add to the message)."""
    if not trainer.stop_training:
        trainer.stop_reason = "max_epochs"
        trainer.stop_message = f"reached the maximum of {n_epochs} epoch{'s' if n_epochs != 1 else ''} (epoch {trainer.epoch})"
    elif trainer.stop_reason is None:
        trainer.stop_reason = "callback"
    if trainer.stop_message is None:
        trainer.stop_message = f"stopped by a callback at epoch {trainer.epoch}"
    h = trainer.history
    h.stop_reason, h.stop_message = trainer.stop_reason, trainer.stop_message
    h.best_epoch = h.best("val_loss") if trainer.has_validation else h.best("train_loss")
    callbacks.on_train_end(trainer, h)
    trainer.stop_message = h.stop_message          # a callback may have added to it (early stopping's restore)


def criterion_threshold(criteria: list[Callback], kind: type) -> float | None:
    """The ``threshold`` of the first criterion of exactly type ``kind`` in ``criteria`` (None if there is none)."""
    for c in criteria:
        if type(c) is kind:
            return c.threshold
    return None
