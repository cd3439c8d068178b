"""A progress display for long training runs, written to a stream (stderr by default)."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
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

    and replaced by the epoch's summary when it ends. Every line fits the
    terminal's width (measured on the stream at each redraw, so a resized
    window is followed): the bar shrinks first, then a summary wraps at its
    field separators and a live line is cut. On anything else (a file, a
    pipe, a CI log) nothing is redrawn; only summary lines are printed::

        epoch 3/10  train_loss 0.1432  val_loss 0.1611  val_acc 0.9521  lr 0.001  |g| 0.41  4.20s  ETA 0:29

    A summary line is printed for the first epoch of a ``fit``, every
    ``log_every``-th epoch and the last one (by default about 20 lines per
    run); on a terminal the other epochs' summaries are shown in place and
    overwritten. A final line says why training stopped.

    Parameters
    ----------
    stream : text stream
        Where to write (default ``sys.stderr``, looked up when training starts).
    width : int
        Characters of the bar (at most: it shrinks to fit a narrow terminal).
    refresh : float
        Maximum redraws per second on a terminal.
    log_every : int or None
        Print the summary of every ``log_every``-th epoch of a ``fit`` (counted
        from its first epoch), plus the first and the last. None (default):
        ``max(1, epochs // 20)`` for the ``epochs`` that ``fit`` plans, about 20
        lines; 1 prints every epoch.
    """

    #: Width assumed when the stream is a terminal whose size cannot be read.
    FALLBACK_COLUMNS = 80

    def __init__(self, stream: TextIO | None = None, width: int = 24, refresh: float = 10.0,
                 log_every: int | None = None) -> None:
        if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1):
            raise ValueError(f"ProgressBar: log_every must be a positive int or None, got {log_every!r}")
        self.stream = stream
        self.width = int(width)
        self.refresh = float(refresh)
        self.log_every = log_every
        self._every = 1
        self._first_epoch = 1
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
        self._first_epoch = trainer.epoch + 1
        planned = max(trainer.final_epoch - trainer.epoch, 1)
        self._every = self.log_every if self.log_every is not None else max(1, planned // 20)

    def columns(self) -> int | None:
        """The terminal's width in characters when the stream is a terminal, else None (no limit)."""
        if not self._tty:
            return None
        try:
            cols = os.get_terminal_size(self._out.fileno()).columns
        except (AttributeError, OSError, ValueError):
            cols = shutil.get_terminal_size((self.FALLBACK_COLUMNS, 24)).columns
        return cols if cols > 0 else self.FALLBACK_COLUMNS

    def _logged(self, trainer: Trainer, epoch: int) -> bool:
        """Whether ``epoch``'s summary gets a line of its own."""
        k = epoch - self._first_epoch
        return k == 0 or (k + 1) % self._every == 0 or epoch >= trainer.final_epoch or trainer.stop_training

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
        eta = (now - self._epoch_start) * (total - batch) / max(batch, 1)
        head = f"epoch {trainer.epoch}/{trainer.final_epoch} ["
        tail = f"] {batch}/{total}  loss {self._loss_sum / self._loss_count:.4g}  ETA {format_duration(eta)}"
        cols = self.columns() or 0
        room = cols - 1 - len(head) - len(tail)            # the last column is left free: no wrap at the edge
        width = min(self.width, room) if cols else self.width
        if width >= 5:
            filled = int(width * done)
            bar = "=" * filled + (">" if filled < width else "") + " " * max(width - filled - 1, 0)
            line = head + bar + tail
        else:                                              # too narrow for a bar
            line = f"epoch {trainer.epoch}/{trainer.final_epoch} {batch}/{total}" + tail[tail.index("  loss"):]
        if cols:
            line = line[:cols - 1]
        self._out.write("\r" + line + "\x1b[K")
        self._out.flush()
        self._midline = True

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        self._epoch_times.append(record["time"])
        logged = self._logged(trainer, epoch)
        if not logged and not self._tty:
            return
        remaining = max(trainer.final_epoch - epoch, 0)
        mean = sum(self._epoch_times) / len(self._epoch_times)
        eta = f"  ETA {format_duration(mean * remaining)}" if remaining and not trainer.stop_training else ""
        line = f"epoch {epoch}/{trainer.final_epoch}  {format_record(record)}{eta}"
        if not self._tty:
            self._out.write(line + "\n")
        elif logged:
            self._out.write("\r" + "\n".join(wrap_fields(line, self.columns())) + "\x1b[K\n")
        else:                                              # shown in place until the next epoch's bar replaces it
            cols = self.columns()
            self._out.write("\r" + (line[:cols - 1] if cols else line) + "\x1b[K")
        self._out.flush()
        self._midline = not logged

    def on_train_end(self, trainer: Trainer, history: History) -> None:
        if self._midline:              # an epoch cut short (divergence) left the bar open
            self._out.write("\n")
            self._midline = False
        if history.stop_message:
            text = f"stopped: {history.stop_message}"
            lines = textwrap.wrap(text, max(self.columns() - 1, 20)) if self._tty and self.columns() else [text]
            self._out.write("\n".join(lines) + "\n")
            self._out.flush()


def wrap_fields(line: str, columns: int | None) -> list[str]:
    """Split a summary line at its two-space field separators into lines shorter than ``columns``
    (continuation lines indented by two spaces); a single field longer than that is cut."""
    if not columns or len(line) < columns:
        return [line]
    limit = max(columns - 1, 10)
    out: list[str] = []
    current = ""
    for field in line.split("  "):
        candidate = f"{current}  {field}" if current else (f"  {field}" if out else field)
        if len(candidate) <= limit or not current:
            current = candidate
        else:
            out.append(current)
            current = f"  {field}"
    out.append(current)
    return [s[:limit] for s in out]
