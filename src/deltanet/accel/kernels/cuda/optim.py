r"""One-kernel optimizer steps over a flat buffer on the GPU: the CUDA counterparts of :mod:`deltanet.accel.kernels.optim`.

Each public function has the signature and the numbers of its Numba
counterpart (and so of its reference rule in :mod:`deltanet.optim.rules`):
``w`` and ``state`` are updated in place, one thread per element, from ``grad``;
``decay`` is True, False or the number of leading (weight-decayed) elements; the
result is ``sum_i grad_i^2`` as a float64 device scalar when ``measure`` (one
cuBLAS dot, left on the device: the caller reads it once, with the loss), else
0. The subnormal flushes are the Numba kernels' (values below ``tiny`` stored
as 0, weights below ``tiny / eps``, Adam's ``lambda W`` and ``(1 - beta2) g^2``
terms left out where they would be subnormal), so a GPU run stores what a CPU
run with kernels stores.

The rules, per element ``i`` (``lambda`` the weight decay where it applies):

SGD (``torch.optim.SGD``, dampening 0)::

    g = grad + lambda W;   b = mu b + g;   g = g + mu b (Nesterov) or b;   W = W - alpha g

Adam / AdamW, the bias corrections folded into two scalars::

    W = W (1 - alpha lambda)  (AdamW)    g = grad + lambda W  (Adam)
    m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
    W = W - [alpha sqrt(1 - beta2^t) / (1 - beta1^t)] m / (sqrt(v) + eps sqrt(1 - beta2^t))

RMSprop (centered and momentum as ``torch.optim.RMSprop``)::

    g = grad + lambda W;   v = rho v + (1 - rho) g^2;   s = v - a^2 with a = rho a + (1 - rho) g (centered), or v
    d = g / (sqrt(s) + eps);   b = mu b + d, W = W - alpha b  (mu > 0)   or   W = W - alpha d

The optional state arrays (momentum, the centered average) select a kernel
variant at build time: no empty arrays are passed, and no branch runs per element.
"""

from __future__ import annotations

import math
from typing import Any

from .... import backend
from ....optim import rules
from .. import optim as _cpu
from . import Elementwise

_Z = "deltanet_zero_below"


def _sgd_source(momentum: bool, nesterov: bool) -> str:
    lines = ["T zero = l2 - l2;",
             "T gi = w * (i < n_decay ? l2 : zero) + g;                  // g = grad + lambda W (decayed ones)"]
    if momentum:
        lines += ["T bi = b * mu + gi;                                   // b = mu b + g",
                  f"b = {_Z}(bi, tiny);",
                  "gi = bi * mu + gi;                                   // Nesterov: g + mu b" if nesterov else
                  "gi = bi;"]
    lines += ["T wi = w - gi * lr;                                       // W = W - alpha g",
              f"w = {_Z}(wi, w_floor);"]
    return "\n".join(lines)


SGD = {(m, n): Elementwise(f"deltanet_sgd{'_momentum' if m else ''}{'_nesterov' if n else ''}",
                           "T g, T lr, T mu, T l2, int64 n_decay, T tiny, T w_floor",
                           "T w" + (", T b" if m else ""), _sgd_source(m, n))
       for m in (False, True) for n in (False, True) if m or not n}

ADAM = Elementwise(
    "deltanet_adam",
    "T g, T beta1, T omb1, T beta2, T omb2, T step, T eps_hat, T l2, T shrink, T one, int64 n_decay, "
    "T tiny, T w_min, T g_min, T w_floor",
    "T w, T m, T v",
    f"""
    T zero = l2 - l2;
    bool decayed = i < n_decay;
    T wi = w * (decayed ? shrink : one);                                // W = W - alpha lambda W (AdamW)
    T gi = {_Z}(wi, w_min) * (decayed ? l2 : zero) + g;                 // g = grad + lambda W (Adam)
    T mi = m * beta1 + gi * omb1;                                       // m = beta1 m + (1 - beta1) g
    T gs = {_Z}(gi, g_min);
    T vi = v * beta2 + gs * gs * omb2;                                  // v = beta2 v + (1 - beta2) g^2
    wi = wi - mi / (sqrt(vi) + eps_hat) * step;                        // W = W - alpha m_hat / (sqrt(v_hat) + eps)
    m = {_Z}(mi, tiny);
    v = {_Z}(vi, tiny);
    w = {_Z}(wi, w_floor);
    """)


def _rmsprop_source(centered: bool, momentum: bool) -> str:
    lines = ["T zero = l2 - l2;",
             "T gi = w * (i < n_decay ? l2 : zero) + g;                  // g = grad + lambda W (decayed ones)",
             "T vi = v * rho + gi * gi * omr;                            // v = rho v + (1 - rho) g^2",
             f"v = {_Z}(vi, tiny);"]
    if centered:
        lines += ["T ai = a * rho + gi * omr;                             // a = rho a + (1 - rho) g",
                  f"a = {_Z}(ai, tiny);",
                  "vi = vi - ai * ai;                                     // s = v - a^2"]
    lines += ["T d = gi / (sqrt(vi) + eps);                              // d = g / (sqrt(s) + eps)"]
    if momentum:
        lines += ["d = b * mu + d;                                        // b = mu b + d",
                  f"b = {_Z}(d, tiny);"]
    lines += ["T wi = w - d * lr;                                        // W = W - alpha b  (or alpha d)",
              f"w = {_Z}(wi, w_floor);"]
    return "\n".join(lines)


RMSPROP = {(c, m): Elementwise(f"deltanet_rmsprop{'_centered' if c else ''}{'_momentum' if m else ''}",
                               "T g, T lr, T rho, T omr, T eps, T mu, T l2, int64 n_decay, T tiny, T w_floor",
                               "T w, T v" + (", T a" if c else "") + (", T b" if m else ""), _rmsprop_source(c, m))
           for c in (False, True) for m in (False, True)}


def _norm_squared(grad: Any, measure: bool) -> Any:
    """``sum_i grad_i^2`` as a float64 device scalar (one cuBLAS dot, no host read) when ``measure``, else 0."""
    if not measure:
        return 0.0
    return backend.xp.dot(grad, grad).astype("float64")


def sgd(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, momentum: float,
        nesterov: bool, weight_decay: float) -> Any:
    """:func:`deltanet.optim.rules.sgd` in one kernel: reads ``w, g`` (and ``b``), writes ``w`` (and ``b``)."""
    t = w.dtype.type
    sq = _norm_squared(grad, measure)
    m = bool(momentum)
    outs = (w, state["momentum_buffer"]) if m else (w,)
    SGD[m, m and bool(nesterov)](grad, t(lr), t(momentum), t(weight_decay), _cpu._n_decay(w, decay), _cpu._tiny(w),
                                 _cpu._weight_floor(w), *outs)
    return sq


def adam(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, beta1: float,
         beta2: float, eps: float, weight_decay: float, decoupled: bool, t: int) -> Any:
    """:func:`deltanet.optim.rules.adam` in one kernel: reads ``w, g, m, v``, writes ``w, m, v``."""
    c = w.dtype.type
    root_bc2 = math.sqrt(1.0 - beta2**t)
    shrink = 1.0 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    sq = _norm_squared(grad, measure)
    ADAM(grad, c(beta1), c(1.0 - beta1), c(beta2), c(1.0 - beta2), c(lr * root_bc2 / (1.0 - beta1**t)),
         c(eps * root_bc2), c(l2), c(shrink), c(1.0), _cpu._n_decay(w, decay), _cpu._tiny(w),
         _cpu._threshold(w, l2), _cpu._threshold(w, 1.0 - beta2, root=True), _cpu._weight_floor(w),
         w, state["exp_avg"], state["exp_avg_sq"])
    return sq


def rmsprop(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, alpha: float,
            eps: float, momentum: float, weight_decay: float, centered: bool) -> Any:
    """:func:`deltanet.optim.rules.rmsprop` in one kernel: reads ``w, g, v`` (``a``, ``b``), writes ``w, v`` (``a``, ``b``)."""
    c = w.dtype.type
    sq = _norm_squared(grad, measure)
    outs = [w, state["square_avg"]]
    if centered:
        outs.append(state["grad_avg"])
    if momentum:
        outs.append(state["momentum_buffer"])
    RMSPROP[bool(centered), bool(momentum)](grad, c(lr), c(alpha), c(1.0 - alpha), c(eps), c(momentum),
                                            c(weight_decay), _cpu._n_decay(w, decay), _cpu._tiny(w),
                                            _cpu._weight_floor(w), *outs)
    return sq


#: Each kernel and the reference rule it equals (the keys of :data:`deltanet.accel.kernels.optim.KERNELS`).
KERNELS = {"sgd": (sgd, rules.sgd), "adam": (adam, rules.adam), "rmsprop": (rmsprop, rules.rmsprop)}

__all__ = ["ADAM", "KERNELS", "RMSPROP", "SGD", "adam", "rmsprop", "sgd"]
