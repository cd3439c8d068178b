r"""A Linear layer's bias and the activation after it in one pass each way (the references: :class:`deltanet.Linear`,
:mod:`deltanet.modules.activations`).

The reference adds the bias to the product ``z = x W^T`` in one pass (``z += b``),
maps it in a second (``h = sigma(z)``, a new array) and, backward, forms
``delta = g * sigma'(h)`` in one or two passes (ReLU: the mask ``h > 0``, then the
product) before the Linear sums it over the batch for ``dL/db`` (a product with a
vector of ones). Here the forward reads ``z`` once and writes ``h`` (a new array: see
:func:`forward`), and the backward reads ``g`` and ``h`` once, writes ``delta`` and forms ``dL/db`` from
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

Serial only: a parallel build (``prange`` over features, or over blocks of
columns for row-major arrays) was measured slower than this serial one at
every size tried on this 2-core machine -- ReLU forward + backward, 1024x1024
row-major: serial 901 us, parallel 2,013 us, NumPy 1,582 us; 256x4096
column-major: 667, 947 and 1,478 us; 2048x1024: 1,852, 4,423 and 3,686 us.

Memory order: a Linear's small batches come column-major, each feature's ``n``
values together in memory; those are walked feature by feature (a feature's
bias and its sum stay in a register). Row-major arrays and strided views are
walked row by row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


@compiled.serial
def _forward_features_serial(zt, b, ht, code, alpha):                              # pragma: no cover - compiled
    for j in range(zt.shape[0]):
        _forward_feature(j, zt, b, ht, code, alpha)


@compiled.serial
def _forward_rows_serial(z, b, h, code, alpha):                                    # pragma: no cover - compiled
    for i in range(z.shape[0]):
        _forward_row(i, z, b, h, code, alpha)


# -- backward: delta = g sigma'(h) and db = 1^T delta

@compiled.inline
def _backward_feature(j, gt, ht, dt, db, code, alpha):                             # pragma: no cover - compiled
    s = 0.0                                         # in vector lanes (reduce_serial: reassociated)
    for i in range(gt.shape[1]):
        v = _delta(gt[j, i], ht[j, i], code, alpha)
        dt[j, i] = v
        s += v
    db[j] = s


@compiled.reduce_serial
def _backward_features_serial(gt, ht, dt, db, code, alpha):                        # pragma: no cover - compiled
    for j in range(gt.shape[0]):
        _backward_feature(j, gt, ht, dt, db, code, alpha)


@compiled.reduce_serial
def _backward_rows_serial(g, h, d, db, code, alpha):                               # pragma: no cover - compiled
    cols = g.shape[1]
    acc = np.zeros(cols)                            # the column sums, in float64
    for i in range(g.shape[0]):
        for j in range(cols):
            v = _delta(g[i, j], h[i, j], code, alpha)
            d[i, j] = v
            acc[j] += v
    for j in range(cols):
        db[j] = acc[j]


def takes(x: Any, *others: Any) -> bool:
    """Whether the kernels take ``x`` (and the arrays of its shape in ``others``): a 2-D array of at least one
    element (any memory order or strides)."""
    return x.ndim == 2 and x.size > 0 and all(o.shape == x.shape for o in others)


def _feature_major(*arrays: Any) -> bool:
    """Whether every array is column-major (and not also row-major): then walked feature by feature."""
    return all(a.flags.f_contiguous and not a.flags.c_contiguous for a in arrays)


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
        _forward_features_serial(z.T, b, out.T, CODES[name], t(alpha))
    else:
        _forward_rows_serial(z, b, out, CODES[name], t(alpha))
    return out


def backward(g: Any, h: Any, name: str, alpha: float = 0.0) -> tuple[Any, Any]:
    """``(delta, db)``: ``delta = g * sigma'(h)`` (a new array of ``g``'s memory order) and ``db`` its sum over
    the rows (a vector of ``g``'s dtype), for ``h`` the forward's output."""
    d = np.empty_like(g)
    db = np.empty(g.shape[1], g.dtype)
    t = g.dtype.type
    if _feature_major(g, h, d):
        _backward_features_serial(g.T, h.T, d.T, db, CODES[name], t(alpha))
    else:
        _backward_rows_serial(g, h, d, db, CODES[name], t(alpha))
    return d, db


__all__ = ["CODES", "backward", "forward", "takes"]
