"""Epoch statistics summed over the ranks, so that every rank records (and logs) the same epoch.

Each rank adds its own shards' loss sums, sample counts (or weight sums) and
correct predictions batch by batch; at the end of the epoch the four sums are
all-reduced once (one small message) and the record is formed from the totals:
the same training loss and accuracy as one process over the global batches, up
to float rounding. The gradient norms need no reduction: they are measured
after the gradient all-reduce, on the global batch's gradient.
"""

from __future__ import annotations

from typing import Any

import numpy

from ..training.epoch import EpochStats
from .comm import Communicator
from .sharding import Shard


class ShardedEpochStats(EpochStats):
    """:class:`~deltanet.training.epoch.EpochStats` of one rank's shards, summed over the ranks in :meth:`record`.

    Correct predictions are counted batch by batch (the single-process path
    compares them once per epoch, over rows this rank does not compute); a
    batch where this rank computed only a stand-in row (``shard.empty``)
    counts no rows.
    """

    def __init__(self, task: str, y: Any, perm: Any, params: list[Any] | None, *, comm: Communicator,
                 shard: Shard) -> None:
        super().__init__(task, y, perm, params)
        self.comm, self.shard = comm, shard
        if self.preds is not None:
            self.preds = None
            self.counts_correct = True

    def add(self, start: int, loss: float, size: float, out: Any, yb: Any, norm: float | None,
            sq: list[float] | None) -> None:
        if not self.shard.empty:
            return super().add(start, loss, size, out, yb, norm, sq)
        counts, self.counts_correct = self.counts_correct, False
        try:
            super().add(start, 0.0, 0.0, out[:0], yb[:0], norm, sq)
        finally:
            self.counts_correct = counts

    def record(self, epoch: int, lr: float, model: Any = None, monitor_X: Any = None) -> dict[str, Any]:
        sums = numpy.array([self.loss_sum, self.weight_sum, self.correct, self.seen], dtype=numpy.float64)
        self.comm.allreduce_sum(sums)
        self.loss_sum, self.weight_sum, self.correct = float(sums[0]), float(sums[1]), float(sums[2])
        self.seen = round(float(sums[3]))
        if float(self.correct).is_integer():
            self.correct = int(self.correct)
        return super().record(epoch, lr, model, monitor_X)


__all__ = ["ShardedEpochStats"]
