"""One epoch's statistics, gathered batch by batch: the record the history keeps.

Per batch: the loss weighted by the batch's size (or its sample weights), the
gradient norm where it was measured, per-parameter gradient norms
(``record_layers``), and the predictions. For integer class labels each batch's
predicted classes are kept and compared with the labels once at the end of the
epoch (one pass instead of one comparison per batch).

With ``record_layers``, the record also holds what a learner watches backprop
do to each layer: dead (ReLU) and saturated (tanh, sigmoid) unit fractions on a
fixed sample of training rows, and the last step's update/weight ratio per
weight matrix (:func:`~deltanet.training.metrics.unit_health`,
:func:`~deltanet.training.metrics.update_ratios`).
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..parameter import Parameter
from .metrics import correct_count, unit_health, update_ratios


class EpochStats:
    """Running sums of one training epoch.

    Parameters
    ----------
    task : str
    y : array
        The epoch's training targets (all rows).
    perm : array
        The epoch's order of the rows.
    params : list of Parameter or None
        The parameters whose gradient norms, and (for weight matrices) update
        ratios, the record holds (``record_layers``), or None.
    """

    def __init__(self, task: str, y: Any, perm: Any, params: list[Parameter] | None) -> None:
        self.task, self.y, self.perm = task, y, perm
        classifies = task in ("classification", "multilabel")
        self.preds = (backend.xp.empty(len(perm), dtype=numpy.intp)
                      if task == "classification" and y.ndim == 1 else None)
        self.counts_correct = self.preds is None and classifies
        self.loss_sum = self.weight_sum = self.correct = self.grad_norm_sum = 0.0
        self.measured = self.batches = self.seen = 0
        self.param_names = None if params is None else [p.name for p in params]
        self.layer_sums = None if params is None else numpy.zeros(len(params))
        self.watched = [p for p in params if p.value.ndim >= 2] if params is not None else []
        self.before: list[Any] | None = None     # the weights before the epoch's last step

    def keep_weights(self) -> None:
        """Copy the watched weights before a step: the epoch's last, whose update/weight ratio the record holds."""
        if self.watched:
            self.before = [backend.xp.array(p.value, copy=True) for p in self.watched]

    def add(self, start: int, loss: float, size: float, out: Any, yb: Any, norm: float | None,
            sq: list[float] | None) -> None:
        """One batch: rows ``perm[start:start + len(out)]``, its mean loss, its size (or weight sum), its
        outputs and targets, its gradient norm (None: not measured) and per-parameter squared norms."""
        rows = out.shape[0]
        self.batches += 1
        self.seen += rows
        self.loss_sum += loss * size
        self.weight_sum += size
        if self.preds is not None:
            out.argmax(axis=-1, out=self.preds[start:start + rows])
        elif self.counts_correct:
            self.correct += correct_count(out, yb, self.task)
        if norm is not None:
            self.grad_norm_sum += norm
            self.measured += 1
        if self.layer_sums is not None and sq is not None:
            self.layer_sums += numpy.sqrt(sq)

    def record(self, epoch: int, lr: float, model: Any = None, monitor_X: Any = None) -> dict[str, Any]:
        """The epoch's history record (validation and timing fields left for the trainer); with ``model`` and
        ``monitor_X`` (``record_layers``), the dead and saturated unit fractions on those rows too."""
        correct = self.correct
        if self.preds is not None:
            seen = self.seen
            correct = int(backend.xp.count_nonzero(self.preds[:seen] == self.y[self.perm[:seen]]))
        classifies = self.task in ("classification", "multilabel")
        layers = {}
        if self.layer_sums is not None and self.batches:
            layers = {name: float(s / self.batches) for name, s in zip(self.param_names, self.layer_sums, strict=True)}
        return {
            "epoch": epoch,
            "train_loss": self.loss_sum / self.weight_sum,
            "val_loss": None,
            "train_accuracy": correct / self.seen if classifies else None,
            "val_accuracy": None,
            "lr": lr,
            "grad_norm": self.grad_norm_sum / self.measured if self.measured else None,
            "time": 0.0,
            "layer_grad_norms": layers,
            **self._layer_health(model, monitor_X),
        }

    def _layer_health(self, model: Any, monitor_X: Any) -> dict[str, dict[str, float]]:
        units = unit_health(model, monitor_X) if model is not None and monitor_X is not None and monitor_X.shape[0] else {}
        return {"dead_fraction": {k: v["dead"] for k, v in units.items() if "dead" in v},
                "saturated_fraction": {k: v["saturated"] for k, v in units.items() if "saturated" in v},
                "update_ratio": update_ratios(self.watched, self.before) if self.before is not None else {}}


__all__ = ["EpochStats"]
