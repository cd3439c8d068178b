r"""Batch normalization in training mode, one pass over memory each way (the reference: :class:`deltanet.BatchNorm`).

The reference's forward makes about ten whole-array NumPy passes (the mean, the
centred copy, its square, the variance, the scaling, ``gamma``, ``beta``) and its
backward as many. A Linear layer's output below 512 rows is column-major, so
each feature's ``n`` values lie together in memory; here one thread takes a
feature at a time, reads its column once into the cache, and computes the
statistics and the output from there. The backward pass recomputes ``x_hat``
from ``x`` and the two statistics instead of keeping a normalized copy
(measured: ``benchmarks/results/measurements.md``, "Batch normalization").

Forward, per feature j over the n rows (the statistics summed in float64):

    mu_j = 1/n sum_i x_ij,  var_j = 1/n sum_i (x_ij - mu_j)^2,  s_j = 1 / sqrt(var_j + eps)
    x_hat_ij = (x_ij - mu_j) s_j,  y_ij = gamma_j x_hat_ij + beta_j

Backward, with g = dL/dy:

    dbeta_j = sum_i g_ij,  dgamma_j = sum_i g_ij x_hat_ij
    dx_ij = (n g_ij - dbeta_j - x_hat_ij dgamma_j) gamma_j s_j / n

The per-element operations are the reference's, in the array's dtype, in its
order; only the sums differ (float64 here, NumPy's pairwise float32 sums
there), so the two agree to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from . import compiled


@compiled.inline
def _forward_feature(j, xt, yt, gamma, beta, eps, one, mean, inv_std, var):        # pragma: no cover - compiled
    n = xt.shape[1]
    m = n - n % 4
    s0 = s1 = s2 = s3 = 0.0                         # four partial sums: independent chains the CPU overlaps
    for i in range(0, m, 4):
        s0 += xt[j, i]
        s1 += xt[j, i + 1]
        s2 += xt[j, i + 2]
        s3 += xt[j, i + 3]
    for i in range(m, n):
        s0 += xt[j, i]
    mu64 = ((s0 + s1) + (s2 + s3)) / n
    q0 = q1 = q2 = q3 = 0.0
    for i in range(0, m, 4):
        c0, c1, c2, c3 = xt[j, i] - mu64, xt[j, i + 1] - mu64, xt[j, i + 2] - mu64, xt[j, i + 3] - mu64
        q0 += c0 * c0
        q1 += c1 * c1
        q2 += c2 * c2
        q3 += c3 * c3
    for i in range(m, n):
        c = xt[j, i] - mu64
        q0 += c * c
    q = (q0 + q1) + (q2 + q3)
    mean[j] = mu64                                  # stored in the dtype: the statistics the reference keeps
    var[j] = q / n
    mu = mean[j]
    r = one / np.sqrt(var[j] + eps)                 # 1 / sqrt(var + eps) in the dtype, as the reference
    inv_std[j] = r
    g, b = gamma[j], beta[j]
    for i in range(n):
        yt[j, i] = (xt[j, i] - mu) * r * g + b


@compiled.inline
def _backward_feature(j, gt, xt, gamma, mean, inv_std, nn, dxt, sum_g, sum_g_xhat):  # pragma: no cover - compiled
    n = xt.shape[1]
    m = n - n % 2
    mu, r = mean[j], inv_std[j]
    sg0 = sg1 = sgx0 = sgx1 = 0.0                   # two partial sums each: independent chains
    for i in range(0, m, 2):
        g0, g1 = gt[j, i], gt[j, i + 1]
        sg0 += g0
        sg1 += g1
        sgx0 += g0 * ((xt[j, i] - mu) * r)
        sgx1 += g1 * ((xt[j, i + 1] - mu) * r)
    for i in range(m, n):
        gi = gt[j, i]
        sg0 += gi
        sgx0 += gi * ((xt[j, i] - mu) * r)
    sum_g[j] = sg0 + sg1
    sum_g_xhat[j] = sgx0 + sgx1
    sg_t, sgx_t = sum_g[j], sum_g_xhat[j]
    c = gamma[j] * r / nn
    for i in range(n):
        dxt[j, i] = (gt[j, i] * nn - sg_t - ((xt[j, i] - mu) * r) * sgx_t) * c


# the same per-feature code driven by a parallel and by a serial loop (two functions: one cache entry each)
@compiled.parallel
def _forward_parallel(xt, yt, gamma, beta, eps, one, mean, inv_std, var):         # pragma: no cover - compiled
    for j in prange(xt.shape[0]):
        _forward_feature(j, xt, yt, gamma, beta, eps, one, mean, inv_std, var)


@compiled.serial
def _forward_serial(xt, yt, gamma, beta, eps, one, mean, inv_std, var):           # pragma: no cover - compiled
    for j in range(xt.shape[0]):
        _forward_feature(j, xt, yt, gamma, beta, eps, one, mean, inv_std, var)


@compiled.parallel
def _backward_parallel(gt, xt, gamma, mean, inv_std, nn, dxt, sum_g, sum_g_xhat):  # pragma: no cover - compiled
    for j in prange(xt.shape[0]):
        _backward_feature(j, gt, xt, gamma, mean, inv_std, nn, dxt, sum_g, sum_g_xhat)


@compiled.serial
def _backward_serial(gt, xt, gamma, mean, inv_std, nn, dxt, sum_g, sum_g_xhat):    # pragma: no cover - compiled
    for j in range(xt.shape[0]):
        _backward_feature(j, gt, xt, gamma, mean, inv_std, nn, dxt, sum_g, sum_g_xhat)


def takes(x: Any) -> bool:
    """Whether the kernels take ``x``: a column-major ``(rows, features)`` matrix of at least 2 rows."""
    return x.ndim == 2 and x.shape[0] >= 2 and x.flags.f_contiguous


def _run(parallel_kernel: Any, serial_kernel: Any, size: int, *args: Any) -> None:
    if size >= compiled.PARALLEL_MIN_SIZE:
        with compiled.LOCK:
            parallel_kernel(*args)
    else:
        serial_kernel(*args)


def forward(x: Any, gamma: Any, beta: Any, eps: float) -> tuple[Any, Any, Any, Any]:
    """``(y, mean, inv_std, var)`` of a training-mode forward of ``x`` (column-major ``(n, F)``; see :func:`takes`).

    ``y`` is column-major like ``x``; ``mean``, ``inv_std`` and the biased ``var`` are vectors of ``x``'s dtype.
    """
    t = x.dtype
    y = np.empty_like(x)
    mean, inv_std, var = np.empty(x.shape[1], t), np.empty(x.shape[1], t), np.empty(x.shape[1], t)
    _run(_forward_parallel, _forward_serial, x.size, x.T, y.T, gamma, beta, t.type(eps), t.type(1), mean, inv_std, var)
    return y, mean, inv_std, var


def backward(grad: Any, x: Any, gamma: Any, mean: Any, inv_std: Any) -> tuple[Any, Any, Any]:
    """``(dx, dbeta, dgamma)`` for ``grad`` = dL/dy of the forward of ``x`` (both column-major) with these statistics."""
    dx = np.empty_like(x)
    sum_g, sum_g_xhat = np.empty(x.shape[1], x.dtype), np.empty(x.shape[1], x.dtype)
    _run(_backward_parallel, _backward_serial, x.size, grad.T, x.T, gamma, mean, inv_std, x.dtype.type(x.shape[0]),
         dx.T, sum_g, sum_g_xhat)
    return dx, sum_g, sum_g_xhat


__all__ = ["backward", "forward", "takes"]
