"""Independent tasks spread over the ranks (task parallelism, as the hyper-parameter search uses it).

Where data-parallel training splits one run's batches, here each rank runs
whole tasks of its own: rank r takes tasks r, r + N, r + 2N, ... of the list,
and every rank receives every result, in the list's order (one ``allgather``
of picklable results).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .comm import Communicator

T = TypeVar("T")


def map_over_ranks(comm: Communicator, fn: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
    """``[fn(x) for x in items]`` computed across the ranks, the whole list on every rank (collective)."""
    mine = {i: fn(items[i]) for i in range(comm.rank, len(items), comm.size)}
    out: list[Any] = [None] * len(items)
    for part in comm.allgather(mine):
        for i, value in part.items():
            out[i] = value
    return out


__all__ = ["map_over_ranks"]
