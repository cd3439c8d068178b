r"""Softmax cross-entropy for integer labels, the loss and dL/dz in one pass (the reference:
:meth:`deltanet.losses.SoftmaxCrossEntropy._from_labels`).

The reference makes about fifteen NumPy calls on the ``(n, C)`` logits (the row
maxima, the shift, the label logits, ``exp``, the row sums, ``log``, the scaling,
the subnormal flush, the label entries' correction); for a classifier's small
``C`` each is mostly its fixed cost of a few microseconds. Here one call walks
each row three times while it sits in the cache (measured:
``benchmarks/results/kernels.md``).

Per row ``b`` of ``z`` with label ``t_b`` and factor ``r_b`` (``1/n``, or
``w_b / sum(w)`` with sample weights):

    m = max_j z_bj,   e_j = exp(z_bj - m),   s = sum_j e_j
    l_b = log s - (z_b,t_b - m)                      (= -log y_b,t_b)
    dL/dz_bj = e_j r_b / s - r_b [j = t_b]           (= (y_bj - t_bj) r_b)

and the loss's numerator ``sum_b l_b`` (or ``sum_b w_b l_b``), summed in
float64: the caller divides by ``n`` (or ``sum(w)``) as the reference does.
Entries of the gradient below ``finfo(dtype).tiny`` before the label's
correction are set to 0, as the reference's ``_flush_subnormal``. The
per-element operations are the reference's, in the array's dtype; ``exp`` and
``log`` are the C library's and the row sums float64, so the two agree to
float rounding (float64 to 1e-12).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from . import compiled


@compiled.inline
def _row(b, z, labels, w, weighted, n, inv_n, total, tiny, grad):                    # pragma: no cover - compiled
    c = z.shape[1]
    m = z[b, 0]
    for j in range(1, c):
        if z[b, j] > m or z[b, j] != z[b, j]:            # NaN propagates as in NumPy's max
            m = z[b, j]
    s = 0.0
    for j in range(c):
        e = math.exp(z[b, j] - m)
        grad[b, j] = e
        s += e
    sd = grad[0, 0] * 0 + s                              # the sum in the dtype, as the reference's e.sum()
    t = labels[b]
    loss = math.log(sd) - (z[b, t] - m)
    if weighted:
        r = w[b] / total
        f = r / sd                                       # e * (r / s)
        for j in range(c):
            v = grad[b, j] * f
            grad[b, j] = v if v >= tiny else v * 0
        grad[b, t] -= r
        return loss * w[b]
    sn = sd * n                                          # s n, in the dtype
    for j in range(c):
        v = grad[b, j] / sn
        grad[b, j] = v if v >= tiny else v * 0
    grad[b, t] -= inv_n
    return loss


@compiled.parallel
def _rows_parallel(z, labels, w, weighted, n, inv_n, total, tiny, grad):             # pragma: no cover - compiled
    acc = 0.0
    for b in prange(z.shape[0]):
        acc += _row(b, z, labels, w, weighted, n, inv_n, total, tiny, grad)
    return acc


@compiled.serial
def _rows_serial(z, labels, w, weighted, n, inv_n, total, tiny, grad):               # pragma: no cover - compiled
    acc = 0.0
    for b in range(z.shape[0]):
        acc += _row(b, z, labels, w, weighted, n, inv_n, total, tiny, grad)
    return acc


def takes(z: Any) -> bool:
    """Whether the kernel takes the logits ``z``: a 2-D array with at least one row and one class."""
    return z.ndim == 2 and z.size > 0


def loss_and_grad(z: Any, labels: Any, w: Any = None, total: Any = None) -> tuple[Any, Any]:
    """``(numerator, grad)`` for logits ``z`` of shape ``(n, C)`` and valid integer labels of shape ``(n,)``:
    ``sum_b l_b`` (``sum_b w_b l_b`` with weights ``w`` of ``z``'s dtype and their sum ``total``), a NumPy float64, and
    dL/dz, a new array of ``z``'s memory order. See the module's docstring."""
    t = z.dtype.type
    grad = np.empty_like(z)
    labels = np.ascontiguousarray(labels) if labels.dtype.kind in "iu" else labels.astype(np.intp)
    n = z.shape[0]
    weighted = w is not None
    if not weighted:
        w = grad[:1, 0]                                  # unused: a placeholder of the right type
    args = (z, labels, w, weighted, t(n), t(1.0 / n), t(total if weighted else 1), t(np.finfo(z.dtype).tiny), grad)
    if z.size >= compiled.PARALLEL_MIN_SIZE:
        with compiled.LOCK:
            num = _rows_parallel(*args)
    else:
        num = _rows_serial(*args)
    return np.float64(num), grad


__all__ = ["loss_and_grad", "takes"]
