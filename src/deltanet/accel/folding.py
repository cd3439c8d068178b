"""Folded gradients: the backward pass adds each gradient straight into an optimizer's running sum.

Why: SGD with momentum keeps ``b <- mu b + g``. Formed the usual way, the
gradient ``g`` of each weight is written by its matrix product, then read again
by the step. Folded, the product itself computes ``b <- delta^T h + mu b``
(:func:`deltanet.accel.blas.gemm`, one BLAS call) and the step is one
multi-threaded axpy ``W <- W - alpha b``: one write and one read of every
gradient fewer per step (measured: ``benchmarks/results/measurements.md``).

How: :func:`arm` attaches a :class:`FoldSink` to every parameter
(:attr:`deltanet.Parameter.sink`, the math path's one hook for this), each
holding the parameter's view of the state array; the next ``step()`` detaches
them and applies the rest of the rule (:data:`RULES`). The gradients are never
formed in such a step, so nothing may read them between ``backward`` and
``step``; the trainer decides that (:mod:`deltanet.accel.plan`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import backend
from ..optim import rules
from . import blas

if TYPE_CHECKING:
    from ..optim.base import Optimizer
    from .fused import FusedStep, _Group

#: Folding runs only for at least this many parameter elements: below it the ctypes calls' fixed cost is more
#: than the passes saved (a 64-32-10 network, 2,410 parameters, trains 1.5x slower folded; 784-512-256-10 faster).
FOLD_MIN_SIZE = 1 << 16


class FoldSink:
    """A parameter's gradient sink during a folded step: ``target <- beta target + g`` for its gradients.

    ``target`` (shaped like the parameter) is scaled by ``beta`` once, with the
    first gradient that arrives; every later one adds to it (a parameter used
    twice adds both).
    """

    __slots__ = ("target", "beta", "arrived")

    def __init__(self, target: Any, beta: float) -> None:
        self.target = target
        self.beta = float(beta)
        self.arrived = False

    def _take_beta(self) -> float:
        """The factor for the target with this gradient: ``beta`` for the first to arrive, then 1."""
        beta = 1.0 if self.arrived else self.beta
        self.arrived = True
        return beta

    def add(self, g: Any, rows: slice | None) -> None:
        beta = self._take_beta()
        if beta != 1.0:
            self.target *= beta
        self.target[rows if rows is not None else ...] += g

    def add_matmul(self, a: Any, b: Any) -> None:
        if a.ndim == 1:                # a vector (a bias): NumPy's matrix-vector product beats a one-row gemm
            self.add(a @ b, None)
            return
        blas.gemm(1.0, a, b, self._take_beta(), self.target)     # target <- a @ b + beta target, one BLAS call


# -- the rules that keep a running sum of the gradients ------------------------------------------------
def _sgd_spec(opt: Any) -> tuple[str, float] | None:
    """SGD with (heavy-ball) momentum: ``b <- mu b + g``; Nesterov's form uses g again after it: no fold."""
    return ("momentum_buffer", opt.momentum) if opt.momentum and not opt.nesterov else None


def _sgd_update(opt: Any, group: _Group) -> None:
    """The rest of :func:`deltanet.optim.rules.sgd` once ``b = mu b + grad``: weight decay, then the step."""
    w, b = group.buffer.value, group.state["momentum_buffer"]
    n = group.buffer.n_decay
    if opt.weight_decay and n:
        blas.axpy(opt.weight_decay, w[:n], b[:n])                # b = b + lambda W  (decayed parameters)
    blas.axpy(-opt.lr, b, w)                                      # W = W - alpha b


#: rule -> (``spec(optimizer)``: ``(state key, beta)`` when the state follows ``s <- beta s + g`` this step, else
#: None; ``update(optimizer, group)``: the rest of the rule once every gradient is in the state).
RULES: dict[Callable[..., Any], tuple[Callable[[Any], tuple[str, float] | None], Callable[[Any, Any], None]]] = {
    rules.sgd: (_sgd_spec, _sgd_update),
}


def spec(opt: Optimizer) -> tuple[str, float] | None:
    """``(state key, beta)`` when ``opt``'s rule can take its gradients folded this step, else None."""
    entry = RULES.get(type(opt).rule) if opt.uses_rule else None
    return None if entry is None else entry[0](opt)


def arm(engine: FusedStep) -> bool:
    """Attach a :class:`FoldSink` to every parameter of ``engine``'s optimizer; True if folding is on.

    False, and nothing changes, where the rule keeps no running sum (Adam,
    RMSprop, plain or Nesterov SGD), for fewer than :data:`FOLD_MIN_SIZE`
    parameter elements, or without NumPy's BLAS (:func:`deltanet.accel.blas.available`).
    """
    opt = engine.optimizer
    if opt.n_elements < FOLD_MIN_SIZE:                 # the cheapest test first: called every batch
        return False
    found = spec(opt) if blas.available() and backend.xp.__name__ == "numpy" else None
    if found is None:
        return False
    if engine.folding:                                 # armed already, perhaps with gradients in: leave it
        return True
    key, beta = found
    if not all(group.buffer.is_bound() for group in engine.groups):   # no sync: the gradients are not used
        engine.regroup()
    for group in engine.groups:
        engine.create_state(group, (key,))
        for p, target in zip(group.buffer.params, group.state_views(key), strict=True):
            p.sink = FoldSink(target, beta)
    engine.folding = True
    return True


def folded_step(engine: FusedStep) -> None:
    """Detach the sinks and finish the rule: a parameter no gradient reached had ``g = 0``: ``s <- beta s``."""
    opt = engine.optimizer
    key, beta = spec(opt)
    update = RULES[type(opt).rule][1]
    for group in engine.groups:
        for p, target in zip(group.buffer.params, group.state_views(key), strict=True):
            sink = p.sink
            p.zero_grad()                              # detaches the sink; the gradient is zero (lazily)
            if not (isinstance(sink, FoldSink) and sink.arrived):
                target *= beta
        update(opt, group)


def still_armed(engine: FusedStep) -> bool:
    """Whether every parameter still has its sink (True), or none has (False: they were zeroed since
    :func:`arm`, e.g. by ``model.zero_grad()``, so the gradients went to ``grad`` as usual).

    Raises RuntimeError when only some have: part of the gradients is in the state, part in ``grad``.
    """
    armed = [isinstance(p.sink, FoldSink) for group in engine.groups for p in group.buffer.params]
    if all(armed):
        return True
    if any(armed):
        raise RuntimeError(f"{type(engine.optimizer).__name__}.step: some parameters' gradients were zeroed after "
                           "fold_gradients() and others not; call zero_grad() on all of them before fold_gradients()")
    return False


__all__ = ["FOLD_MIN_SIZE", "RULES", "FoldSink", "arm", "folded_step", "spec", "still_armed"]
