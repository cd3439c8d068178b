"""RMSprop: steps divided by a running root-mean-square of the gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import backend
from ..parameter import Parameter
from .base import Optimizer, check_positive, check_unit_interval


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
        epsilon (>= 0), added to the root mean square.
    momentum : float
        Momentum factor mu in [0, 1).
    weight_decay : float
        L2 penalty lambda (>= 0) added to the gradient of parameters marked for decay.
    centered : bool
        Divide by an estimate of the gradient's standard deviation instead of
        its root mean square (Graves, 2013).

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

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, lr)
        self.alpha = check_unit_interval("alpha", alpha)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.momentum = check_unit_interval("momentum", momentum)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        self.centered = bool(centered)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "centered": self.centered}

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        xp = backend.xp
        rho = self.alpha
        g = self._grad_with_l2(p, self.weight_decay, slot=0)     # g = grad + lambda W
        v = self._buffer(state, "square_avg", p.value)
        tmp = self._work(p, slot=1)
        v *= rho                                                  # v = rho v + (1 - rho) g^2
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - rho
        v += tmp
        if self.centered:
            a = self._buffer(state, "grad_avg", p.value)
            a *= rho                                              # a = rho a + (1 - rho) g
            xp.multiply(g, 1.0 - rho, out=tmp)
            a += tmp
            xp.multiply(a, a, out=tmp)                            # s = v - a^2
            xp.subtract(v, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(v, out=tmp)
        tmp += self.eps                                           # sqrt(s) + eps
        xp.divide(g, tmp, out=tmp)                                # g / (sqrt(s) + eps)
        if self.momentum:
            b = self._buffer(state, "momentum_buffer", p.value)
            b *= self.momentum                                    # b = mu b + g / (sqrt(s) + eps)
            b += tmp
            xp.multiply(b, self.lr, out=tmp)                      # W = W - alpha b
        else:
            tmp *= self.lr                                        # W = W - alpha g / (sqrt(s) + eps)
        p.value -= tmp
