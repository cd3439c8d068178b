"""The MPI communicator, as the data-parallel code uses it: rank, size and five collectives.

mpi4py is imported on first use, so the rest of deltanet never needs it; where
it is missing the error says how to install it (``pip install 'deltanet[mpi]'``:
mpi4py and the MPICH library from the package registry, no system MPI needed).
Importing mpi4py initializes MPI; a process started without ``mpiexec`` is a
job of one rank.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy

INSTALL_HINT = "pip install 'deltanet[mpi]'"


def import_mpi() -> Any:
    """``mpi4py.MPI``, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:      # mpi4py missing, or present without a loadable MPI library
        raise ImportError(f"data-parallel training needs mpi4py and an MPI library: {INSTALL_HINT} ({exc})") from exc
    return MPI


class Communicator:
    """An MPI communicator (default: every process of the job, ``COMM_WORLD``).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        The processes to train over; None: ``MPI.COMM_WORLD``.

    Attributes
    ----------
    rank, size : int
        This process's number and the number of processes.
    is_root : bool
        Whether this is rank 0, the one that writes files and prints.
    seconds : float
        Time spent in :meth:`allreduce_sum` so far (what the benchmark reports as the all-reduce share).
    """

    def __init__(self, comm: Any = None) -> None:
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank = int(self.comm.Get_rank())
        self.size = int(self.comm.Get_size())
        self.seconds = 0.0

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, array: Any) -> None:
        """Replace the contiguous ``array`` by its sum over the ranks, in place (one ``MPI_Allreduce``)."""
        start = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        self.seconds += time.perf_counter() - start

    def bcast_array(self, array: Any, root: int = 0) -> None:
        """Overwrite ``array`` on every rank by rank ``root``'s, in place."""
        if array.flags.c_contiguous or array.flags.f_contiguous:
            self.comm.Bcast(array, root=root)
        else:                       # MPI needs one block of memory
            tmp = numpy.ascontiguousarray(array)
            self.comm.Bcast(tmp, root=root)
            array[...] = tmp

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Rank ``root``'s (picklable) object, on every rank."""
        return self.comm.bcast(obj, root=root)

    def allgather(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order, on every rank."""
        return self.comm.allgather(obj)

    def abort(self, message: str | None = None, code: int = 1) -> None:
        """Print ``message`` (one line, stderr) and end every process of the job now (``MPI_Abort``)."""
        if message:
            print(message, file=sys.stderr, flush=True)
        sys.stdout.flush()
        try:
            self.comm.Abort(code)
        finally:                    # MPI_Abort can return when another rank's abort is already tearing the job down
            os._exit(code)

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"


__all__ = ["INSTALL_HINT", "Communicator", "import_mpi"]
