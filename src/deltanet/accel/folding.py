"""Folded gradients: the backward pass adds each gradient straight into an optimizer's running sum.

Why: SGD with momentum keeps ``b <- mu b + g``. Formed the usual way, the
gradient ``g`` of each weight is written by its matrix product, then read again
by the step. Folded, the product itself computes ``b <- delta^T h + mu b``
(:func:`deltanet.accel.blas.gemm`, one BLAS call) and the step is one
multi-threaded axpy ``W <- W - alpha b``: one write and one read of every
gradient fewer per step (measured: ``benchmarks/results/measurements.md``).

How: :func:`arm` attaches a :class:`FoldSink` to every parameter
(:attr:`deltanet.Parameter.sink`, the math path's one hook for this), each
holding the parameter's view of the state array; the next ``step()`` applies
the rest of the rule (:data:`RULES`). Who arms:

- the optimizer itself, for the plain calls (``zero_grad``, ``backward``,
  ``step``) with no extra call: after each unfolded step of a rule that can
  fold, it attaches persistent sinks for the next steps
  (:func:`arm_automatically`). If anything then reads a gradient (``p.grad``,
  clipping, a norm), the sinks give back what they received -- the products
  are computed again from the arrays the backward pass handed over, and the
  state is put back as it was, to rounding -- and the optimizer folds by
  itself no more (:func:`release_all`): correct always, fast where nothing
  looks;
- a trainer's batches, through :mod:`deltanet.accel.plan`, which knows
  beforehand whether anything reads the gradients (``fold_gradients()``; the
  optimizer's own arming is off during ``fit``).

``zero_grad()`` after a backward pass that folded takes its gradients back out
of the state (:meth:`FoldSink.zeroed`).
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
    twice adds both). What arrived is remembered (the arrays the backward pass
    handed over, no copies), so that the gradient can still be formed when
    something asks for it (:meth:`release`) or taken back out when the
    gradients are zeroed after all (:meth:`zeroed`).

    ``persistent`` sinks (the optimizer's own, :func:`arm_automatically`) stay
    attached from step to step; the others are detached by ``zero_grad``.
    """

    __slots__ = ("target", "beta", "arrived", "persistent", "engine", "records")

    def __init__(self, target: Any, beta: float, engine: FusedStep | None = None, persistent: bool = False) -> None:
        self.target = target
        self.beta = float(beta)
        self.arrived = False
        self.persistent = persistent
        self.engine = engine
        self.records: list[tuple[Any, Any, bool]] = []

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
        self.records.append((g, rows, False))

    def add_matmul(self, a: Any, b: Any) -> None:
        if a.ndim == 1:                # a vector (a bias): NumPy's matrix-vector product beats a one-row gemm
            self.add(a @ b, None)
            return
        blas.gemm(1.0, a, b, self._take_beta(), self.target)     # target <- a @ b + beta target, one BLAS call
        self.records.append((a, b, True))

    def gradient(self) -> Any:
        """The sum of the gradients that arrived, formed now (the products computed again), in a new array."""
        g = backend.xp.zeros_like(self.target)
        for first, second, product in self.records:
            if product:
                g += first @ second
            else:
                g[second if second is not None else ...] += first
        return g

    def _take_back(self) -> Any | None:
        """Undo the arrivals on ``target`` (``target <- (target - g) / beta``, to rounding); their sum, or None."""
        if not self.arrived:
            return None
        g = self.gradient()
        self.target -= g
        self.target /= self.beta
        self.arrived = False
        self.records = []
        return g

    def zeroed(self) -> bool:
        """The parameter's gradients were zeroed: take back what arrived; whether the sink stays attached."""
        self._take_back()
        return self.persistent

    def release(self, param: Any) -> None:
        """Something reads ``param.grad``: every sink of the engine gives its gradients back to ``grad`` and
        detaches, the step will be the unfolded rule, and the engine stops folding by itself."""
        if self.engine is None:
            g = self._take_back()
            param.sink = None
            if g is not None:
                param.accumulate(g)
            return
        release_all(self.engine)

    def reset(self) -> None:
        """A new step begins: nothing has arrived."""
        self.arrived = False
        self.records = []


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


def arm(engine: FusedStep, persistent: bool = False) -> bool:
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
            p.sink = FoldSink(target, beta, engine, persistent)
    engine.folding = True
    return True


def arm_automatically(engine: FusedStep) -> bool:
    """After an unfolded step: attach persistent sinks for the steps to come, where folding may run by itself
    (``engine.auto_fold``: no caller asked for the gradients since; see :func:`release_all`)."""
    return engine.auto_fold and not engine.folding and arm(engine, persistent=True)


def release_all(engine: FusedStep) -> None:
    """Give every parameter of ``engine`` what its sink took (into ``grad``) and detach the sinks; the engine
    folds by itself no more (something reads its gradients)."""
    engine.auto_fold = False
    engine.folding = False
    for group in engine.groups:
        for p in group.buffer.params:
            sink = p.sink
            if isinstance(sink, FoldSink):
                g = sink._take_back()
                p.sink = None
                if g is not None:
                    p.accumulate(g)


def disarm(engine: FusedStep) -> None:
    """Detach the sinks of ``engine``'s parameters, giving back what arrived (into ``grad``); unlike
    :func:`release_all`, the engine may arm itself again later."""
    auto = engine.auto_fold
    release_all(engine)
    engine.auto_fold = auto


def folded_step(engine: FusedStep) -> bool:
    """Finish the rule of a folded step; False (nothing done) when no parameter has its sink any more.

    A parameter whose sink received nothing had ``g = 0``: ``s <- beta s``; one
    whose sink was detached since (its gradients zeroed, then formed in ``grad``)
    adds ``grad`` now: ``s <- beta s + grad``. Persistent sinks stay attached for
    the next step; the others are detached.
    """
    opt = engine.optimizer
    params = [p for group in engine.groups for p in group.buffer.params]
    if not any(isinstance(p.sink, FoldSink) for p in params):
        return False
    key, beta = spec(opt)
    update = RULES[type(opt).rule][1]
    for group in engine.groups:
        for p, target in zip(group.buffer.params, group.state_views(key), strict=True):
            sink = p.sink
            if isinstance(sink, FoldSink):
                if not sink.arrived:
                    target *= beta
                if sink.persistent:
                    sink.reset()
                    p.zero_grad()                      # keeps a persistent sink; the gradient is zero (lazily)
                else:
                    p.sink = None
                    p.zero_grad()
            else:
                target *= beta
                if not p.grad_is_zero:
                    target += p.grad
                p.zero_grad()
        update(opt, group)
    engine.folding = any(isinstance(p.sink, FoldSink) for p in params)
    return True


__all__ = ["FOLD_MIN_SIZE", "RULES", "FoldSink", "arm", "arm_automatically", "disarm", "folded_step", "release_all",
           "spec"]
