"""The trainer's safety net: Ctrl-C / SIGTERM stop at a batch boundary, and a diverged run gets its weights back.

- :class:`SignalGuard`: during ``fit``, SIGINT and SIGTERM set a flag that the
  loop reads after each batch (a second signal interrupts at once); the
  previous handlers are put back afterwards.
- :func:`snapshot` / :func:`restore`: a copy of the weights, buffers, optimizer
  and schedule state at the start of every epoch, put back when a loss, a
  gradient norm or a forward value turns NaN or infinite.

**Divergence.** At the start of every epoch the trainer keeps a copy of the
weights, buffers, optimizer and schedule state (one copy per epoch). A NaN
or infinite loss, gradient norm or forward value stops training with a
message naming the epoch and batch, and puts that copy back.

**Interruption.** Ctrl-C (or SIGTERM) during ``fit`` ends the run after
the current batch; the interrupted epoch is recorded (over the batches it
ran), the model keeps its weights, and ``fit`` can be called again.
"""

from __future__ import annotations

import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import backend


class SignalGuard:
    """Turns SIGINT and SIGTERM into a stop request while installed.

    Attributes
    ----------
    requested : bool
        A stop was asked for (by a signal or :meth:`request`).
    signal_name : str or None
        ``"SIGINT"`` or ``"SIGTERM"``: the first signal that asked.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def reset(self) -> None:
        self.requested = False
        self.signal_name = None

    def request(self) -> None:
        """Ask for a stop after the current batch, as Ctrl-C does."""
        self.requested = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested:                   # a second Ctrl-C / SIGTERM: stop now
            raise KeyboardInterrupt
        self.requested = True
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name

    def install(self) -> None:
        """Handle SIGINT, and SIGTERM while it has its default action (a handler the application installed, or
        ``SIG_IGN``, stays); only in the main thread, where Python runs signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = {signal.SIGINT: signal.getsignal(signal.SIGINT)}
        signal.signal(signal.SIGINT, self._on_signal)
        term = getattr(signal, "SIGTERM", None)
        if term is not None and signal.getsignal(term) in (signal.SIG_DFL, None):
            self._previous[term] = signal.getsignal(term)
            signal.signal(term, self._on_signal)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for sig, handler in self._previous.items():
            if handler is None:                # installed outside Python: put back the default
                handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, handler)
        self._previous = {}

    def stop_if_requested(self, trainer: Any) -> None:
        """After a batch: turn a pending request into ``trainer``'s stop (reason ``"interrupted"``)."""
        if self.requested and not trainer.stop_training:
            trainer.request_stop("interrupted", self.message(trainer.epoch, trainer.batch, trainer.n_batches))

    def message(self, epoch: int, batch: int, n_batches: int) -> str:
        how = {"SIGTERM": " (SIGTERM)", "SIGINT": " (Ctrl-C)"}.get(self.signal_name or "", "")
        return (f"interrupted{how} at epoch {epoch}, batch {batch}/{n_batches}; "
                "the model keeps the weights after that batch")


@contextmanager
def running(trainer: Any) -> Iterator[None]:
    """The block a ``fit`` runs in: ``trainer.in_fit`` set, the signal handlers installed (``handle_interrupt``,
    one process), and on the way out, whatever happens, the handlers put back and the run's plan closed. An
    exception that escapes under data parallelism ends every rank (``distributed.abort``): the other ranks would
    wait in the next all-reduce for ever."""
    trainer.in_fit = True
    if trainer.handle_interrupt and trainer.distributed is None:
        trainer.signals.install()
    try:
        yield
    except BaseException as exc:
        if trainer.distributed is not None:
            trainer.distributed.abort(exc)
        raise
    finally:
        trainer.in_fit = False
        trainer.run_plan.end = trainer.fast_path = None
        trainer.signals.restore()


def snapshot(model: Any, optimizer: Any, schedule: Any) -> dict[str, Any]:
    """Copies of the model's state (weights and buffers), the optimizer's and the schedule's."""
    xp = backend.xp
    return {"model": {k: xp.array(v, copy=True) for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "schedule": None if schedule is None else schedule.state_dict()}


def restore(snap: dict[str, Any], model: Any, optimizer: Any, schedule: Any) -> None:
    """Put a :func:`snapshot` back."""
    model.load_state_dict(snap["model"])
    optimizer.load_state_dict(snap["optimizer"])
    if snap["schedule"] is not None:
        schedule.load_state_dict(snap["schedule"])


def divergence_message(epoch: int, batch: int, n_batches: int, what: str, kept_epoch: int, lr: float) -> str:
    kept = f"the end of epoch {kept_epoch}" if kept_epoch else "before training"
    return (f"training diverged at epoch {epoch}, batch {batch}/{n_batches}: {what}; the model keeps the "
            f"weights from {kept}. Lower the learning rate (lr={lr:g}) or set clip_norm")


def diverged(trainer: Any, what: str, good: dict[str, Any]) -> None:
    """Stop ``trainer``'s run after ``what`` went non-finite in its current epoch: put the epoch's :func:`snapshot`
    ``good`` back, count the epoch as not run, and set the stop reason and message (and warn, with
    ``on_divergence="stop"``; ``"raise"`` raises at the end of ``fit``)."""
    epoch = trainer.epoch
    restore(good, trainer.model, trainer.optimizer, trainer.schedule)
    trainer.epoch = epoch - 1
    trainer.stop_training = True
    trainer.stop_reason = "diverged"
    trainer.stop_message = divergence_message(epoch, trainer.batch, trainer.n_batches, what, trainer.epoch, trainer.lr)
    if trainer.on_divergence == "stop":
        warnings.warn(trainer.stop_message, RuntimeWarning, stacklevel=5)


__all__ = ["SignalGuard", "diverged", "divergence_message", "restore", "running", "snapshot"]
