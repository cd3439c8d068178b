"""A progress display for long training runs, written to a stream (stderr by default)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .callbacks import Callback

if TYPE_CHECKING:
    from .history import History
    from .trainer import Trainer


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``"1:15"``, ``3725`` -> ``"1:02:05"``."""
    s = round(max(seconds, 0.0))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_record(record: dict[str, Any]) -> str:
    """One line of an epoch's metrics: ``train_loss 0.1234  val_loss ...  lr 0.001  2.1s``."""
    parts = [f"train_loss {record['train_loss']:.4g}"]
    if record.get("train_accuracy") is not None:
        parts.append(f"train_acc {record['train_accuracy']:.4f}")
    if record.get("val_loss") is not None:
        parts.append(f"val_loss {record['val_loss']:.4g}")
    if record.get("val_accuracy") is not None:
        parts.append(f"val_acc {record['val_accuracy']:.4f}")
    parts.append(f"lr {record['lr']:.3g}")
    if record.get("grad_norm") is not None:
        parts.append(f"|g| {record['grad_norm']:.3g}")
    t = record["time"]
    parts.append(f"{t:.2f}s" if t >= 0.1 else f"{t * 1000:.1f}ms")
    return "  ".join(parts)


class ProgressBar(Callback):
    """Epoch and batch progress with ETA and the current loss.

    On a terminal (``stream.isatty()``) one line is redrawn in place during an
    epoch (at most ``refresh`` times a second)::

        epoch 3/10 [=========>          ] 212/469  loss 0.1432  ETA 0:04

    and replaced by the epoch's summary when it ends. On anything else (a file,
    a pipe, a CI log) only the summary line is printed, once per epoch::

        epoch 3/10  train_loss 0.1432  val_loss 0.1611  val_acc 0.9521  lr 0.001  |g| 0.41  4.20s  ETA 0:29

    A final line says why training stopped.

    Parameters
    ----------
    stream : text stream
        Where to write (default ``sys.stderr``, looked up when training starts).
    width : int
        Characters of the bar.
    refresh : float
        Maximum redraws per second on a terminal.
    """

    def __init__(self, stream: TextIO | None = None, width: int = 24, refresh: float = 10.0) -> None:
        self.stream = stream
        self.width = int(width)
        self.refresh = float(refresh)
        self._out: TextIO = sys.stderr
        self._tty = False
        self._epoch_start = 0.0
        self._last_draw = 0.0
        self._loss_sum = 0.0
        self._loss_count = 0
        self._epoch_times: list[float] = []
        self._midline = False

    def on_train_begin(self, trainer: Trainer) -> None:
        self._out = self.stream if self.stream is not None else sys.stderr
        isatty = getattr(self._out, "isatty", None)
        self._tty = bool(isatty()) if callable(isatty) else False
        self._epoch_times = []

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        self._epoch_start = self._last_draw = time.perf_counter()
        self._loss_sum, self._loss_count = 0.0, 0

    def on_batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        self._loss_sum += loss
        self._loss_count += 1
        if not self._tty:
            return
        now = time.perf_counter()
        total = trainer.n_batches
        if now - self._last_draw < 1.0 / self.refresh and batch != total:
            return
        self._last_draw = now
        done = batch / total if total else 1.0
        filled = int(self.width * done)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * max(self.width - filled - 1, 0)
        eta = (now - self._epoch_start) * (total - batch) / max(batch, 1)
        line = (f"epoch {trainer.epoch}/{trainer.final_epoch} [{bar}] {batch}/{total}  "
                f"loss {self._loss_sum / self._loss_count:.4g}  ETA {format_duration(eta)}")
        self._out.write("\r" + line + "\x1b[K")
        self._out.flush()
        self._midline = True

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        self._epoch_times.append(record["time"])
        remaining = max(trainer.final_epoch - epoch, 0)
        mean = sum(self._epoch_times) / len(self._epoch_times)
        eta = f"  ETA {format_duration(mean * remaining)}" if remaining and not trainer.stop_training else ""
        line = f"epoch {epoch}/{trainer.final_epoch}  {format_record(record)}{eta}"
        self._out.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self._out.flush()
        self._midline = False

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        if self._midline:              # an epoch cut short (divergence) left the bar open
            self._out.write("\n")
            self._midline = False
        if history.stop_message:
            self._out.write(f"stopped: {history.stop_message}\n")
            self._out.flush()
