"""RMSprop: steps divided by a running root-mean-square of the gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..constraints import check
from ..parameter import Parameter
from . import rules
from .base import Optimizer


class RMSprop(Optimizer):
    r"""RMSprop, optionally with momentum and the centered variant.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate alpha (> 0).
    alpha : float
        Smoothing constant rho in [0, 1) of the running average of squared gradients
        (named ``alpha`` as in PyTorch; the learning rate is ``lr``).
    eps : float
        epsilon (> 0), added to the root mean square.
    momentum : float
        Momentum factor mu in [0, 1).
    weight_decay : float
        L2 penalty lambda (>= 0) added to the gradient of parameters marked for decay.
    centered : bool
        Divide by an estimate of the gradient's standard deviation instead of
        its root mean square (Graves, 2013).
    fused : bool
        Update all parameters of a dtype at once over flat buffers (default; see
        :class:`~deltanet.optim.Optimizer`). Same results as ``fused=False``.

    Notes
    -----
    Update rule at step t (as ``torch.optim.RMSprop`` implements it)::

        g <- grad + lambda * W                  (parameters with decay=True only)
        v <- rho * v + (1 - rho) * g^2          v_0 = 0
        s  = v
        if centered:
            a <- rho * a + (1 - rho) * g        a_0 = 0
            s  = v - a^2
        if mu > 0:
            b <- mu * b + g / (sqrt(s) + eps)   b_0 = 0
            W <- W - alpha * b
        else:
            W <- W - alpha * g / (sqrt(s) + eps)

    State: ``square_avg`` (v), ``grad_avg`` (a, centered only), ``momentum_buffer`` (b, momentum only).

    References
    ----------
    Tieleman & Hinton (2012), "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for Machine Learning.
    Graves (2013), "Generating Sequences With Recurrent Neural Networks", https://arxiv.org/abs/1308.0850
    (centered variant, momentum).
    """

    rule = staticmethod(rules.rmsprop)
    kernel = "rmsprop"

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False, *, fused: bool = True) -> None:
        super().__init__(params, lr, fused=fused)
        self.alpha = check("rho", alpha, "alpha")
        self.eps = check("eps", eps)
        self.momentum = check("momentum", momentum)
        self.weight_decay = check("weight_decay", weight_decay)
        self.centered = bool(centered)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "centered": self.centered}

    def state_keys(self) -> tuple[str, ...]:
        return ("square_avg",) + (("grad_avg",) if self.centered else ()) + (("momentum_buffer",) if self.momentum else ())

    def rule_arguments(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "centered": self.centered}
