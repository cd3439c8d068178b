"""Sparse input: SciPy CSR / CSC matrices (and arrays) as the data of a network.

Only the first layer ever sees the data, and a :class:`~deltanet.Linear` takes a
sparse batch as it is: its forward product is ``X W^T`` (sparse times dense, a
dense result), its weight gradient ``(X^T delta)^T`` (sparse transposed times
dense); nothing densifies the data, so memory and time scale with the number
of stored entries. Data are held as CSR (a CSC matrix is converted once: a copy
of its stored entries, not a dense array) because batches are sets of rows.
SciPy is imported only when sparse data come.
"""

from __future__ import annotations

from typing import Any

import numpy


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a SciPy sparse matrix or array (without importing SciPy for dense data)."""
    return type(x).__module__.startswith("scipy.sparse")


def as_csr(x: Any, dtype: Any, name: str = "X", check: bool = True) -> Any:
    """``x`` as CSR of ``dtype`` (a copy of the stored entries only when the format or dtype differ);
    with ``check``, its stored values must be finite."""
    if x.format != "csr":
        x = x.tocsr()
    if x.dtype != dtype:
        x = x.astype(dtype)
    if check and x.data.size and not numpy.isfinite(x.data).all():
        from .errors import NonFiniteError

        raise NonFiniteError(f"{name} contains NaN or infinity")
    return x


__all__ = ["as_csr", "is_sparse"]
