"""The command under ``mpiexec -n N``: every rank trains, rank 0 alone prints and writes, the ranks end together.

``deltanet train`` notices the launcher (:func:`deltanet.distributed.launched_size`)
and runs the same command on every rank with ``Trainer(distributed=...)``:
ranks other than 0 load the same data, build the same model, train, and then
wait for rank 0 to write the run directory, whose exit code becomes theirs.
A rank that stops before training (a usage error, a run directory that cannot
be made) or raises anywhere ends every rank at once (``MPI_Abort``): the
others would otherwise wait in their first collective for ever.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ._common import PROG, UsageError


class MPIRun:
    """This rank's part of a data-parallel command.

    Attributes
    ----------
    dp : deltanet.distributed.DataParallel
        The trainer's ``distributed`` argument (``overlap``: ``--mpi-overlap``/``--no-mpi-overlap``, None: the
        default).
    ranks_here : int
        Ranks on this machine.
    threads : int or None
        BLAS threads per rank set from cores / ranks_here (None: ``OMP_NUM_THREADS``
        or ``OPENBLAS_NUM_THREADS`` decided).
    trained : bool
        Set by the command once the ranks' shared work (``fit``, the search) is done; from then on the ranks
        end together.
    """

    def __init__(self, overlap: bool | None = None) -> None:
        from ..distributed import DataParallel, local_size, threads_per_rank

        self.dp = DataParallel() if overlap is None else DataParallel(overlap=overlap)
        self.ranks_here = local_size(self.dp.comm)
        self.threads = threads_per_rank(self.ranks_here)
        self.trained = False

    @property
    def is_root(self) -> bool:
        return self.dp.is_root

    def describe(self, batch_size: int) -> str:
        """The progress line that says how the run is split."""
        size = self.dp.size
        q, s = divmod(batch_size, size)
        per_rank = f"{q}" if not s else f"{q}-{q + 1}"
        threads = (f"{self.threads} BLAS thread{'s' if self.threads != 1 else ''} per rank" if self.threads is not None
                   else "BLAS threads from OMP_NUM_THREADS/OPENBLAS_NUM_THREADS")
        line = f"data-parallel: {size} MPI ranks, global batch {batch_size} ({per_rank} rows per rank), {threads}"
        if self.dp.overlap:
            line += f", all-reduce overlapped with the backward ({self.dp.overlapped.bucket_bytes / 2**20:g} MiB buckets)"
        cores = os.cpu_count() or 1
        if self.ranks_here > cores:
            line += f"; warning: {self.ranks_here} ranks share {cores} cores on this machine (use mpiexec -n <= {cores})"
        return line

    def abort(self, message: str | None, code: int) -> None:
        self.dp.comm.abort(message, code)

    def finish(self, code: int | None) -> int:
        """After the command on this rank: rank 0's exit code on every rank; a rank that ends before its
        ``fit`` returned ends the job (the others are waiting in a collective)."""
        if not self.trained:
            self.abort(None, int(code or 1))
        return int(self.dp.comm.bcast(code if self.is_root else None) or 0)


def run_on_ranks(command: Callable[[argparse.Namespace, MPIRun], int | None], args: argparse.Namespace) -> int:
    """Run ``command(args, job)`` on this rank; every failure ends the whole job with one line naming the rank."""
    from ..distributed import abort_message

    job = MPIRun(overlap=getattr(args, "mpi_overlap", None))       # deltanet train --mpi-overlap
    if not job.is_root:
        args.quiet = True
    try:
        code = command(args, job)
    except UsageError as exc:
        text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        job.abort(f"{PROG}: error: {text}" + (f" (rank {job.dp.rank} of {job.dp.size})" if job.dp.rank else ""), 2)
    except SystemExit as exc:
        job.abort(None, exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:
        job.abort(abort_message(job.dp.rank, job.dp.size, exc), 130 if isinstance(exc, KeyboardInterrupt) else 1)
    sys.stdout.flush()
    return job.finish(code)


def mpi_launched() -> bool:
    """Whether this process is one of several ranks started by an MPI launcher."""
    from ..distributed import launched_size

    return launched_size() > 1


__all__ = ["MPIRun", "mpi_launched", "run_on_ranks"]
