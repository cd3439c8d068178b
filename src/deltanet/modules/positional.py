"""Positional information for sequences: learned embeddings and sinusoidal encodings.

Self-attention and position-wise layers are blind to order (permuting the
positions of the input permutes the output the same way); adding a vector that
depends on the position makes order visible.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend
from ..parameter import Parameter
from .attention import as_sequence
from .base import Module


def _check_sequence(module: Module, x: Any, d_model: int, max_len: int | None) -> Any:
    x = as_sequence(module, x, d_model, getattr(module, "dtype", None))
    if max_len is not None and x.shape[1] > max_len:
        raise ValueError(f"{module._label()}: sequence length {x.shape[1]} exceeds max_len={max_len}; "
                         "build it with a larger max_len")
    return x


class PositionalEmbedding(Module):
    r"""Learned positional embedding: y_t = x_t + P_t.

    Parameters
    ----------
    max_len : int
        Longest sequence accepted; sequences of length T <= max_len use rows
        0..T-1 of P.
    d_model : int
        Width of every position.
    init_std : float
        P starts as N(0, init_std^2) (0.02, as in BERT and GPT-2).
    rng : int, Generator or None
        Seed of the initial values.
    dtype : float32 (default) or float64.

    Attributes
    ----------
    weight : Parameter, shape ``(max_len, d_model)`` -- P; not weight-decayed
        (an embedding table, not a weight matrix).

    Notes
    -----
    Shapes: x and y are ``(batch, T, d_model)``.

        Forward:   y[b, t] = x[b, t] + P[t]
        Backward:  dL/dx = dL/dy,   dL/dP[t] = sum_b dL/dy[b, t] (rows t >= T get 0)
    """

    def __init__(self, max_len: int, d_model: int, init_std: float = 0.02, rng: Any = None, dtype: Any = None) -> None:
        super().__init__()
        for name, v in (("max_len", max_len), ("d_model", d_model)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"PositionalEmbedding: {name} must be a positive int, got {v!r}")
        if not float(init_std) >= 0:
            raise ValueError(f"PositionalEmbedding: init_std must be >= 0, got {init_std}")
        self.max_len = max_len
        self.d_model = d_model
        self.init_std = float(init_std)
        self.dtype = backend.resolve_dtype(dtype)
        p = backend.make_rng(rng).standard_normal((max_len, d_model)) * self.init_std
        self.weight = self.add_parameter("weight", Parameter(backend.xp.asarray(p, dtype=self.dtype), decay=False))
        self._t: int | None = None

    def get_config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "d_model": self.d_model, "init_std": self.init_std, "dtype": self.dtype.name}

    def forward(self, x: Any, training: bool = False) -> Any:
        x = _check_sequence(self, x, self.d_model, self.max_len)
        self._t = x.shape[1]
        return x + self.weight.value[: self._t]              # y_t = x_t + P_t

    def backward(self, grad_out: Any) -> Any:
        if self._t is None:
            raise self._missing_forward()
        t = self._t
        if grad_out.ndim != 3 or grad_out.shape[1:] != (t, self.d_model):
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, "
                             f"expected (batch, {t}, {self.d_model})")
        if t == self.max_len:
            self.weight.accumulate_sum(grad_out)              # dP_t = sum_b dL/dy_bt
        else:
            self.weight.accumulate(grad_out.sum(axis=0), rows=slice(0, t))
        return grad_out


class SinusoidalPositionalEncoding(Module):
    r"""Fixed sinusoidal positional encoding (Vaswani et al. 2017): y_t = x_t + PE_t.

    Parameters
    ----------
    d_model : int
        Width of every position.
    base : float
        The wavelength base (10000 in the paper).
    dtype : float32 (default) or float64.

    Notes
    -----
    No parameters; any sequence length. For position t and i = 0, 1, ...:

        PE[t, 2i]   = sin(t / base^(2i / d_model))
        PE[t, 2i+1] = cos(t / base^(2i / d_model))

    Forward y = x + PE[:T] with x, y of shape ``(batch, T, d_model)``;
    backward dL/dx = dL/dy.
    """

    def __init__(self, d_model: int, base: float = 10000.0, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model < 1:
            raise ValueError(f"SinusoidalPositionalEncoding: d_model must be a positive int, got {d_model!r}")
        if not float(base) > 1:
            raise ValueError(f"SinusoidalPositionalEncoding: base must be > 1, got {base}")
        self.d_model = d_model
        self.base = float(base)
        self.dtype = backend.resolve_dtype(dtype)
        self._table: Any = None
        self._t: int | None = None

    def get_config(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "base": self.base, "dtype": self.dtype.name}

    def table(self, t: int) -> Any:
        """PE[:t], shape ``(t, d_model)`` (computed once, then grown when a longer sequence comes)."""
        if self._table is None or self._table.shape[0] < t:
            xp = backend.xp
            pos = xp.arange(t, dtype=xp.float64)[:, None]
            freq = xp.exp(-math.log(self.base) * xp.arange(0, self.d_model, 2, dtype=xp.float64) / self.d_model)
            angle = pos * freq                                     # t / base^(2i/d)
            pe = xp.empty((t, self.d_model), dtype=xp.float64)
            pe[:, 0::2] = xp.sin(angle)
            pe[:, 1::2] = xp.cos(angle[:, : self.d_model // 2])
            self._table = pe.astype(self.dtype)
        return self._table[:t]

    def forward(self, x: Any, training: bool = False) -> Any:
        x = _check_sequence(self, x, self.d_model, None)
        self._t = x.shape[1]
        return x + self.table(self._t)

    def backward(self, grad_out: Any) -> Any:
        if self._t is None:
            raise self._missing_forward()
        if grad_out.ndim != 3 or grad_out.shape[1:] != (self._t, self.d_model):
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, "
                             f"expected (batch, {self._t}, {self.d_model})")
        return grad_out
