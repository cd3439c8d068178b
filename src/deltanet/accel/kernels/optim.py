r"""One-pass optimizer steps over a flat buffer, on every core: the compiled counterparts of :mod:`deltanet.optim.rules`.

Each public function takes 1-D contiguous arrays of one dtype (a slice of a
:class:`~deltanet.optim.FlatBuffer` and of the optimizer's flat state), the
same keyword hyper-parameters as its reference rule, and ``measure``; it
updates ``w`` and ``state`` in place exactly as the rule does (the same
operations per element, in the array's dtype, up to rounding) and returns
``sum_i grad_i^2`` (accumulated in float64) when ``measure``, else 0.

Measured (``benchmarks/bench_kernels.py``, 1.9M float32 parameters, 2 cores):
Adam 4.0 ms by the NumPy reference with BLAS, 1.7 ms here.

Importing this module imports Numba; :mod:`deltanet.accel.kernels` does it
only when a kernel is first needed.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from ...optim import rules

_jit = numba.njit(parallel=True, cache=True, nogil=True)
_EMPTY: dict[Any, Any] = {}


def _empty(dtype: Any) -> Any:
    """A zero-length array of ``dtype``: the argument for a state array the rule does not use."""
    a = _EMPTY.get(dtype)
    if a is None:
        a = _EMPTY[dtype] = np.empty(0, dtype=dtype)
    return a


# -- SGD ------------------------------------------------------------------------------
@_jit
def _sgd(w, g, b, lr, mu, l2, nesterov, measure):                           # pragma: no cover - compiled
    sq = 0.0
    for i in prange(w.size):
        gi = g[i]
        if measure:
            sq += np.float64(gi) * np.float64(gi)
        gi = w[i] * l2 + gi                                                  # g = grad + lambda W
        if b.size:
            bi = b[i] * mu + gi                                              # b = mu b + g
            b[i] = bi
            gi = bi * mu + gi if nesterov else bi
        w[i] -= gi * lr                                                      # W = W - alpha g
    return sq


def sgd(w: Any, grad: Any, state: dict[str, Any], *, decay: bool, measure: bool, lr: float, momentum: float,
        nesterov: bool, weight_decay: float) -> float:
    """:func:`deltanet.optim.rules.sgd` in one pass: reads ``w, g`` (and ``b``), writes ``w`` (and ``b``)."""
    t = w.dtype.type
    b = state["momentum_buffer"] if momentum else _empty(w.dtype)
    return _sgd(w, grad, b, t(lr), t(momentum), t(weight_decay if decay else 0.0), bool(nesterov), bool(measure))


# -- Adam / AdamW ---------------------------------------------------------------------
@_jit
def _adam(w, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step, eps_hat, l2, shrink, measure):  # pragma: no cover
    sq = 0.0
    for i in prange(w.size):
        gi = g[i]
        if measure:
            sq += np.float64(gi) * np.float64(gi)
        wi = w[i] * shrink                                                   # W = W - alpha lambda W (AdamW)
        gi = wi * l2 + gi                                                    # g = grad + lambda W (Adam)
        mi = m[i] * beta1 + gi * one_minus_beta1                             # m = beta1 m + (1 - beta1) g
        vi = v[i] * beta2 + gi * gi * one_minus_beta2                        # v = beta2 v + (1 - beta2) g^2
        m[i] = mi
        v[i] = vi
        w[i] = wi - mi / (np.sqrt(vi) + eps_hat) * step                     # W = W - alpha m_hat / (sqrt(v_hat) + eps)
    return sq


def adam(w: Any, grad: Any, state: dict[str, Any], *, decay: bool, measure: bool, lr: float, beta1: float,
         beta2: float, eps: float, weight_decay: float, decoupled: bool, t: int) -> float:
    """:func:`deltanet.optim.rules.adam` in one pass: reads ``w, g, m, v``, writes ``w, m, v``."""
    c = w.dtype.type
    root_bc2 = math.sqrt(1.0 - beta2**t)
    on = decay and weight_decay
    shrink = 1.0 - lr * weight_decay if on and decoupled else 1.0
    l2 = weight_decay if on and not decoupled else 0.0
    return _adam(w, grad, state["exp_avg"], state["exp_avg_sq"], c(beta1), c(1.0 - beta1), c(beta2), c(1.0 - beta2),
                 c(lr * root_bc2 / (1.0 - beta1**t)), c(eps * root_bc2), c(l2), c(shrink), bool(measure))


# -- RMSprop ----------------------------------------------------------------------------
@_jit
def _rmsprop(w, g, v, a, b, lr, rho, one_minus_rho, eps, mu, l2, measure):   # pragma: no cover - compiled
    sq = 0.0
    for i in prange(w.size):
        gi = g[i]
        if measure:
            sq += np.float64(gi) * np.float64(gi)
        gi = w[i] * l2 + gi                                                  # g = grad + lambda W
        vi = v[i] * rho + gi * gi * one_minus_rho                            # v = rho v + (1 - rho) g^2
        v[i] = vi
        if a.size:
            ai = a[i] * rho + gi * one_minus_rho                             # a = rho a + (1 - rho) g
            a[i] = ai
            vi = vi - ai * ai                                                # s = v - a^2
        d = gi / (np.sqrt(vi) + eps)                                         # d = g / (sqrt(s) + eps)
        if b.size:
            d = b[i] * mu + d                                                # b = mu b + d
            b[i] = d
        w[i] -= d * lr                                                       # W = W - alpha b  (or alpha d)
    return sq


def rmsprop(w: Any, grad: Any, state: dict[str, Any], *, decay: bool, measure: bool, lr: float, alpha: float,
            eps: float, momentum: float, weight_decay: float, centered: bool) -> float:
    """:func:`deltanet.optim.rules.rmsprop` in one pass: reads ``w, g, v`` (``a``, ``b``), writes ``w, v`` (``a``, ``b``)."""
    c = w.dtype.type
    none = _empty(w.dtype)
    a = state["grad_avg"] if centered else none
    b = state["momentum_buffer"] if momentum else none
    return _rmsprop(w, grad, state["square_avg"], a, b, c(lr), c(alpha), c(1.0 - alpha), c(eps), c(momentum),
                    c(weight_decay if decay else 0.0), bool(measure))


#: Each kernel and the reference rule it equals.
KERNELS = {"sgd": (sgd, rules.sgd), "adam": (adam, rules.adam), "rmsprop": (rmsprop, rules.rmsprop)}
