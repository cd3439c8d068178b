"""A rank that fails ends the whole job, at once and with one clear line.

MPI has no recovery from a lost rank: the others would wait in their next
collective (the gradient all-reduce) for ever. So an exception that escapes the
training loop of a data-parallel ``fit`` ends every rank with ``MPI_Abort``
after printing ``deltanet: error: rank R of N failed: <exception>; ending all N
ranks`` on stderr (:meth:`DataParallel.abort`). Scripts can put their whole
body under :func:`abort_on_error` for the same treatment of errors outside
``fit`` (the ``deltanet`` command does).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .comm import Communicator


def abort_message(rank: int, size: int, exc: BaseException) -> str:
    """``deltanet: error: rank R of N failed: TypeName: message; ending all N ranks`` (one line)."""
    if isinstance(exc, KeyboardInterrupt):
        what = "interrupted (Ctrl-C)"
    else:
        text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"deltanet: error: rank {rank} of {size} failed: {what}; ending all {size} ranks"


@contextmanager
def abort_on_error(comm: Any = None, code: int = 1) -> Iterator[Communicator]:
    """Within the block, an exception on this rank (or ``SystemExit`` with a nonzero code) ends every rank.

    >>> with abort_on_error() as comm:                          # doctest: +SKIP
    ...     trainer = Trainer(model, distributed="mpi"); trainer.fit(X, y)
    """
    comm = comm if isinstance(comm, Communicator) else Communicator(comm)
    try:
        yield comm
    except SystemExit as exc:
        if exc.code in (0, None):
            raise
        if isinstance(exc.code, str):
            comm.abort(f"deltanet: error: rank {comm.rank} of {comm.size}: {exc.code}; ending all {comm.size} ranks", code)
        comm.abort(None, int(exc.code))
    except BaseException as exc:
        comm.abort(abort_message(comm.rank, comm.size, exc), code)


__all__ = ["abort_message", "abort_on_error"]
