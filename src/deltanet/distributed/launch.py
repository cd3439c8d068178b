"""Whether this process was started by an MPI launcher, and the BLAS threads each rank may use.

``mpiexec -n N deltanet train ...`` needs no option: the launcher's
environment (``PMI_SIZE`` from MPICH and Intel MPI, ``OMPI_COMM_WORLD_SIZE``
from Open MPI, ``MV2_COMM_WORLD_SIZE`` from MVAPICH) says there are N > 1
ranks. N ranks on one machine share its cores: each rank's BLAS (and Numba)
gets cores / (ranks on this machine) threads, unless ``OMP_NUM_THREADS`` or
``OPENBLAS_NUM_THREADS`` already says how many.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import sys
from typing import Any

import numpy

from .comm import Communicator

_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def launched_size(environ: Any = None) -> int:
    """The number of ranks the MPI launcher started (1 when this process was not started by one)."""
    environ = os.environ if environ is None else environ
    for name in _SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 1


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_size(comm: Communicator) -> int:
    """The number of ranks on this machine (collective: every rank calls it)."""
    MPI = comm.MPI
    node = comm.comm.Split_type(MPI.COMM_TYPE_SHARED, comm.rank)
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def set_blas_threads(n: int) -> bool:
    """Set the thread count of the OpenBLAS bundled with NumPy; False where that library is not found."""
    root = pathlib.Path(numpy.__file__).parent
    for folder in (root.parent / "numpy.libs", root / ".dylibs"):
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if "openblas" in p.name.lower()):
            try:
                lib = ctypes.CDLL(str(path))           # already loaded by NumPy: the same library
            except OSError:
                continue
            for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
                fn = getattr(lib, name, None)
                if fn is not None:
                    fn.argtypes, fn.restype = [ctypes.c_int], None
                    fn(int(n))
                    return True
    return False


def set_threads(n: int) -> None:
    """``n`` threads for this rank's BLAS and for Numba's parallel kernels."""
    set_blas_threads(n)
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_NUM_THREADS"] = str(n)   # read when Numba is first imported
    else:
        try:
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        except (ValueError, RuntimeError):
            pass


def threads_per_rank(ranks_here: int) -> int | None:
    """Give this rank cores / ``ranks_here`` threads (at least 1) unless the environment sets them; returns the
    number set (None: the environment's choice is kept)."""
    if any(os.environ.get(v) for v in _THREAD_VARIABLES):
        return None
    n = max(1, usable_cores() // max(1, ranks_here))
    set_threads(n)
    return n


__all__ = ["launched_size", "local_size", "set_blas_threads", "set_threads", "threads_per_rank", "usable_cores"]
