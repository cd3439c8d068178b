"""Stochastic gradient descent with momentum and Nesterov momentum."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..parameter import Parameter
from .base import Optimizer, check_positive, check_unit_interval


class SGD(Optimizer):
    r"""Mini-batch gradient descent, W <- W - alpha dL/dW, with optional momentum.

    Update rule (as ``torch.optim.SGD`` implements it, dampening 0)::

        g <- grad + weight_decay * W            (parameters marked for decay only)
        if momentum > 0:
            b <- g                       on the first step
            b <- momentum * b + g        afterwards
            g <- g + momentum * b        if nesterov else  g <- b
        W <- W - lr * g

    References: Robbins & Monro (1951); Polyak (1964) for momentum; Sutskever
    et al. (2013), "On the importance of initialization and momentum in deep
    learning" for the Nesterov form.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = check_unit_interval("momentum", momentum)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        g = p.grad
        if self.weight_decay and p.decay:
            g = g + self.weight_decay * p.value
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.value -= self.lr * g
