"""Adam (L2 penalty in the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from .. import backend, blas
from ..parameter import Parameter
from .base import Optimizer, check_positive, check_unit_interval


def check_betas(betas: Any) -> tuple[float, float]:
    """Validate Adam's ``betas``: a pair of numbers in [0, 1)."""
    try:
        b1, b2 = betas
    except (TypeError, ValueError) as exc:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from exc
    return check_unit_interval("betas[0]", b1), check_unit_interval("betas[1]", b2)


class Adam(Optimizer):
    r"""Adam: per-coordinate steps from bias-corrected moment estimates.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Step size alpha (> 0).
    betas : (float, float)
        Decay rates (beta1, beta2) in [0, 1) of the first and second moment estimates.
    eps : float
        epsilon (>= 0), added to sqrt(v_hat) for numerical stability.
    weight_decay : float
        L2 penalty lambda (>= 0) added to the gradient of parameters marked for
        decay, *before* the moment estimates (so the penalty is rescaled by the
        adaptive denominator; see :class:`AdamW` for the decoupled form).
    fused : bool
        Update all parameters of a dtype at once over flat buffers (default; see
        :class:`~deltanet.optim.Optimizer`). Same results as ``fused=False``.

    Notes
    -----
    Update rule at step t = 1, 2, ... (Kingma & Ba, Algorithm 1, as
    ``torch.optim.Adam`` implements it with amsgrad off)::

        g     <- grad + lambda * W          (parameters with decay=True only)
        m     <- beta1 * m + (1 - beta1) * g        m_0 = 0
        v     <- beta2 * v + (1 - beta2) * g^2      v_0 = 0
        m_hat  = m / (1 - beta1^t)
        v_hat  = v / (1 - beta2^t)
        W     <- W - alpha * m_hat / (sqrt(v_hat) + eps)

    computed with the bias corrections folded into two scalars (one pass less over memory)::

        W <- W - [alpha sqrt(1 - beta2^t) / (1 - beta1^t)] * m / (sqrt(v) + eps sqrt(1 - beta2^t))

    State: ``exp_avg`` (m) and ``exp_avg_sq`` (v); t is ``step_count``.

    References
    ----------
    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", ICLR. https://arxiv.org/abs/1412.6980
    """

    #: Decoupled weight decay (AdamW) instead of an L2 term in the gradient.
    decoupled = False
    #: Fused updates run over chunks of 512 KiB per array: with the BLAS doing three of the passes, fewer and
    #: longer calls win (0.5M float32 parameters: 1.06 ms a step, 1.32 ms with 128 KiB chunks; NumPy alone:
    #: 1.25 / 1.36 ms).
    chunk_bytes = 1 << 19

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, fused: bool = True) -> None:
        super().__init__(params, lr, fused=fused)
        self.betas = check_betas(betas)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def state_keys(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _rule(self, w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], decay: bool) -> None:
        # passes over memory: 7 (12 for small models), +2 for L2 (Adam) or +1 for decoupled decay (AdamW): the
        # moving averages and the update are BLAS axpby / axpy calls, one pass each (deltanet.blas)
        xp = backend.xp
        beta1, beta2 = self.betas
        t = self.step_count
        l2, tmp = work
        if self.decoupled:
            g = grad
            if decay and self.weight_decay:
                w *= 1.0 - self.lr * self.weight_decay            # W = W - alpha lambda W
        else:
            g = self._l2_gradient(w, grad, decay, out=l2)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        large = self._n_elements >= self.blas_min_size          # BLAS calls pay off (see Optimizer.blas_min_size)
        if large:
            blas.axpby(1.0 - beta1, g, beta1, m)                  # m = beta1 m + (1 - beta1) g
            xp.multiply(g, g, out=tmp)
            blas.axpby(1.0 - beta2, tmp, beta2, v)                # v = beta2 v + (1 - beta2) g^2
        else:
            m *= beta1                                            # m = beta1 m + (1 - beta1) g
            xp.multiply(g, 1.0 - beta1, out=tmp)
            m += tmp
            v *= beta2                                            # v = beta2 v + (1 - beta2) g^2
            xp.multiply(g, g, out=tmp)
            tmp *= 1.0 - beta2
            v += tmp
        root_bc2 = math.sqrt(1.0 - beta2**t)
        xp.sqrt(v, out=tmp)                                       # (sqrt(v_hat) + eps) * sqrt(1 - beta2^t)
        tmp += self.eps * root_bc2
        xp.divide(m, tmp, out=tmp)                                # W = W - alpha m_hat / (sqrt(v_hat) + eps)
        step = self.lr * root_bc2 / (1.0 - beta1**t)
        if large:
            blas.axpy(-step, tmp, w)
        else:
            tmp *= step
            w -= tmp


class AdamW(Adam):
    r"""Adam with decoupled weight decay.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Step size alpha (> 0).
    betas : (float, float)
        (beta1, beta2) in [0, 1).
    eps : float
        epsilon (>= 0).
    weight_decay : float
        Decoupled decay rate lambda (>= 0): each step shrinks the parameters
        marked for decay by the factor ``1 - alpha * lambda`` directly, outside
        the adaptive moment estimates.
    fused : bool
        Update all parameters of a dtype at once over flat buffers (default; see
        :class:`~deltanet.optim.Optimizer`). Same results as ``fused=False``.

    Notes
    -----
    Update rule at step t (Loshchilov & Hutter, Algorithm 2, with the decay
    scaled by the learning rate as ``torch.optim.AdamW`` does)::

        W     <- W - alpha * lambda * W      (parameters with decay=True only)
        m     <- beta1 * m + (1 - beta1) * grad
        v     <- beta2 * v + (1 - beta2) * grad^2
        m_hat  = m / (1 - beta1^t),   v_hat = v / (1 - beta2^t)
        W     <- W - alpha * m_hat / (sqrt(v_hat) + eps)

    State: ``exp_avg`` (m) and ``exp_avg_sq`` (v).

    References
    ----------
    Loshchilov & Hutter (2019), "Decoupled Weight Decay Regularization", ICLR. https://arxiv.org/abs/1711.05101
    """

    decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, *, fused: bool = True) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)
