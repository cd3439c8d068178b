r"""One-pass optimizer steps over a flat buffer, on every core: the compiled counterparts of :mod:`deltanet.optim.rules`.

Each public function takes 1-D contiguous arrays of one dtype (a slice of a
:class:`~deltanet.optim.FlatBuffer` and of the optimizer's flat state), the
same keyword hyper-parameters as its reference rule, and ``measure``; it
updates ``w`` and ``state`` in place exactly as the rule does (the same
correctly rounded operations per element, in the same order, in the array's
dtype; Numba compiles without ``fastmath``, so nothing is contracted or
reordered) and returns ``sum_i grad_i^2`` when ``measure``, else 0. ``decay`` is
True (every element is weight-decayed), False (none), or the number of leading
elements that are: a flat buffer keeps its decayed parameters first, so one
launch updates both kinds.

One difference, below float resolution: every value and state entry the
kernel writes is stored as 0 where it would be subnormal (smaller in magnitude
than ``finfo(dtype).tiny``, 1.2e-38 in float32), and Adam leaves out the terms
``lambda W`` and ``(1 - beta2) g^2`` where they would be subnormal, what
flush-to-zero hardware does. Without it, the weights of inputs that are always
0 (an image's border pixels) and their moment averages decay into subnormal
numbers, each step computes with more of them, and a CPU does so several
times slower (measured: ``benchmarks/results/measurements.md``, "Subnormal
numbers"). (The reference path flushes every 64 steps,
:meth:`deltanet.optim.Optimizer._flush_subnormals`, which the kernel path skips.)

Weights go further: one smaller in magnitude than ``tiny / eps`` (9.9e-32 in
float32, 2e-292 in float64) is stored as 0. Such a weight changes no
pre-activation by anything float arithmetic can represent next to the other
terms, but the backward products multiply it by small error signals into
subnormal numbers: a trained MNIST network has 230,000 of them (the weights of
border pixels and of dead units, shrunk by the L2 term), and its epochs ran at
twice the time of a fresh network's; with them at 0, at a fresh network's time.

Importing this module imports Numba; :mod:`deltanet.accel.kernels` does it
only when a kernel is first needed.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from numba import prange

from ... import backend
from ...optim import rules
from .compiled import LOCK as _LOCK
from .compiled import parallel as _jit

_EMPTY: dict[Any, Any] = {}


def _empty(dtype: Any) -> Any:
    """A zero-length array of ``dtype``: the argument for a state array the rule does not use."""
    a = _EMPTY.get(dtype)
    if a is None:
        a = _EMPTY[dtype] = np.empty(0, dtype=dtype)
    return a


@numba.njit(inline="always")
def _zero_below(x, x_min):                                                    # pragma: no cover - compiled
    """``x``, or 0 where ``|x| < x_min``: a value stored below ``tiny`` (a subnormal), or a factor chosen before a
    product that would be subnormal for such ``x``. A product with the comparison, so the loop stays vectorized."""
    return x * (abs(x) >= x_min)


def _weight_floor(w: Any) -> Any:
    """``tiny / eps`` (9.9e-32 in float32): weights below it in magnitude are stored as 0 (see the module's notes)."""
    info = np.finfo(w.dtype)
    return w.dtype.type(info.tiny / info.eps)


def _tiny(w: Any) -> Any:
    return np.finfo(w.dtype).tiny


def _threshold(w: Any, factor: float, root: bool = False) -> Any:
    """The ``|x|`` below which ``factor x`` (``factor x^2`` with ``root``) is subnormal: such terms count as 0."""
    tiny = float(np.finfo(w.dtype).tiny)
    if factor <= 0:
        return w.dtype.type(0)
    return w.dtype.type(math.sqrt(tiny / factor) if root else tiny / factor)


def _n_decay(w: Any, decay: bool | int) -> int:
    """How many leading elements of ``w`` are weight-decayed: ``decay`` itself when an int (the flat buffer keeps
    the decayed parameters first), all for True, none for False -- one launch for both kinds of parameter."""
    if isinstance(decay, bool):
        return w.size if decay else 0
    return int(decay)


def _norm_squared(grad: Any, measure: bool) -> float:
    """``sum_i grad_i^2`` by one BLAS dot when ``measure``, else 0. Not inside the kernels: a float64 sum in the
    loop keeps it from being vectorized (benchmarks/results/measurements.md)."""
    return backend.sum_of_squares(grad) if measure else 0.0


# -- SGD ------------------------------------------------------------------------------
@_jit
def _sgd(w, g, b, lr, mu, l2, n_decay, nesterov, tiny, w_floor):                  # pragma: no cover - compiled
    zero = l2 - l2                                                           # 0 in the dtype
    for i in prange(w.size):
        gi = g[i]
        gi = w[i] * (l2 if i < n_decay else zero) + gi                       # g = grad + lambda W (decayed ones)
        if b.size:
            bi = b[i] * mu + gi                                              # b = mu b + g
            b[i] = _zero_below(bi, tiny)
            gi = bi * mu + gi if nesterov else bi
        w[i] = _zero_below(w[i] - gi * lr, w_floor)                                  # W = W - alpha g


def sgd(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, momentum: float,
        nesterov: bool, weight_decay: float) -> float:
    """:func:`deltanet.optim.rules.sgd` in one pass: reads ``w, g`` (and ``b``), writes ``w`` (and ``b``)."""
    t = w.dtype.type
    b = state["momentum_buffer"] if momentum else _empty(w.dtype)
    sq = _norm_squared(grad, measure)
    with _LOCK:
        _sgd(w, grad, b, t(lr), t(momentum), t(weight_decay), _n_decay(w, decay), bool(nesterov), _tiny(w),
             _weight_floor(w))
    return sq


# -- Adam / AdamW ---------------------------------------------------------------------
@_jit
def _adam(w, g, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, step, eps_hat, l2, shrink, one, n_decay,
          tiny, w_min, g_min, w_floor):                                               # pragma: no cover - compiled
    zero = l2 - l2                                                           # 0 in the dtype (one: 1 in it)
    for i in prange(w.size):
        gi = g[i]
        decayed = i < n_decay
        wi = w[i] * (shrink if decayed else one)                             # W = W - alpha lambda W (AdamW)
        gi = _zero_below(wi, w_min) * (l2 if decayed else zero) + gi              # g = grad + lambda W (Adam)
        mi = m[i] * beta1 + gi * one_minus_beta1                             # m = beta1 m + (1 - beta1) g
        gs = _zero_below(gi, g_min)
        vi = v[i] * beta2 + gs * gs * one_minus_beta2                        # v = beta2 v + (1 - beta2) g^2
        wi = wi - mi / (np.sqrt(vi) + eps_hat) * step                       # W = W - alpha m_hat / (sqrt(v_hat) + eps)
        m[i] = _zero_below(mi, tiny)
        v[i] = _zero_below(vi, tiny)
        w[i] = _zero_below(wi, w_floor)


def adam(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, beta1: float,
         beta2: float, eps: float, weight_decay: float, decoupled: bool, t: int) -> float:
    """:func:`deltanet.optim.rules.adam` in one pass: reads ``w, g, m, v``, writes ``w, m, v``."""
    c = w.dtype.type
    root_bc2 = math.sqrt(1.0 - beta2**t)
    shrink = 1.0 - lr * weight_decay if decoupled else 1.0
    l2 = 0.0 if decoupled else weight_decay
    sq = _norm_squared(grad, measure)
    with _LOCK:
        _adam(w, grad, state["exp_avg"], state["exp_avg_sq"], c(beta1), c(1.0 - beta1), c(beta2), c(1.0 - beta2),
              c(lr * root_bc2 / (1.0 - beta1**t)), c(eps * root_bc2), c(l2), c(shrink), c(1.0), _n_decay(w, decay),
              _tiny(w),
              _threshold(w, l2), _threshold(w, 1.0 - beta2, root=True), _weight_floor(w))
    return sq


# -- RMSprop ----------------------------------------------------------------------------
@_jit
def _rmsprop(w, g, v, a, b, lr, rho, one_minus_rho, eps, mu, l2, n_decay, tiny, w_floor):  # pragma: no cover
    zero = l2 - l2                                                           # 0 in the dtype
    for i in prange(w.size):
        gi = g[i]
        gi = w[i] * (l2 if i < n_decay else zero) + gi                       # g = grad + lambda W (decayed ones)
        vi = v[i] * rho + gi * gi * one_minus_rho                            # v = rho v + (1 - rho) g^2
        v[i] = _zero_below(vi, tiny)
        if a.size:
            ai = a[i] * rho + gi * one_minus_rho                             # a = rho a + (1 - rho) g
            a[i] = _zero_below(ai, tiny)
            vi = vi - ai * ai                                                # s = v - a^2
        d = gi / (np.sqrt(vi) + eps)                                         # d = g / (sqrt(s) + eps)
        if b.size:
            d = b[i] * mu + d                                                # b = mu b + d
            b[i] = _zero_below(d, tiny)
        w[i] = _zero_below(w[i] - d * lr, w_floor)                                   # W = W - alpha b  (or alpha d)


def rmsprop(w: Any, grad: Any, state: dict[str, Any], *, decay: bool | int, measure: bool, lr: float, alpha: float,
            eps: float, momentum: float, weight_decay: float, centered: bool) -> float:
    """:func:`deltanet.optim.rules.rmsprop` in one pass: reads ``w, g, v`` (``a``, ``b``), writes ``w, v`` (``a``, ``b``)."""
    c = w.dtype.type
    none = _empty(w.dtype)
    a = state["grad_avg"] if centered else none
    b = state["momentum_buffer"] if momentum else none
    sq = _norm_squared(grad, measure)
    with _LOCK:
        _rmsprop(w, grad, state["square_avg"], a, b, c(lr), c(alpha), c(1.0 - alpha), c(eps), c(momentum),
                 c(weight_decay), _n_decay(w, decay), _tiny(w), _weight_floor(w))
    return sq


#: Each kernel and the reference rule it equals.
KERNELS = {"sgd": (sgd, rules.sgd), "adam": (adam, rules.adam), "rmsprop": (rmsprop, rules.rmsprop)}
