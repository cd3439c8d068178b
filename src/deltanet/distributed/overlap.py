r"""The gradient all-reduce overlapped with the backward pass: buckets of the flat buffer sent as they fill.

Why: across machines the network card moves a bucket's bytes while the cores compute the layers still to
come, so up to the backward's share of the step (about 2/3: the weight and input gradients of every
layer) can hide the all-reduce (the README's "On paper, for a cluster"). Measured on one 2-core machine
(``python benchmarks/bench_mpi.py --overlap``, ``benchmarks/results/mpi.md``, 2 ranks, 784-1024-1024-10,
Adam) it does not pay: 0.97-0.98x of the blocking all-reduce's speed with 4 MiB buckets and tests after each
layer, 0.95-0.98x without the tests, 0.50-0.61x with MPICH's progress thread (it needs a core of its own).
Over shared memory the all-reduce is copying done by the ranks' own cores, so it is interleaved with the
backward, not run beside it; and most of the exposed time is waiting for the slower rank. Hence
``DataParallel(overlap=False)`` by default, and ``progress="test"``, 4 MiB buckets when it is on.

How. Backward runs from the last child of the model's ``Sequential`` to the
first; once child ``i``'s backward has returned, every parameter that only
children ``i, i+1, ...`` hold has its final gradient for the step
(:attr:`Sequential.after_child_backward <deltanet.modules.Sequential>` calls
:meth:`OverlappedAllreduce.after_child` then). The flat gradient buffer of the
fused optimizers (:func:`deltanet.accel.flat_grads`) is cut into **buckets**,
contiguous slices:

* a parameter's *ready index* is the smallest forward index of the children
  that hold it (a parameter shared by children 0 and 2 is final only after
  child 0's backward); a bucket's is the smallest of its parameters';
* the buffer is cut wherever the ready index changes (the fused layout puts
  the weights first, then the biases and normalization parameters, so a
  layer's weight and bias are not adjacent), and a run longer than
  ``bucket_bytes`` is cut into equal pieces of at most ``bucket_bytes``;
* buckets start in the order of decreasing ready index, then of decreasing
  position (the end of each run first): one fixed order on every rank.

After child ``i``: every bucket with ready index ``i`` is scaled by this rank's
share (``g_b <- (n_r / m) g_b``, :mod:`.sharding`) and sent with a
non-blocking in-place ``MPI_Iallreduce`` (sum); with ``progress="test"`` the
requests in flight are tested (``MPI_Testall``), which is where MPICH moves a
non-blocking collective on (it has no progress of its own unless its progress
thread is on: ``MPIR_CVAR_ASYNC_PROGRESS=1``). :meth:`finish`, between backward
and the gradient hook, starts what is left (buckets of children whose
backward did not run, ready index -1: parameters outside every child) and
waits for all: from there on every ``p.grad`` is the global batch's gradient,
sum_r (n_r / m) g_r, exactly what the blocking all-reduce gives up to the
order of the float additions inside MPI.

**The same collectives on every rank.** MPI matches non-blocking collectives
by the order they are posted, so every rank must post the same buckets in the
same order. The plan depends only on the model's structure and the flat
layout, alike on every rank (``DataParallel.begin_fit`` checks that the ranks
agree on ``overlap``, ``bucket_bytes`` and the model); a rank whose step fails
before its backward (a non-finite loss) calls :meth:`poison`, which posts every
bucket, in the same order, filled with NaN: the other ranks' gradients become
NaN and every rank stops at the same batch. Where no plan applies (a model
that is not a ``Sequential``, parameters outside a flat buffer) every rank
falls back to the blocking all-reduce of :mod:`.gradients`.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy

from ..accel import FlatBuffer, flat_buffers
from ..modules.containers import Sequential
from ..parameter import Parameter
from .comm import Communicator

#: Default largest bucket: 4 MiB (see the module's opening for the measurement).
DEFAULT_BUCKET_BYTES = 4 << 20
PROGRESS_MODES = ("test", "wait")


class Bucket(NamedTuple):
    """A contiguous slice of one flat gradient buffer, reduced by one ``MPI_Iallreduce``."""

    #: The slice (a view into ``FlatBuffer.grad``).
    view: Any
    #: The parameters whose gradients lie (partly) in the slice.
    params: tuple[Parameter, ...]
    #: The forward index of the child after whose backward the slice is final; -1: only at :meth:`finish`.
    ready: int
    #: Index of the flat buffer, and where the slice starts in it.
    buffer: int
    start: int


def ready_indices(model: Sequential) -> dict[int, int]:
    """``id(p) -> ready index`` for every parameter of ``model``: the smallest forward index of the children
    that hold it (backward visits the children from the last to the first)."""
    ready: dict[int, int] = {}
    for i in range(len(model) - 1, -1, -1):
        for p in model[i].parameters():
            ready[id(p)] = i
    return ready


def plan_buckets(buffers: list[FlatBuffer], ready: dict[int, int], bucket_bytes: int) -> list[Bucket]:
    """The buckets of ``buffers`` in start order (see the module's opening): cut at every change of ready
    index, runs longer than ``bucket_bytes`` cut into equal pieces, sorted by decreasing ready index and
    position."""
    buckets: list[Bucket] = []
    for b, buf in enumerate(buffers):
        runs: list[tuple[int, int, int]] = []             # (start, end, ready) in elements
        for p, offset in zip(buf.params, buf.offsets, strict=True):
            r = ready.get(id(p), -1)
            if runs and runs[-1][2] == r:
                runs[-1] = (runs[-1][0], offset + p.size, r)
            else:
                runs.append((offset, offset + p.size, r))
        per = max(1, int(bucket_bytes) // buf.grad.itemsize)
        for start, end, r in runs:
            pieces = -(-(end - start) // per)
            cuts = numpy.linspace(start, end, pieces + 1).round().astype(int)
            for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
                lo, hi = int(lo), int(hi)
                touched = tuple(p for p, off in zip(buf.params, buf.offsets, strict=True) if off < hi and off + p.size > lo)
                buckets.append(Bucket(buf.grad[lo:hi], touched, r, b, lo))
    buckets.sort(key=lambda k: (-k.ready, k.buffer, -k.start))
    return buckets


class OverlappedAllreduce:
    """Sum ``fraction * grad`` over the ranks, bucket by bucket, while the backward pass runs.

    Parameters
    ----------
    comm : Communicator
    bucket_bytes : int
        The largest bucket, in bytes (> 0).
    progress : {"test", "wait"}
        ``"test"``: test the requests in flight after every child's backward (drives MPICH's progress);
        ``"wait"``: only start them, and wait at :meth:`finish`.

    Attributes
    ----------
    steps : int
        Steps reduced with overlap so far.
    seconds : float
        Time spent in this object's calls so far (scaling, posting, testing, the final wait): the part of the
        all-reduce the backward did not hide.
    buckets : list of Bucket
        The current plan, in start order (empty before the first step).
    """

    def __init__(self, comm: Communicator, bucket_bytes: int = DEFAULT_BUCKET_BYTES, progress: str = "test") -> None:
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, (int, numpy.integer)) or bucket_bytes <= 0:
            raise ValueError(f"bucket_bytes must be a positive number of bytes, got {bucket_bytes!r}")
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
        self.comm = comm
        self.bucket_bytes = int(bucket_bytes)
        self.progress = progress
        self.steps = 0
        self.seconds = 0.0
        self.buckets: list[Bucket] = []
        self._key: tuple[Any, ...] | None = None
        self._planned: Sequential | None = None     # the model the plan was made for
        self._buffers: list[FlatBuffer] = []
        self._model: Sequential | None = None      # armed: the model whose hook is set
        self._fraction = 1.0
        self._next = 0                             # buckets[:_next] are posted
        self._requests: list[Any] = []
        self._done = 0                             # requests[:_done] are known complete

    # -- the plan -------------------------------------------------------------------------------------
    def applies(self, model: Any, params: list[Parameter]) -> bool:
        """Whether ``params`` can be reduced bucket by bucket during ``model``'s backward (a ``Sequential``, every
        parameter in an intact flat buffer); builds or reuses the plan. Alike on every rank."""
        if not isinstance(model, Sequential) or not params:
            return False
        key = (len(model), *map(id, params))       # with the model itself: its object, not its id, is kept
        if self._planned is model and key == self._key and all(buf.is_bound() for buf in self._buffers):
            return True
        buffers = flat_buffers(params)
        if buffers is None:
            self._key = None
            return False
        self._buffers = buffers
        self.buckets = plan_buckets(buffers, ready_indices(model), self.bucket_bytes)
        self._key, self._planned = key, model
        return True

    # -- one step -------------------------------------------------------------------------------------
    def arm(self, model: Sequential, fraction: float) -> None:
        """Before ``model``'s backward (after :meth:`applies`): set its hook so that buckets start as they fill."""
        if self._model is not None:
            raise RuntimeError("OverlappedAllreduce.arm: the previous step was not finished")
        self._model, self._fraction = model, float(fraction)
        self._next, self._requests, self._done = 0, [], 0
        model.after_child_backward = self.after_child

    def after_child(self, i: int) -> None:
        """The hook: child ``i``'s backward returned; post the buckets now final, and test those in flight."""
        start = time.perf_counter()
        buckets, n = self.buckets, len(self.buckets)
        while self._next < n and buckets[self._next].ready >= i:
            self._post(buckets[self._next], self._fraction)
        if self.progress == "test" and self._done < len(self._requests):
            if self.comm.MPI.Request.Testall(self._requests[self._done:]):
                self._done = len(self._requests)
        self.seconds += time.perf_counter() - start

    def finish(self) -> None:
        """After the backward: post the remaining buckets, wait for every request, remove the hook."""
        start = time.perf_counter()
        model, self._model = self._model, None
        if model is not None:
            vars(model).pop("after_child_backward", None)
        while self._next < len(self.buckets):
            self._post(self.buckets[self._next], self._fraction)
        self.comm.MPI.Request.Waitall(self._requests)
        self._requests = []
        self.steps += 1
        self.seconds += time.perf_counter() - start

    def poison(self) -> None:
        """This rank's step failed before its backward: post every bucket, in the plan's order, filled with
        NaN, and wait (the other ranks' gradients become NaN; every rank stops at the same batch)."""
        if self._model is not None:
            raise RuntimeError("OverlappedAllreduce.poison: a step whose backward started cannot be abandoned")
        for buf in self._buffers:
            buf.sync()                  # lazily zeroed gradients: filled now, so that posting leaves them alone
            buf.grad.fill(numpy.nan)
        self._next, self._requests, self._fraction = 0, [], 1.0
        self.finish()

    def _post(self, bucket: Bucket, fraction: float) -> None:
        for p in bucket.params:
            if p.grad_is_zero or p.sink is not None:
                _ = p.grad              # a lazily zeroed gradient (no backward wrote it): its zeros, now
        view = bucket.view
        if fraction != 1.0:
            view *= fraction            # g_b <- (n_r / m) g_b
        MPI = self.comm.MPI
        self._requests.append(self.comm.comm.Iallreduce(MPI.IN_PLACE, view, op=MPI.SUM))
        self._next += 1


__all__ = ["DEFAULT_BUCKET_BYTES", "PROGRESS_MODES", "Bucket", "OverlappedAllreduce", "plan_buckets",
           "ready_indices"]
