"""Inverted dropout."""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..constraints import check
from .activations import _as_float_array
from .base import Module


class Dropout(Module):
    r"""Zero each unit with probability ``rate`` during training (inverted dropout).

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of *zeroing* a unit. The reference writes the mask as
        m ~ Bernoulli(p) with p the probability of *keeping* a unit: p = 1 - rate.
    rng : int, numpy.random.Generator or None
        Seed or generator of the masks (seeded: the same masks every run).

    Notes
    -----
    Training:  h_out = h * m / p,  m_i ~ Bernoulli(p),  p = 1 - rate
               dL/dh = dL/dh_out * m / p
    Eval:      h_out = h (the 1/p scaling at training time keeps the expected
               activation equal, so nothing changes at evaluation).
    """

    def __init__(self, rate: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        self.rate = check("dropout", rate, "Dropout: rate")
        self.rng = backend.make_rng(rng)
        self._mask: Any = None
        self._seen = False

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def _own_generators(self) -> list[numpy.random.Generator]:
        return [self.rng]

    def forward(self, x: Any, training: bool = False) -> Any:
        x = _as_float_array(self, x)
        self._seen = True
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = 1.0 - self.rate
        u = self.rng.random(x.size, dtype=numpy.float32 if x.dtype == numpy.float32 else numpy.float64)
        u = backend.view_like(u, x)                 # in x's memory order (column-major after a Linear layer)
        mask = backend.xp.asarray(u >= self.rate, dtype=x.dtype)
        mask *= 1.0 / keep                          # m / p, once per batch
        self._mask = mask
        return x * mask

    def backward(self, grad_out: Any) -> Any:
        if not self._seen:
            raise self._missing_forward()
        if self._mask is None:
            return grad_out
        if grad_out.shape != self._mask.shape:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {self._mask.shape}")
        return grad_out * self._mask
