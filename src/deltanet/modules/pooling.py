"""From a sequence ``(batch, T, d)`` to one vector per sample ``(batch, d)``, so that a
classifier head (a ``Linear``) can follow; and the class token that one of them reads."""

from __future__ import annotations

from typing import Any

from .. import backend
from ..parameter import Parameter
from .attention import as_mask, as_sequence
from .base import Module


class MeanPool(Module):
    r"""Mean over positions: y_b = 1/T sum_t x_bt, or over the unmasked positions only.

    Notes
    -----
    Shapes: x ``(batch, T, d)`` -> y ``(batch, d)``. With a padding mask m of
    shape ``(batch, T)`` (True for real tokens; given as ``forward(x, mask=m)``
    or with :meth:`set_mask`, as for the attention modules), with
    n_b = max(1, sum_t m_bt):

        Forward:   y_b = sum_t m_bt x_bt / n_b
        Backward:  dL/dx_bt = m_bt dL/dy_b / n_b

    (without a mask m = 1 and n_b = T). A sample with every position masked
    gives y_b = 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self._mask: Any = None
        self._cache: tuple[tuple[int, ...], Any] | None = None

    def set_mask(self, mask: Any) -> None:
        """Use the padding mask ``mask`` (``(batch, T)``, True = real token) from now on; None clears it."""
        self._mask = None if mask is None else as_mask(mask, self._label())

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        x = as_sequence(self, x)
        b, t, _ = x.shape
        m = self._mask if mask is None else as_mask(mask, self._label())
        if m is None:
            self._cache = (tuple(x.shape), None)
            return x.mean(axis=1)
        if tuple(m.shape) != (b, t):
            raise ValueError(f"{self._label()}: expected a padding mask of shape (batch, T) = {(b, t)}, got {tuple(m.shape)}")
        w = m.astype(x.dtype)
        w /= backend.xp.maximum(w.sum(axis=1, keepdims=True), 1.0)     # m_bt / n_b
        self._cache = (tuple(x.shape), w)
        return (w[:, None, :] @ x)[:, 0, :]

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise self._missing_forward()
        shape, w = self._cache
        if tuple(grad_out.shape) != (shape[0], shape[2]):
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {(shape[0], shape[2])}")
        grad_in = backend.xp.empty(shape, dtype=grad_out.dtype)
        if w is None:
            grad_in[...] = grad_out[:, None, :] * (1.0 / shape[1])      # dL/dx_bt = dL/dy_b / T
        else:
            backend.xp.multiply(w[:, :, None], grad_out[:, None, :], out=grad_in)
        return grad_in

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], input_shape[-1])


class TokenPool(Module):
    r"""Take one position: y_b = x_{b, index} (index 0 reads a :class:`ClassToken`).

    Notes
    -----
    Shapes: x ``(batch, T, d)`` -> y ``(batch, d)``.
    Backward: dL/dx_{b, index} = dL/dy_b, zero at every other position.
    """

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"TokenPool: index must be an int, got {index!r}")
        self.index = index
        self._shape: tuple[int, ...] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"index": self.index}

    def forward(self, x: Any, training: bool = False) -> Any:
        x = as_sequence(self, x)
        if not -x.shape[1] <= self.index < x.shape[1]:
            raise ValueError(f"{self._label()}: index {self.index} is out of range for sequences of length {x.shape[1]}")
        self._shape = tuple(x.shape)
        return x[:, self.index, :].copy()

    def backward(self, grad_out: Any) -> Any:
        if self._shape is None:
            raise self._missing_forward()
        if tuple(grad_out.shape) != (self._shape[0], self._shape[2]):
            expected = (self._shape[0], self._shape[2])
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {expected}")
        grad_in = backend.xp.zeros(self._shape, dtype=grad_out.dtype)
        grad_in[:, self.index, :] = grad_out
        return grad_in

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], input_shape[-1])


class ClassToken(Module):
    r"""Prepend a learned vector c to every sequence: ``(batch, T, d) -> (batch, T + 1, d)``.

    After the encoder blocks, ``TokenPool(0)`` reads position 0, which has
    attended to the whole sequence: the class-token pooling of BERT and ViT.

    Parameters
    ----------
    d_model : int
    init_std : float
        c starts as N(0, init_std^2).
    rng, dtype : as for :class:`~deltanet.modules.linear.Linear`.

    Attributes
    ----------
    token : Parameter, shape ``(d_model,)`` -- c; not weight-decayed.

    Notes
    -----
        Forward:   y[b, 0] = c,  y[b, 1:] = x[b]
        Backward:  dL/dc = sum_b dL/dy[b, 0],  dL/dx = dL/dy[:, 1:]

    With a padding mask, the attention layers behind it see T + 1 positions:
    give them :meth:`extend_mask` of the mask.
    """

    def __init__(self, d_model: int, init_std: float = 0.02, rng: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(d_model, int) or isinstance(d_model, bool) or d_model < 1:
            raise ValueError(f"ClassToken: d_model must be a positive int, got {d_model!r}")
        self.d_model = d_model
        self.init_std = float(init_std)
        self.dtype = backend.resolve_dtype(dtype)
        c = backend.make_rng(rng).standard_normal(d_model) * self.init_std
        self.token = self.add_parameter("token", Parameter(backend.xp.asarray(c, dtype=self.dtype), decay=False))
        self._seen = False

    def get_config(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "init_std": self.init_std, "dtype": self.dtype.name}

    @staticmethod
    def extend_mask(mask: Any) -> Any:
        """A ``(batch, T)`` padding mask -> ``(batch, T + 1)``, True for the class token."""
        m = as_mask(mask, "ClassToken.extend_mask")
        return backend.xp.concatenate([backend.xp.ones((m.shape[0], 1), dtype=bool), m], axis=1)

    def forward(self, x: Any, training: bool = False) -> Any:
        x = as_sequence(self, x, self.d_model, self.dtype)
        b, t, d = x.shape
        y = backend.xp.empty((b, t + 1, d), dtype=self.dtype)
        y[:, 0, :] = self.token.value
        y[:, 1:, :] = x
        self._seen = True
        return y

    def backward(self, grad_out: Any) -> Any:
        if not self._seen:
            raise self._missing_forward()
        if grad_out.ndim != 3 or grad_out.shape[2] != self.d_model:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, "
                             f"expected (batch, T + 1, {self.d_model})")
        self.token.accumulate_sum(grad_out[:, 0, :])                   # dc = sum_b dL/dy_b0
        return backend.xp.ascontiguousarray(grad_out[:, 1:, :])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[0], input_shape[1] + 1, *input_shape[2:])
