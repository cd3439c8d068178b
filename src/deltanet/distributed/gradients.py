"""The gradient all-reduce: one ``MPI_Allreduce`` of the flat gradient buffer per step.

With the fused optimizers (the default) every parameter's gradient is a view
into one contiguous buffer per dtype (:func:`deltanet.accel.flat_grads`), so a
step sends that buffer once: each rank scales it by its share of the batch
(see :mod:`.sharding`) and the buffers are summed in place. Parameters that are
not in such a buffer (an optimizer built with ``fused=False``) are packed into
one scratch buffer per dtype, reduced in one call and unpacked.
"""

from __future__ import annotations

import time
from typing import Any

import numpy

from ..accel import flat_grads
from ..parameter import Parameter
from .comm import Communicator


class GradientAllreduce:
    """Sum ``fraction * grad`` over the ranks, in place, for a list of parameters."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm
        self._scratch: dict[Any, Any] = {}      # dtype -> packing buffer (parameters outside a flat buffer)
        #: Number of steps reduced so far, and the time they took (scaling, packing and the all-reduce itself).
        self.steps = 0
        self.seconds = 0.0

    def __call__(self, params: list[Parameter], fraction: float) -> None:
        start = time.perf_counter()
        buffers = flat_grads(params)
        if buffers is not None:
            for g in buffers:
                g *= fraction
                self.comm.allreduce_sum(g)
        else:
            self._packed(params, fraction)
        self.steps += 1
        self.seconds += time.perf_counter() - start

    def poison(self, params: list[Parameter]) -> None:
        """Take part in this step's all-reduce with NaN gradients: the step failed on this rank (a non-finite
        loss or output), and every rank then sees a non-finite gradient norm and stops at the same batch."""
        buffers = flat_grads(params)
        for g in buffers if buffers is not None else [p.grad for p in params]:
            g.fill(numpy.nan)
        self(params, 1.0)

    def _packed(self, params: list[Parameter], fraction: float) -> None:
        by_dtype: dict[Any, list[Parameter]] = {}
        for p in params:
            by_dtype.setdefault(p.dtype, []).append(p)
        for dtype, group in by_dtype.items():
            total = sum(p.size for p in group)
            buf = self._scratch.get(dtype)
            if buf is None or buf.size != total:
                buf = self._scratch[dtype] = numpy.empty(total, dtype=dtype)
            offset = 0
            for p in group:
                buf[offset:offset + p.size].reshape(p.shape)[...] = p.grad
                offset += p.size
            buf *= fraction
            self.comm.allreduce_sum(buf)
            offset = 0
            for p in group:
                p.grad[...] = buf[offset:offset + p.size].reshape(p.shape)
                offset += p.size


__all__ = ["GradientAllreduce"]
