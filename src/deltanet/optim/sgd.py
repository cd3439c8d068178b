"""Stochastic gradient descent with momentum and Nesterov momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..constraints import check
from ..parameter import Parameter
from . import rules
from .base import Optimizer


class SGD(Optimizer):
    r"""Mini-batch gradient descent, W <- W - alpha dL/dW, with optional momentum.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate alpha (> 0).
    momentum : float
        Momentum factor mu in [0, 1); 0 is plain gradient descent.
    nesterov : bool
        Nesterov's form of momentum (needs ``momentum > 0``).
    weight_decay : float
        L2 penalty lambda (>= 0): adds ``lambda * W`` to the gradient of each
        parameter marked for decay, i.e. minimizes ``L + lambda/2 ||W||^2``.
    fused : bool
        Update all parameters of a dtype at once over flat buffers (default; see
        :class:`~deltanet.optim.Optimizer`). Same results as ``fused=False``.

    Notes
    -----
    Update rule at step t (as ``torch.optim.SGD`` implements it, dampening 0)::

        g <- grad + lambda * W              (parameters with decay=True only)
        if mu > 0:
            b <- mu * b + g                 b_0 = 0, so b_1 = g_1
            g <- g + mu * b   if nesterov   else   g <- b
        W <- W - alpha * g

    State: ``momentum_buffer`` (b), when ``momentum > 0``.

    With momentum (not Nesterov) the fast path can fold the gradients into ``b``
    (:meth:`~deltanet.optim.Optimizer.fold_gradients`, :mod:`deltanet.accel.folding`):
    the same rule, with the gradient never stored.

    References
    ----------
    Robbins & Monro (1951), "A stochastic approximation method".
    Polyak (1964), "Some methods of speeding up the convergence of iteration methods" (momentum).
    Sutskever, Martens, Dahl & Hinton (2013), "On the importance of initialization and momentum in
    deep learning", ICML (the Nesterov form used here).
    """

    rule = staticmethod(rules.sgd)
    kernel = "sgd"

    def __init__(self, params: Iterable[Parameter], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, *, fused: bool = True) -> None:
        super().__init__(params, lr, fused=fused)
        self.momentum = check("momentum", momentum)
        self.weight_decay = check("weight_decay", weight_decay)
        self.nesterov = check("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def state_keys(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum else ()

    def rule_arguments(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}
