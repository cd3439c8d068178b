"""Which rows of a global batch each rank computes.

Every rank holds the whole training set and draws the same shuffle (the seed
is shared), so every rank knows every global batch; rank r of N takes the
contiguous rows ``[start_r, end_r)`` of it, the first ``m mod N`` ranks one row
more than the others (``numpy.array_split``'s rule). For an m-row batch:

    q, s = divmod(m, N),   start_r = r q + min(r, s),   end_r = start_r + q + [r < s]

Each rank's loss is the mean over its own rows, so its gradient is weighted by
its share of the batch, ``n_r / m`` (or ``w_r / w`` with sample weights), and
the weighted gradients are summed: sum_r (n_r / m) (1 / n_r) sum_{i in r} g_i
= (1 / m) sum_i g_i, the gradient of the global batch also when shards differ
in size (a plain mean over ranks would weight a 33-row shard like a 32-row one).

A rank whose share is empty (a last batch of fewer rows than ranks) computes a
stand-in row of the batch with weight 0: it takes part in the all-reduce and
adds nothing, and its epoch statistics count no rows.
"""

from __future__ import annotations

from typing import Any


def shard_bounds(m: int, size: int, rank: int) -> tuple[int, int]:
    """``(start, end)`` of rank ``rank``'s rows in a batch of ``m`` rows split over ``size`` ranks."""
    q, s = divmod(m, size)
    start = rank * q + min(rank, s)
    return start, start + q + (1 if rank < s else 0)


class Shard:
    """This rank's part of the current global batch (the state :class:`DataParallel` keeps between calls).

    Attributes
    ----------
    fraction : float
        This rank's share of the batch's loss weight: ``n_r / m``, or the ratio of sample-weight sums.
    empty : bool
        The rank holds no rows (or only rows of weight 0) of this batch and computes a stand-in row.
    """

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size
        self.fraction = 1.0
        self.empty = False

    def take(self, idx: Any, sample_weight: Any = None) -> Any:
        """This rank's rows of the global batch ``idx`` (row numbers into the training set)."""
        start, end = shard_bounds(len(idx), self.size, self.rank)
        local = idx[start:end]
        if sample_weight is None:
            self.fraction = len(local) / len(idx)
            self.empty = len(local) == 0
            return local if len(local) else idx[:1]
        total = float(sample_weight[idx].sum())
        mine = float(sample_weight[local].sum()) if len(local) else 0.0
        self.empty = not mine > 0
        if not self.empty:
            self.fraction = mine / total
            return local
        self.fraction = 0.0
        positive = (sample_weight[idx] > 0).nonzero()[0]     # a stand-in row the loss accepts: weight > 0
        k = int(positive[0]) if len(positive) else 0
        return idx[k:k + 1]


__all__ = ["Shard", "shard_bounds"]
