r"""Batch normalization in training mode on the GPU: the CUDA counterparts of :mod:`deltanet.accel.kernels.batch_norm`.

The reference's forward makes about ten whole-array passes (the mean, the
centred copy, its square, the variance, the scaling, ``gamma``, ``beta``), its
backward as many. Here the forward is two column reductions and one
elementwise kernel over ``x``, the backward two reductions and one elementwise
kernel; the ``x_hat`` of the backward pass is recomputed from ``x`` and the two
statistics instead of being kept. Any memory layout of the ``(n, F)`` matrix
(CuPy's kernels index by strides), outputs in ``x``'s memory order.

Forward, per feature j over the n rows (sums in float64, as the Numba kernel):

    mu_j = 1/n sum_i x_ij,  var_j = 1/n sum_i (x_ij - mu_j)^2,  s_j = 1 / sqrt(var_j + eps)
    y_ij = (x_ij - mu_j) s_j gamma_j + beta_j

Backward, with g = dL/dy and x_hat_ij = (x_ij - mu_j) s_j:

    dbeta_j = sum_i g_ij,  dgamma_j = sum_i g_ij x_hat_ij
    dx_ij = (n g_ij - dbeta_j - x_hat_ij dgamma_j) (gamma_j s_j / n)

``mu_j`` enters the variance's sum in float64, and everything per element in
the array's dtype, in the reference's order; the sums' order is the GPU's (a
tree), so the result equals the reference to float rounding.
"""

from __future__ import annotations

from typing import Any

from .... import backend
from . import Elementwise, Reduction

SUM = Reduction("deltanet_bn_sum", "T x", "float64 s", "double(x)", "a + b", "s = a", "0", "double")
SQUARES = Reduction("deltanet_bn_squares", "T x, float64 mu", "float64 q", "deltanet_square(double(x) - mu)", "a + b", "q = a",
                    "0", "double")
STATISTICS = Elementwise(
    "deltanet_bn_statistics", "float64 mu64, float64 q, float64 n, T eps, T one", "T mean, T var, T inv_std",
    """
    mean = T(mu64);                                  // stored in the dtype: the statistics the reference keeps
    var = T(q / n);
    inv_std = one / sqrt(var + eps);                 // 1 / sqrt(var + eps) in the dtype, as the reference
    """)
NORMALIZE = Elementwise("deltanet_bn_forward", "T x, T mu, T r, T gamma, T beta", "T y",
                        "y = (x - mu) * r * gamma + beta;")
SUM_G_XHAT = Reduction("deltanet_bn_sum_g_xhat", "T g, T x, T mu, T r", "float64 s", "double(g * ((x - mu) * r))",
                       "a + b", "s = a", "0", "double")
INPUT_GRADIENT = Elementwise(
    "deltanet_bn_backward", "T g, T x, T mu, T r, T gamma, T sum_g, T sum_g_xhat, T nn", "T dx",
    "dx = (g * nn - sum_g - ((x - mu) * r) * sum_g_xhat) * (gamma * r / nn);")


def takes(x: Any) -> bool:
    """Whether the kernels take ``x``: a ``(rows, features)`` matrix of at least 2 rows (any layout)."""
    return x.ndim == 2 and x.shape[0] >= 2


def forward(x: Any, gamma: Any, beta: Any, eps: float) -> tuple[Any, Any, Any, Any]:
    """``(y, mean, inv_std, var)`` of a training-mode forward of ``x`` (``(n, F)``; see :func:`takes`).

    ``y`` has ``x``'s memory order; ``mean``, ``inv_std`` and the biased ``var`` are vectors of ``x``'s dtype
    (the results of :func:`deltanet.accel.kernels.batch_norm.forward`).
    """
    xp = backend.xp
    t, (n, f) = x.dtype, x.shape
    mu64 = SUM(x, axis=0) / n
    q = SQUARES(x, mu64, axis=0)
    mean, var, inv_std = xp.empty(f, t), xp.empty(f, t), xp.empty(f, t)
    STATISTICS(mu64, q, float(n), t.type(eps), t.type(1), mean, var, inv_std)
    y = xp.empty_like(x)
    NORMALIZE(x, mean, inv_std, gamma, beta, y)
    return y, mean, inv_std, var


def backward(grad: Any, x: Any, gamma: Any, mean: Any, inv_std: Any) -> tuple[Any, Any, Any]:
    """``(dx, dbeta, dgamma)`` for ``grad`` = dL/dy of the forward of ``x`` with these statistics."""
    xp = backend.xp
    t = x.dtype
    sum_g = SUM(grad, axis=0).astype(t)
    sum_g_xhat = SUM_G_XHAT(grad, x, mean, inv_std, axis=0).astype(t)
    dx = xp.empty_like(x)
    INPUT_GRADIENT(grad, x, mean, inv_std, gamma, sum_g, sum_g_xhat, t.type(x.shape[0]), dx)
    return dx, sum_g, sum_g_xhat


__all__ = ["INPUT_GRADIENT", "NORMALIZE", "STATISTICS", "SQUARES", "SUM", "SUM_G_XHAT", "backward", "forward", "takes"]
