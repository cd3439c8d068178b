"""The record of a training run: one dict per epoch, and why the run stopped."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator
from typing import Any

from ..io import atomic_write

#: Keys of every epoch record, in column order.
RECORD_KEYS = ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "grad_norm", "time",
               "layer_grad_norms", "dead_fraction", "saturated_fraction", "update_ratio")
#: The record keys whose values are per-layer dicts (one CSV column per entry).
LAYER_KEYS = ("layer_grad_norms", "dead_fraction", "saturated_fraction", "update_ratio")

#: Values ``History.stop_reason`` takes.
STOP_REASONS = ("max_epochs", "loss_threshold", "grad_norm_threshold", "early_stopping", "diverged", "interrupted",
                "callback", "converged", "max_fun")


class History:
    """Per-epoch records of a training run.

    Attributes
    ----------
    records : list of dict
        One dict per epoch with the keys of :data:`RECORD_KEYS`:
        ``epoch`` (1-based), ``train_loss`` (mean over the epoch's batches, weighted
        by batch size; includes the L2 term when ``loss_includes_l2``),
        ``val_loss`` (data loss on the validation set, eval mode; None without
        validation), ``train_accuracy`` / ``val_accuracy`` (classification and
        multilabel; None otherwise -- the training accuracy is counted on the
        training batches as they were seen, in training mode), ``lr`` (the learning
        rate of the epoch's last step), ``grad_norm`` (mean over batches of the
        global gradient L2 norm before clipping; the last batch's alone where the
        trainer folded the others' gradients, see :class:`Trainer`), ``time`` (wall seconds of the
        epoch, validation included), ``layer_grad_norms`` ({parameter name: mean
        gradient L2 norm over the epoch}), ``dead_fraction`` ({module path: fraction
        of ReLU/LeakyReLU units that output <= 0 for every row of a fixed sample of
        training rows, measured at the epoch's end in eval mode}),
        ``saturated_fraction`` (the same for tanh/sigmoid units stuck near their
        asymptotes), ``update_ratio`` ({weight name: ||dW|| / ||W|| of the epoch's
        last step}); the last four are ``{}`` when the trainer does not record layers.
    stop_reason : str or None
        Which criterion ended the last ``fit`` (:data:`STOP_REASONS`).
    stop_message : str or None
        The same, for a human, with the numbers that triggered it.
    loss_includes_l2 : bool
        Whether ``train_loss`` includes lambda/2 sum ||W||_F^2.
    best_epoch : int or None
        The epoch of the best monitored value (early stopping's, else the lowest
        validation loss, else the lowest training loss).

    ``history["val_loss"]`` is the list of one key over the epochs; ``len(history)``
    the number of epochs.
    """

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in records] if records else []
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        self.loss_includes_l2: bool = False
        self.best_epoch: int | None = None
        self.task: str | None = None

    # -- access --------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            raise ValueError(f"History: record misses keys {missing}")
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str) -> list[Any]:
        if not isinstance(key, str):
            raise TypeError(f"History is indexed by a record key such as 'val_loss', got {key!r}; "
                            "use history.records[i] for an epoch")
        known = set(RECORD_KEYS).union(*(r.keys() for r in self.records)) if self.records else set(RECORD_KEYS)
        if key not in known:
            raise KeyError(f"unknown history key {key!r}; keys: {', '.join(sorted(known))}")
        return [r.get(key) for r in self.records]

    @property
    def last(self) -> dict[str, Any] | None:
        """The last epoch's record (None before the first epoch)."""
        return self.records[-1] if self.records else None

    @property
    def epochs(self) -> int:
        return len(self.records)

    def best(self, key: str = "val_loss", mode: str = "min") -> int | None:
        """The epoch with the lowest (``mode="min"``) or highest value of ``key`` (None if never recorded)."""
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        pairs = [(r[key], r["epoch"]) for r in self.records if _is_number(r.get(key))]
        if not pairs:
            return None
        sign = 1.0 if mode == "min" else -1.0
        return min(pairs, key=lambda p: (sign * p[0], p[1]))[1]

    def __repr__(self) -> str:
        last = self.last
        tail = "" if last is None else f", last train_loss={last['train_loss']:.6g}"
        return f"History(epochs={len(self)}{tail}, stop_reason={self.stop_reason!r})"

    # -- serialization ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (records copied)."""
        return {"records": [dict(r) for r in self.records], "stop_reason": self.stop_reason,
                "stop_message": self.stop_message, "loss_includes_l2": self.loss_includes_l2,
                "best_epoch": self.best_epoch, "task": self.task}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        if not isinstance(d, dict) or "records" not in d:
            raise ValueError("History.from_dict expects a dict with a 'records' list (from History.to_dict)")
        h = cls(d["records"])
        h.stop_reason = d.get("stop_reason")
        h.stop_message = d.get("stop_message")
        h.loss_includes_l2 = bool(d.get("loss_includes_l2", False))
        h.best_epoch = d.get("best_epoch")
        h.task = d.get("task")
        return h

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write the history as JSON to ``path`` (atomically) and return the JSON text."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=True)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> History:
        """Read a history from a JSON file path or from JSON text."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            with open(source, encoding="utf-8") as f:
                text = f.read()
        return cls.from_dict(json.loads(text))

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """Write one row per epoch as CSV (and return the text).

        Scalar keys are columns; the per-layer dicts become one column per entry,
        ``layer_grad_norms[0.weight]``, ``dead_fraction[1]``. Missing values are empty.
        """
        scalar = [k for k in RECORD_KEYS if k not in LAYER_KEYS]
        extra = [k for r in self.records for k in r if k not in RECORD_KEYS]
        columns = scalar + list(dict.fromkeys(extra))
        nested = []
        for key in LAYER_KEYS:
            names = list(dict.fromkeys(n for r in self.records for n in (r.get(key) or {})))
            nested += [(key, n) for n in names]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns + [f"{k}[{n}]" for k, n in nested])
        for r in self.records:
            row = [_cell(r.get(k)) for k in columns]
            row += [_cell((r.get(k) or {}).get(n)) for k, n in nested]
            writer.writerow(row)
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically (:func:`deltanet.io.atomic_write`)."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
