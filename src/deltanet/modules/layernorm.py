"""Layer normalization: normalize each position over its features."""

from __future__ import annotations

from typing import Any

from .. import backend
from ..parameter import Parameter
from .base import Module


class LayerNorm(Module):
    r"""Layer normalization over the last axis, separately for every row.

    Parameters
    ----------
    d : int
        Size of the last axis (``d_model`` in a Transformer).
    eps : float
        Added to the variance before the square root.
    dtype : float32 (default) or float64.

    Attributes
    ----------
    gamma, beta : Parameter, shape ``(d,)`` -- scale (starts at 1) and shift
        (starts at 0); neither is weight-decayed.

    Notes
    -----
    Shapes: ``x`` and ``y`` are ``(..., d)`` (for example ``(batch, T, d)``);
    every leading index is one row, normalized on its own, so unlike
    :class:`~deltanet.modules.normalization.BatchNorm` there are no batch
    statistics and training and evaluation compute the same thing
    (Ba, Kiros & Hinton 2016, https://arxiv.org/abs/1607.06450).

    Forward, per row x in R^d:

        mu      = 1/d sum_j x_j
        sigma^2 = 1/d sum_j (x_j - mu)^2                 (biased)
        x_hat_j = (x_j - mu) s,   s = 1 / sqrt(sigma^2 + eps)
        y_j     = gamma_j x_hat_j + beta_j

    Backward, with g = dL/dy and g'_j = g_j gamma_j (every x_j moves mu and
    sigma^2 of its own row only):

        dL/dgamma = sum_rows g * x_hat,   dL/dbeta = sum_rows g
        dL/dx_j   = s / d * (d g'_j - sum_k g'_k - x_hat_j sum_k g'_k x_hat_k)
    """

    def __init__(self, d: int, eps: float = 1e-5, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ValueError(f"LayerNorm: d must be a positive int, got {d!r}")
        if not float(eps) > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps}")
        xp = backend.xp
        self.d = d
        self.eps = float(eps)
        self.dtype = backend.resolve_dtype(dtype)
        self.gamma = self.add_parameter("gamma", Parameter(xp.ones(d, dtype=self.dtype), decay=False))
        self.beta = self.add_parameter("beta", Parameter(xp.zeros(d, dtype=self.dtype), decay=False))
        self._cache: tuple[Any, Any] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"d": self.d, "eps": self.eps, "dtype": self.dtype.name}

    def forward(self, x: Any, training: bool = False) -> Any:
        x = self._as_input(x, self.d, dtype=self.dtype)
        xp = backend.xp
        mu = x.mean(axis=-1, keepdims=True)
        x_hat = x - mu
        var = (x_hat * x_hat).mean(axis=-1, keepdims=True)
        inv_std = 1.0 / xp.sqrt(var + self.eps)          # s, shape (..., 1)
        x_hat *= inv_std
        self._cache = (x_hat, inv_std)
        y = x_hat * self.gamma.value
        y += self.beta.value
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise self._missing_forward()
        x_hat, inv_std = self._cache
        if grad_out.shape != x_hat.shape:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {tuple(x_hat.shape)}")
        gamma = self.gamma.value
        gx = grad_out * x_hat
        self.gamma.accumulate_sum(gx.reshape(-1, self.d))                     # dgamma = sum g x_hat
        self.beta.accumulate_sum(grad_out.reshape(-1, self.d))                # dbeta  = sum g
        # dx = s / d (d g' - sum g' - x_hat sum(g' x_hat)), g' = g gamma; the two row sums as
        # matrix-vector products: sum_k g'_k = g . gamma, sum_k g'_k x_hat_k = (g x_hat) . gamma
        mean_gp = (grad_out @ gamma)[..., None] * (1.0 / self.d)
        mean_gpx = (gx @ gamma)[..., None] * (1.0 / self.d)
        dx = grad_out * gamma
        dx -= mean_gp
        gx = x_hat * mean_gpx
        dx -= gx
        dx *= inv_std
        return dx
