"""GELU, the Transformer's activation (tanh form)."""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from .activations import ACTIVATIONS, Activation, _as_float_array

_C = math.sqrt(2.0 / math.pi)
_A = 0.044715


class GELU(Activation):
    r"""Gaussian error linear unit, in its tanh approximation.

    GELU(x) = x Phi(x) with Phi the standard normal CDF (Hendrycks & Gimpel
    2016, https://arxiv.org/abs/1606.08415). This module computes the tanh
    form given in that paper (also used by BERT and GPT-2), which needs no
    error function:

        u = c (x + a x^3),   c = sqrt(2 / pi),   a = 0.044715
        t = tanh(u)
        h = x (1 + t) / 2

    It differs from the exact x Phi(x) by less than 1e-3 everywhere
    (PyTorch's ``GELU(approximate="tanh")`` computes the same function).

    Backward, from the cached x and t:

        dh/dx = (1 + t) / 2 + x (1 - t^2) c (1 + 3 a x^2) / 2
        dL/dx = dL/dh * dh/dx

    Shapes: any; the output has the input's shape.
    """

    def __init__(self) -> None:
        super().__init__()
        self._x: Any = None

    def forward(self, x: Any, training: bool = False) -> Any:
        x = _as_float_array(self, x)
        t = x * x
        t *= _A
        t += 1.0
        t *= x
        t *= _C                          # u = c (x + a x^3)
        backend.xp.tanh(t, out=t)        # t = tanh(u)
        self._x, self._h = x, t
        h = t + 1.0
        h *= x
        h *= 0.5                          # h = x (1 + t) / 2
        return h

    def backward(self, grad_out: Any) -> Any:
        t = self._cached()
        x = self._x
        self._check_grad(grad_out, t)
        xp = backend.xp
        # dh/dx = (1 + t)/2 + x (1 - t^2) c (1 + 3 a x^2) / 2
        d = x * x
        d *= 1.5 * _A * _C
        d += 0.5 * _C
        d *= x                            # x c (1 + 3 a x^2) / 2
        s = t * t
        xp.subtract(1.0, s, out=s)
        d *= s                            # ... (1 - t^2)
        xp.multiply(t, 0.5, out=s)
        s += 0.5
        d += s                            # + (1 + t) / 2
        d *= grad_out
        return d


# Let builders that take an activation name (``mlp(..., activation="gelu")``) find it.
ACTIVATIONS.setdefault("gelu", GELU)
