"""Callbacks: the trainer reports every step of its loop through them.

Early stopping, the convergence criteria, checkpoints and the progress display
are callbacks; so is anything a user wants to watch or change during training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .history import History
    from .trainer import Trainer


class Callback:
    """Base class: override the events you need; every method does nothing by default.

    Order of events in ``fit``::

        on_train_begin(trainer)
        for each epoch (1-based):
            on_epoch_begin(trainer, epoch)
            for each batch (1-based within the epoch):
                on_batch_begin(trainer, batch)
                    forward, loss, backward
                on_after_backward(trainer)      # gradients ready, not yet clipped or applied
                    clip, optimizer step, schedule.step_batch()
                on_batch_end(trainer, batch, loss)
            validation, schedule.step(metric), history.append(record)
            on_epoch_end(trainer, epoch, record)
        on_train_end(trainer, history)

    Set ``trainer.stop_training = True`` (and ``trainer.stop_reason``, or call
    ``trainer.request_stop(reason, message)``) to stop after the current batch
    (from a batch event) or the current epoch (from ``on_epoch_end``).

    ``on_after_backward`` is where gradients may be changed before the update,
    e.g. averaged across processes (see ``Trainer.gradient_hook``).

    A callback whose state must survive a checkpoint (early stopping's best value)
    implements ``state_dict()`` / ``load_state_dict()``; arrays in the state are
    stored in the checkpoint's array part.
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once at the start of ``fit``, after data validation."""

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Called before the first batch of ``epoch`` (1-based, counted across ``fit`` calls)."""

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        """Called before the forward pass of ``batch`` (1-based within the epoch)."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """Called when every parameter's ``grad`` holds this batch's gradient, before clipping and the step."""

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        """Called after the optimizer step with the batch's loss (L2 term included when the history says so)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """Called with the epoch's history record, after validation and the schedule step."""

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        """Called once when ``fit`` ends, whatever stopped it."""

    def state_dict(self) -> dict[str, Any] | None:
        """State to save in a checkpoint (None: nothing to save)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class CallbackList:
    """Dispatch each event to a list of callbacks, in order."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")
        # the per-batch events go to the callbacks that define them only (most act once per epoch)
        self._hooks = {event: _defining(self.callbacks, event)
                       for event in ("on_batch_begin", "on_after_backward", "on_batch_end")}

    def __iter__(self):
        return iter(self.callbacks)

    def handles(self, event: str) -> bool:
        """Whether some callback overrides the per-batch ``event`` (``"on_batch_begin"``, ``"on_after_backward"``,
        ``"on_batch_end"``)."""
        return bool(self._hooks[event])

    def on_train_begin(self, trainer: Trainer) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(trainer)

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(trainer, epoch)

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        for hook in self._hooks["on_batch_begin"]:
            hook(trainer, batch)

    def on_after_backward(self, trainer: Trainer) -> None:
        for hook in self._hooks["on_after_backward"]:
            hook(trainer)

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        for hook in self._hooks["on_batch_end"]:
            hook(trainer, batch, loss)

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, epoch, record)

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        for cb in self.callbacks:
            cb.on_train_end(trainer, history)


def _defining(callbacks: list[Callback], name: str) -> list[Any]:
    """The bound ``name`` methods of the callbacks that override :class:`Callback`'s empty one."""
    empty = getattr(Callback, name)
    return [hook for hook in (getattr(cb, name) for cb in callbacks) if getattr(hook, "__func__", None) is not empty]


class ModelCheckpoint(Callback):
    """Save the full training state every ``every`` epochs (and when training ends).

    Parameters
    ----------
    path : str or PathLike
        Checkpoint file (``.npz``); ``{epoch}`` in the name is replaced by the
        epoch number (``"ckpt-{epoch:03d}.npz"``) to keep one file per save.
    every : int
        Save after every ``every``-th epoch.
    save_on_end : bool
        Also save when ``fit`` ends on an epoch not yet saved (after Ctrl-C, a
        divergence -- holding the last good weights -- or early stopping).
    complete_epochs_only : bool
        Save only states at the end of an epoch that ran all its batches
        (:attr:`Trainer.epoch_complete`): an epoch cut short by Ctrl-C or
        SIGTERM is not saved, neither at its end nor by ``save_on_end``, so the
        file always holds the last complete epoch and resuming from it ends
        bit-identical to an uninterrupted run (the cut epoch is run again).

    Notes
    -----
    The file holds weights, buffers, optimizer and schedule state, random
    generator states, epoch, the run's planned last epoch and history (see
    :meth:`Trainer.save_checkpoint`); ``Trainer.load_checkpoint(path)`` or
    ``trainer.resume(path)``, then ``fit`` (without ``epochs=``), continues the
    run where it was saved up to its planned last epoch. Each write is atomic:
    a temporary file in the same folder, fsync, ``os.replace``, so a crash or
    ``kill -9`` mid-write leaves the previous checkpoint intact.
    """

    def __init__(self, path: str | os.PathLike[str], every: int = 1, save_on_end: bool = True,
                 complete_epochs_only: bool = False) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"ModelCheckpoint: every must be a positive int, got {every!r}")
        self.path = os.fspath(path)
        self.every = every
        self.save_on_end = bool(save_on_end)
        self.complete_epochs_only = bool(complete_epochs_only)
        self.saved: list[str] = []
        self._last_epoch: int | None = None

    def _save(self, trainer: Trainer) -> None:
        path = self.path.format(epoch=trainer.epoch)
        trainer.save_checkpoint(path)
        self.saved.append(path)
        self._last_epoch = trainer.epoch

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        if epoch % self.every == 0 and (trainer.epoch_complete or not self.complete_epochs_only):
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        if not (self.save_on_end and trainer.epoch > 0 and self._last_epoch != trainer.epoch):
            return
        if self.complete_epochs_only and not trainer.epoch_complete:
            return
        self._save(trainer)

    def __repr__(self) -> str:
        return f"ModelCheckpoint(path={self.path!r}, every={self.every})"
