"""Adam (L2 penalty in the gradient) and AdamW (decoupled weight decay)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..constraints import check
from ..parameter import Parameter
from . import rules
from .base import Optimizer


def check_betas(betas: Any) -> tuple[float, float]:
    """Validate Adam's ``betas``: a pair of numbers in [0, 1)."""
    try:
        b1, b2 = betas
    except (TypeError, ValueError) as exc:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from exc
    return check("beta1", b1, "betas[0]"), check("beta2", b2, "betas[1]")


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
        epsilon (> 0), added to sqrt(v_hat) for numerical stability.
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

    The rule is :func:`deltanet.optim.rules.adam`; the fused step runs its one-pass compiled kernel
    (:mod:`deltanet.accel.kernels.optim`) where it can. State: ``exp_avg`` (m) and ``exp_avg_sq`` (v); t is ``step_count``.

    References
    ----------
    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", ICLR. https://arxiv.org/abs/1412.6980
    """

    #: Decoupled weight decay (AdamW) instead of an L2 term in the gradient.
    decoupled = False
    rule = staticmethod(rules.adam)
    kernel = "adam"

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, fused: bool = True) -> None:
        super().__init__(params, lr, fused=fused)
        self.betas = check_betas(betas)
        self.eps = check("eps", eps)
        self.weight_decay = check("weight_decay", weight_decay)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}

    def rule_arguments(self) -> dict[str, Any]:
        beta1, beta2 = self.betas
        return {"lr": self.lr, "beta1": beta1, "beta2": beta2, "eps": self.eps, "weight_decay": self.weight_decay,
                "decoupled": self.decoupled, "t": self.step_count}

    def state_keys(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")


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
        epsilon (> 0).
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
