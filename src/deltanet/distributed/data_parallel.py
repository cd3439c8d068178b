"""The data-parallel context a :class:`~deltanet.training.Trainer` consults: ``Trainer(..., distributed="mpi")``.

Every rank runs the same ``fit`` on the same data; the trainer calls this
object at five points and it does the rest:

=================================  ==============================================================
``begin_fit(trainer, n)``          check that every rank has the same data size and batches;
                                   broadcast rank 0's weights and buffers
``shard_rows(idx, sample_weight)`` this rank's rows of the global batch ``idx``
``begin_backward(model, params)``  just before the backward: with ``overlap``, set the model's hook
                                   so that buckets of the gradient are sent as they fill (:mod:`.overlap`)
``allreduce_gradients(params)``    between backward and clipping + the optimizer step: the global
                                   batch's gradient on every rank (one all-reduce, or the wait for
                                   the buckets in flight)
``abandon_step(params)``           this rank's step failed (non-finite loss): take part in the
                                   all-reduce with NaN so every rank stops at the same batch
``epoch_stats(...)``,              the epoch's sums over the ranks; batch-norm running statistics
``end_epoch(trainer)``             averaged over the ranks; dropout seeded for the next epoch
``abort(exc)``                     an exception escaped the loop on this rank: end the whole job
=================================  ==============================================================
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..parameter import Parameter
from . import state
from .comm import Communicator
from .gradients import GradientAllreduce
from .metrics import ShardedEpochStats
from .overlap import DEFAULT_BUCKET_BYTES, OverlappedAllreduce
from .sharding import Shard, shard_bounds

#: ``DataParallel(overlap=...)``'s default (see :mod:`.overlap` for the measurement behind it).
OVERLAP_DEFAULT = False


class DataParallel:
    """Data-parallel training over the processes of an MPI communicator.

    Parameters
    ----------
    comm : Communicator or mpi4py.MPI.Comm, optional
        The ranks to train over (default: every process, ``MPI.COMM_WORLD``).
    abort_on_error : bool
        An exception that escapes the training loop on one rank ends every rank
        of the job (``MPI_Abort``) after a one-line message naming the rank;
        otherwise the other ranks would wait in the next all-reduce for ever.
    overlap : bool
        Send the gradient in buckets during the backward pass (non-blocking all-reduces, :mod:`.overlap`)
        instead of in one all-reduce after it. Same result to float rounding. Default: off (no faster on one
        machine, where the ranks' own cores do the copying: measured 0.95-0.98x, see :mod:`.overlap`).
    bucket_bytes : int
        With ``overlap``: the largest bucket, in bytes (default 4 MiB).
    progress : {"test", "wait"}
        With ``overlap``: ``"test"`` tests the requests in flight after every layer's backward (MPICH
        progresses a non-blocking collective only inside MPI calls, or in its progress thread with
        ``MPIR_CVAR_ASYNC_PROGRESS=1``); ``"wait"`` only waits at the end.

    Attributes
    ----------
    comm : Communicator
    rank, size : int
    is_root : bool
        Rank 0: the rank that prints and writes files.
    shard : Shard
        The current batch's share of this rank.
    """

    def __init__(self, comm: Any = None, *, abort_on_error: bool = True, overlap: bool = OVERLAP_DEFAULT,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES, progress: str = "test") -> None:
        self.comm = comm if isinstance(comm, Communicator) else Communicator(comm)
        self.rank, self.size = self.comm.rank, self.comm.size
        self.abort_on_error = bool(abort_on_error)
        self.shard = Shard(self.rank, self.size)
        self.allreduce = GradientAllreduce(self.comm)
        self.overlap = bool(overlap)
        self.overlapped = OverlappedAllreduce(self.comm, bucket_bytes, progress)
        self._model: Any = None
        self._armed = False

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- set-up -----------------------------------------------------------------------------
    def shared_seed(self, seed: int | None) -> int:
        """The trainer's seed, the same on every rank (None: rank 0 draws it)."""
        return state.shared_seed(self.comm, seed)

    def rank_seed(self, seq: numpy.random.SeedSequence) -> numpy.random.SeedSequence:
        """This rank's dropout seed sequence, derived from the trainer's and the rank."""
        return state.rank_seed(seq, self.rank)

    def begin_fit(self, trainer: Any, n_rows: int) -> None:
        """Check that the ranks agree on the run (same data size, batches, model size), give every rank
        rank 0's weights and buffers, and seed this rank's dropout for the coming epoch. Raises ValueError on
        every rank where they do not agree."""
        if backend.xp is not numpy:
            raise ValueError("data-parallel training over MPI runs on the NumPy backend")
        mine = (int(n_rows), int(trainer.batch_size), int(trainer.n_batches), int(trainer.model.num_parameters()),
                self.overlap, self.overlapped.bucket_bytes if self.overlap else 0)
        everyone = self.comm.allgather(mine)
        if any(other != mine for other in everyone):     # the collectives each rank posts follow from these
            shown = "; ".join(f"rank {r}: {n} rows, batch {b}, {k} batches, {p} parameters"
                              + (f", overlap with {o_b} B buckets" if o else ", no overlap")
                              for r, (n, b, k, p, o, o_b) in enumerate(everyone))
            raise ValueError(f"the {self.size} ranks must train the same model on the same data, got {shown}")
        if trainer.batch_norm:
            last = n_rows - (trainer.n_batches - 1) * trainer.batch_size
            smallest = min(last, trainer.batch_size) if trainer.n_batches > 1 else last
            start, end = shard_bounds(smallest, self.size, self.size - 1)
            if end - start < 2:
                raise ValueError(f"BatchNorm under data-parallel training needs at least 2 rows of every batch on "
                                 f"every rank: a batch of {smallest} rows over {self.size} ranks leaves {end - start}; "
                                 f"use a batch size (and a training set size mod the batch size) of at least "
                                 f"{2 * self.size}")
        state.broadcast_model(self.comm, trainer.model)
        self._model = trainer.model
        state.seed_epoch_dropout(trainer.model, trainer.dropout_seed, self.rank, trainer.epoch + 1)

    # -- every batch ----------------------------------------------------------------------------
    def shard_rows(self, idx: Any, sample_weight: Any = None) -> Any:
        """This rank's rows of the global batch ``idx`` (see :mod:`.sharding`)."""
        return self.shard.take(idx, sample_weight)

    def begin_backward(self, model: Any, params: list[Parameter]) -> None:
        """Just before ``model``'s backward of this step: with ``overlap`` (and a plan that applies: a
        ``Sequential`` over flat buffers), the gradient's buckets are sent as the backward fills them."""
        self._model = model
        if self.overlap and self.overlapped.applies(model, params):
            self.overlapped.arm(model, self.shard.fraction)
            self._armed = True

    def allreduce_gradients(self, params: list[Parameter]) -> None:
        """Every ``p.grad`` becomes the global batch's gradient: sum over ranks of (share x local mean gradient)."""
        if self._armed:
            self._armed = False
            self.overlapped.finish()
        else:
            self.allreduce(params, self.shard.fraction)

    def abandon_step(self, params: list[Parameter]) -> None:
        """This rank cannot complete the step (a non-finite loss or output, before its backward): send NaN in the
        collectives the other ranks post for this step (the same buckets under ``overlap``)."""
        if self.overlap and self.overlapped.applies(self._model, params):
            self.overlapped.poison()
        else:
            self.allreduce.poison(params)

    # -- every epoch ------------------------------------------------------------------------------
    def epoch_stats(self, task: str, y: Any, perm: Any, params: list[Parameter] | None) -> ShardedEpochStats:
        """The epoch's statistics, summed over the ranks when the record is made."""
        return ShardedEpochStats(task, y, perm, params, comm=self.comm, shard=self.shard)

    def end_epoch(self, trainer: Any) -> None:
        """After the epoch's batches: the batch-norm running statistics averaged over the ranks, and this
        rank's dropout seeded for the next epoch."""
        state.average_buffers(self.comm, trainer.model)
        state.seed_epoch_dropout(trainer.model, trainer.dropout_seed, self.rank, trainer.epoch + 1)

    # -- failure ------------------------------------------------------------------------------------
    def abort(self, exc: BaseException) -> None:
        """End every rank of the job with a one-line message naming this rank (if ``abort_on_error``); exit code 1,
        130 for Ctrl-C (as a shell reports it)."""
        if self.abort_on_error:
            from .failure import abort_message

            self.comm.abort(abort_message(self.rank, self.size, exc), 130 if isinstance(exc, KeyboardInterrupt) else 1)

    @property
    def allreduce_seconds(self) -> float:
        """Time spent in all-reduces so far (gradients, statistics, buffers; waiting for slower ranks included;
        under ``overlap`` the gradient's time not hidden behind the backward)."""
        return self.comm.seconds + self.overlapped.seconds

    @property
    def gradient_seconds(self) -> float:
        """Time spent combining gradients so far: the scaling by each rank's share and the all-reduces (under
        ``overlap``: the time in the overlap's calls during and after the backward, what it did not hide)."""
        return self.allreduce.seconds + self.overlapped.seconds

    def __repr__(self) -> str:
        extra = f", overlap=True, bucket_bytes={self.overlapped.bucket_bytes}" if self.overlap else ""
        return f"DataParallel(rank={self.rank}, size={self.size}{extra})"


def data_parallel(distributed: Any) -> DataParallel | None:
    """The trainer's ``distributed`` argument as a context: None, ``"mpi"`` (every process of the job) or a
    :class:`DataParallel`."""
    if distributed is None or isinstance(distributed, DataParallel):
        return distributed
    if distributed == "mpi":
        return DataParallel()
    raise ValueError(f"distributed must be None, 'mpi' or a deltanet.distributed.DataParallel, got {distributed!r}")


__all__ = ["DataParallel", "data_parallel"]
