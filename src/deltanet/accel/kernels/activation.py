r"""A Linear layer's bias and the activation after it in one pass each way (the references: :class:`deltanet.Linear`,
:mod:`deltanet.modules.activations`).

The reference adds the bias to the product ``z = x W^T`` in one pass (``z += b``),
maps it in a second (``h = sigma(z)``, a new array) and, backward, forms
``delta = g * sigma'(h)`` in one or two passes (ReLU: the mask ``h > 0``, then the
product) before the Linear sums it over the batch for ``dL/db`` (a product with a
vector of ones). Here the forward reads ``z`` once and writes ``h`` over it, and
the backward reads ``g`` and ``h`` once, writes ``delta`` and forms ``dL/db`` from
the values in registers (measured: ``benchmarks/results/kernels.md``).

Forward, ``z`` of shape ``(n, d)``, ``b`` of shape ``(d,)``:

    h_ij = sigma(z_ij + b_j)

Backward, ``g = dL/dh``:

    delta_ij = g_ij sigma'(h_ij),    (dL/db)_j = sum_i delta_ij    (summed in float64)

with the derivatives from the forward's output, as the modules take them:

    ReLU:       sigma'(h) = [h > 0]
    LeakyReLU:  sigma'(h) = 1 if h > 0 else alpha     (h > 0 <=> z > 0 for 0 <= alpha < 1)
    tanh:       sigma'(h) = 1 - h^2
    sigmoid:    sigma'(h) = h (1 - h)

The per-element operations are the references', in the array's dtype and
order; ``tanh`` and ``exp`` are the C library's rather than NumPy's own, and the
bias sums float64 rather than the BLAS's float32, so the two agree to float
rounding (float64 to 1e-12).

Memory order: a Linear's small batches come column-major, each feature's ``n``
values together in memory; those are walked feature by feature (a feature's
bias and its sum stay in a register). Row-major arrays and strided views are
walked row by row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from . import compiled

#: The maps the kernels know, by name -> the code they take.
CODES = {"relu": 0, "leaky_relu": 1, "tanh": 2, "sigmoid": 3}


@compiled.inline
def _map(v, code, alpha):                                                          # pragma: no cover - compiled
    zero = v * 0
    if code == 0:
        return v if not v <= zero else zero                         # max(v, 0), NaN kept
    if code == 1:
        return v if v > zero else alpha * v                         # max(v, alpha v) for 0 <= alpha < 1
    if code == 2:
        return math.tanh(v)
    e = math.exp(-abs(v))                                           # sigmoid, overflow-free: e = exp(-|v|) <= 1
    one = zero + 1
    return (one if v >= zero else e) / (one + e)


@compiled.inline
def _delta(g, h, code, alpha):                                                     # pragma: no cover - compiled
    zero = h * 0
    one = zero + 1
    if code == 0:
        return g * (one if h > zero else zero)
    if code == 1:
        return g * (one if h > zero else alpha)
    if code == 2:
        return g * (one - h * h)
    return (g * h) * (one - h)


# -- forward: h = sigma(z + b); "features" walks a column-major (n, d) array as its (d, n) transpose

@compiled.inline
def _forward_feature(j, zt, b, ht, code, alpha):                                   # pragma: no cover - compiled
    bj = b[j]
    for i in range(zt.shape[1]):
        ht[j, i] = _map(zt[j, i] + bj, code, alpha)


@compiled.inline
def _forward_row(i, z, b, h, code, alpha):                                         # pragma: no cover - compiled
    for j in range(z.shape[1]):
        h[i, j] = _map(z[i, j] + b[j], code, alpha)


@compiled.parallel
def _forward_features_parallel(zt, b, ht, code, alpha):                            # pragma: no cover - compiled
    for j in prange(zt.shape[0]):
        _forward_feature(j, zt, b, ht, code, alpha)


@compiled.serial
def _forward_features_serial(zt, b, ht, code, alpha):                              # pragma: no cover - compiled
    for j in range(zt.shape[0]):
        _forward_feature(j, zt, b, ht, code, alpha)


@compiled.parallel
def _forward_rows_parallel(z, b, h, code, alpha):                                  # pragma: no cover - compiled
    for i in prange(z.shape[0]):
        _forward_row(i, z, b, h, code, alpha)


@compiled.serial
def _forward_rows_serial(z, b, h, code, alpha):                                    # pragma: no cover - compiled
    for i in range(z.shape[0]):
        _forward_row(i, z, b, h, code, alpha)


# -- backward: delta = g sigma'(h) and db = 1^T delta

@compiled.inline
def _backward_feature(j, gt, ht, dt, db, code, alpha):                             # pragma: no cover - compiled
    s = 0.0                                         # in vector lanes (reduce_*: reassociated)
    for i in range(gt.shape[1]):
        v = _delta(gt[j, i], ht[j, i], code, alpha)
        dt[j, i] = v
        s += v
    db[j] = s


@compiled.reduce_parallel
def _backward_features_parallel(gt, ht, dt, db, code, alpha):                      # pragma: no cover - compiled
    for j in prange(gt.shape[0]):
        _backward_feature(j, gt, ht, dt, db, code, alpha)


@compiled.reduce_serial
def _backward_features_serial(gt, ht, dt, db, code, alpha):                        # pragma: no cover - compiled
    for j in range(gt.shape[0]):
        _backward_feature(j, gt, ht, dt, db, code, alpha)


@compiled.inline
def _backward_block(lo, hi, g, h, d, acc, code, alpha):                            # pragma: no cover - compiled
    for i in range(g.shape[0]):
        for j in range(lo, hi):
            v = _delta(g[i, j], h[i, j], code, alpha)
            d[i, j] = v
            acc[j] += v


#: Columns per task of the row-major backward's parallel build (each task sums its own columns over every row).
BLOCK = 64


@compiled.reduce_parallel
def _backward_rows_parallel(g, h, d, db, code, alpha):                             # pragma: no cover - compiled
    cols = g.shape[1]
    acc = np.zeros(cols)
    for k in prange((cols + BLOCK - 1) // BLOCK):
        _backward_block(k * BLOCK, min(cols, (k + 1) * BLOCK), g, h, d, acc, code, alpha)
    for j in range(cols):
        db[j] = acc[j]


@compiled.reduce_serial
def _backward_rows_serial(g, h, d, db, code, alpha):                               # pragma: no cover - compiled
    cols = g.shape[1]
    acc = np.zeros(cols)
    _backward_block(0, cols, g, h, d, acc, code, alpha)
    for j in range(cols):
        db[j] = acc[j]


def takes(x: Any, *others: Any) -> bool:
    """Whether the kernels take ``x`` (and the arrays of its shape in ``others``): a 2-D array of at least one
    element (any memory order or strides)."""
    return x.ndim == 2 and x.size > 0 and all(o.shape == x.shape for o in others)


def _feature_major(*arrays: Any) -> bool:
    """Whether every array is column-major (and not also row-major): then walked feature by feature."""
    return all(a.flags.f_contiguous and not a.flags.c_contiguous for a in arrays)


def _run(parallel_kernel: Any, serial_kernel: Any, size: int, *args: Any) -> None:
    if size >= compiled.PARALLEL_MIN_SIZE:
        with compiled.LOCK:
            parallel_kernel(*args)
    else:
        serial_kernel(*args)


def forward(z: Any, b: Any, name: str, alpha: float = 0.0, out: Any = None) -> Any:
    """``sigma(z + b)`` for ``z`` of shape ``(n, d)`` and ``b`` of shape ``(d,)``, into ``out`` (default: a new
    array of ``z``'s memory order). ``name`` is a key of :data:`CODES`; ``alpha`` is LeakyReLU's slope.

    ``out`` may be ``z`` itself, but a new array is faster: with the input and output at one address the
    compiler's vectorized loop does not run (its test for overlapping arrays fails), and the scalar one takes
    twice as long at (128, 512) and ten times as long on 10,000 rows (measured: a fit's per-epoch metrics)."""
    if out is None:
        out = np.empty_like(z)
    t = z.dtype.type
    if _feature_major(z, out):
        _run(_forward_features_parallel, _forward_features_serial, z.size, z.T, b, out.T, CODES[name], t(alpha))
    else:
        _run(_forward_rows_parallel, _forward_rows_serial, z.size, z, b, out, CODES[name], t(alpha))
    return out


def backward(g: Any, h: Any, name: str, alpha: float = 0.0) -> tuple[Any, Any]:
    """``(delta, db)``: ``delta = g * sigma'(h)`` (a new array of ``g``'s memory order) and ``db`` its sum over
    the rows (a vector of ``g``'s dtype), for ``h`` the forward's output."""
    d = np.empty_like(g)
    db = np.empty(g.shape[1], g.dtype)
    t = g.dtype.type
    if _feature_major(g, h, d):
        _run(_backward_features_parallel, _backward_features_serial, g.size, g.T, h.T, d.T, db, CODES[name], t(alpha))
    else:
        _run(_backward_rows_parallel, _backward_rows_serial, g.size, g, h, d, db, CODES[name], t(alpha))
    return d, db


__all__ = ["BLOCK", "CODES", "backward", "forward", "takes"]
