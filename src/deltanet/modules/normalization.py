"""Batch normalization."""

from __future__ import annotations

from typing import Any

from .. import accel, backend
from ..parameter import Parameter
from .base import Module


class BatchNorm(Module):
    r"""Batch normalization over the last axis (features); every other axis is batch.

    $$
    \mu_B = \frac{1}{n}\sum_i x_i, \quad \sigma_B^2 = \frac{1}{n}\sum_i (x_i - \mu_B)^2,
    \quad \hat{x}_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}}, \quad y_i = \gamma \hat{x}_i + \beta
    $$

    Parameters
    ----------
    num_features : int
        Size F of the last axis.
    eps : float
        Added to the variance before the square root.
    momentum : float
        Weight of the current batch in the running statistics.
    dtype : float32 (default) or float64.

    Attributes
    ----------
    gamma, beta : Parameter, shape ``(F,)`` -- scale (starts at 1) and shift
        (starts at 0); neither is weight-decayed.
    running_mean, running_var : arrays, shape ``(F,)`` -- buffers used in eval mode.

    Notes
    -----
    Training mode, over the n = prod(batch axes) rows of ``x`` (the reference):

        mu_B      = 1/n sum_i x_i
        sigma_B^2 = 1/n sum_i (x_i - mu_B)^2                (biased)
        x_hat_i   = (x_i - mu_B) / sqrt(sigma_B^2 + eps)
        y_i       = gamma x_hat_i + beta

    and the running statistics move towards the batch's:
    ``running_mean <- (1 - momentum) running_mean + momentum mu_B``,
    ``running_var <- (1 - momentum) running_var + momentum sigma_B^2 n / (n - 1)``
    (the unbiased variance, as PyTorch does).

    Backward in training mode goes through mu_B and sigma_B^2 (every x_i moves
    both), with g = dL/dy and s = 1 / sqrt(sigma_B^2 + eps):

        dL/dgamma = sum_i g_i x_hat_i,   dL/dbeta = sum_i g_i
        dL/dx_i   = gamma s / n * (n g_i - sum_j g_j - x_hat_i sum_j g_j x_hat_j)

    Eval mode uses the running statistics, a fixed affine map:
    y = gamma (x - running_mean) / sqrt(running_var + eps) + beta, and
    dL/dx = g gamma / sqrt(running_var + eps).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype: Any = None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"BatchNorm: num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum}")
        xp = backend.xp
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.dtype = backend.resolve_dtype(dtype)
        self.gamma = self.add_parameter("gamma", Parameter(xp.ones(num_features, dtype=self.dtype), decay=False))
        self.beta = self.add_parameter("beta", Parameter(xp.zeros(num_features, dtype=self.dtype), decay=False))
        self.add_buffer("running_mean", xp.zeros(num_features, dtype=self.dtype))
        self.add_buffer("running_var", xp.ones(num_features, dtype=self.dtype))
        self._cache: tuple[Any, Any, bool] | None = None

    @property
    def running_mean(self) -> Any:
        return self._buffers["running_mean"]

    @property
    def running_var(self) -> Any:
        return self._buffers["running_var"]

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum, "dtype": self.dtype.name}

    def forward(self, x: Any, training: bool = False) -> Any:
        x = self._as_input(x, self.num_features, dtype=self.dtype)
        xp = backend.xp
        x2 = x.reshape(-1, self.num_features)
        if training:
            n = x2.shape[0]
            if n < 2:
                raise ValueError(f"{self._label()}: training mode needs at least 2 rows per batch to estimate a variance, got {n}")
            kernel = accel.kernel("batch_norm_forward", x2)
            if kernel is not None:                  # the same statistics and outputs in one compiled pass
                y, mu, inv_std, var = kernel(x2, self.gamma.value, self.beta.value, self.eps)
                self._update_running(mu, var, n)
                self._cache = (None, inv_std, training, x2, mu)
                return y.reshape(x.shape)
            mu = x2.mean(axis=0)
            xc = x2 - mu
            var = (xc * xc).mean(axis=0)
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            self._update_running(mu, var, n)
            x_hat = xc
            x_hat *= inv_std
        else:
            inv_std = 1.0 / xp.sqrt(self.running_var + self.eps)
            x_hat = (x2 - self.running_mean) * inv_std
        inv_std = inv_std.astype(self.dtype, copy=False)
        self._cache = (x_hat, inv_std, training, None, None)
        y = x_hat * self.gamma.value
        y += self.beta.value
        return y.reshape(x.shape)

    def _update_running(self, mu: Any, var: Any, n: int) -> None:
        m = self.momentum
        self.running_mean[...] = (1 - m) * self.running_mean + m * mu
        self.running_var[...] = (1 - m) * self.running_var + m * var * (n / (n - 1))

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise self._missing_forward()
        x_hat, inv_std, training, x2, mu = self._cache
        size = x2.size if x_hat is None else x_hat.size
        if grad_out.shape[-1] != self.num_features or grad_out.size != size:
            shape = x2.shape if x_hat is None else x_hat.shape
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {shape} (batch axes flattened)")
        g = grad_out.reshape(-1, self.num_features)
        if x_hat is None:                           # the kernel's forward: x_hat is recomputed from x and mu
            kernel = accel.kernel("batch_norm_backward", g, x2)
            if kernel is not None:
                dx, sum_g, sum_g_xhat = kernel(g, x2, self.gamma.value, mu, inv_std)
                self.gamma.accumulate(sum_g_xhat)
                self.beta.accumulate(sum_g)
                return dx.reshape(grad_out.shape)
            x_hat = (x2 - mu) * inv_std
        sum_g = g.sum(axis=0)
        sum_g_xhat = (g * x_hat).sum(axis=0)
        self.gamma.accumulate(sum_g_xhat)                 # dgamma = sum g x_hat
        self.beta.accumulate(sum_g)                       # dbeta  = sum g
        scale = self.gamma.value * inv_std
        if not training:
            return (g * scale).reshape(grad_out.shape)
        n = g.shape[0]
        # dx = gamma s / n (n g - sum g - x_hat sum(g x_hat))
        dx = g * n
        dx -= sum_g
        dx -= x_hat * sum_g_xhat
        dx *= scale / n
        return dx.reshape(grad_out.shape)
