r"""The published update rules, each written once as a small function of arrays: the math path.

Every rule updates in place one parameter's value ``w`` and its state arrays
``state[key]`` from the gradient ``grad`` (never modified), for arrays of any
shape: one parameter, or one chunk of a flat buffer. ``work`` holds two scratch
arrays of the same shape (contents undefined); ``decay`` says whether the
weight decay applies to these elements. The scalars are the optimizer's
hyper-parameters and the step number ``t`` (1, 2, ...). A rule allocates
nothing.

These functions are the reference. The optimizers run them (unfused, or chunk
by chunk over the flat buffers); the compiled one-pass kernels of
:mod:`deltanet.accel.kernels.optim` compute the same numbers and are tested
equal to them.

Notation: ``g`` is the gradient of the loss, ``lambda`` the weight decay, ``alpha``
the learning rate. The L2 form adds ``lambda W`` to the gradient (the gradient
of ``L + lambda/2 ||W||^2``); AdamW's decoupled form shrinks ``W`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import backend


def l2_gradient(w: Any, grad: Any, weight_decay: float, decay: bool, out: Any) -> Any:
    r"""``grad + lambda W`` written into ``out`` where weight decay applies (2 passes), else ``grad`` itself.

    $$\frac{\partial}{\partial W}\Bigl(L + \frac{\lambda}{2} \lVert W \rVert_F^2\Bigr) = \frac{\partial L}{\partial W} + \lambda W$$
    """
    if not (decay and weight_decay):
        return grad
    backend.xp.multiply(w, weight_decay, out=out)                  # g = grad + lambda W
    out += grad
    return out


def sgd(w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], *, decay: bool, lr: float, momentum: float,
        nesterov: bool, weight_decay: float) -> None:
    r"""SGD with optional (Nesterov) momentum, dampening 0 (``torch.optim.SGD``)::

        g <- grad + lambda W                 (decay only)
        b <- mu b + g                        (mu > 0; b_0 = 0 so b_1 = g)
        g <- g + mu b  (Nesterov)  or  g <- b
        W <- W - alpha g

    $$b \leftarrow \mu b + g, \qquad W \leftarrow W - \alpha b \qquad (\text{no momentum: } W \leftarrow W - \alpha g)$$
    """
    xp = backend.xp
    tmp, step = work
    g = l2_gradient(w, grad, weight_decay, decay, out=tmp)
    if momentum:
        b = state["momentum_buffer"]
        b *= momentum                                             # b = mu b + g
        b += g
        if nesterov:
            xp.multiply(b, momentum, out=step)                    # g + mu b
            step += g
            g = step
        else:
            g = b
    xp.multiply(g, lr, out=step)                                  # W = W - alpha g
    w -= step


def adam(w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], *, decay: bool, lr: float, beta1: float,
         beta2: float, eps: float, weight_decay: float, decoupled: bool, t: int) -> None:
    r"""Adam (Kingma & Ba, Algorithm 1) or, with ``decoupled``, AdamW (Loshchilov & Hutter)::

        W <- W - alpha lambda W              (AdamW, decay only)
        g <- grad + lambda W                 (Adam, decay only)
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        W <- W - alpha m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)

    with the bias corrections folded into two scalars (one pass less)::

        W <- W - [alpha sqrt(1 - beta2^t) / (1 - beta1^t)] m / (sqrt(v) + eps sqrt(1 - beta2^t))
    """
    xp = backend.xp
    l2, tmp = work
    if decoupled:
        g = grad
        if decay and weight_decay:
            w *= 1.0 - lr * weight_decay                          # W = W - alpha lambda W
    else:
        g = l2_gradient(w, grad, weight_decay, decay, out=l2)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m *= beta1                                                    # m = beta1 m + (1 - beta1) g
    xp.multiply(g, 1.0 - beta1, out=tmp)
    m += tmp
    v *= beta2                                                    # v = beta2 v + (1 - beta2) g^2
    xp.multiply(g, g, out=tmp)
    tmp *= 1.0 - beta2
    v += tmp
    root_bc2 = math.sqrt(1.0 - beta2**t)
    xp.sqrt(v, out=tmp)                                           # (sqrt(v_hat) + eps) sqrt(1 - beta2^t)
    tmp += eps * root_bc2
    xp.divide(m, tmp, out=tmp)
    tmp *= lr * root_bc2 / (1.0 - beta1**t)                       # W = W - alpha m_hat / (sqrt(v_hat) + eps)
    w -= tmp


def rmsprop(w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], *, decay: bool, lr: float, alpha: float,
            eps: float, momentum: float, weight_decay: float, centered: bool) -> None:
    r"""RMSprop (Tieleman & Hinton; centered and momentum as Graves 2013, ``torch.optim.RMSprop``)::

        g <- grad + lambda W                 (decay only)
        v <- rho v + (1 - rho) g^2
        s  = v - a^2 with a <- rho a + (1 - rho) g   (centered)   or   s = v
        d  = g / (sqrt(s) + eps)
        b <- mu b + d,  W <- W - alpha b     (mu > 0)    or    W <- W - alpha d
    """
    xp = backend.xp
    rho = alpha
    l2, tmp = work
    g = l2_gradient(w, grad, weight_decay, decay, out=l2)
    v = state["square_avg"]
    v *= rho                                                      # v = rho v + (1 - rho) g^2
    xp.multiply(g, g, out=tmp)
    tmp *= 1.0 - rho
    v += tmp
    if centered:
        a = state["grad_avg"]
        a *= rho                                                  # a = rho a + (1 - rho) g
        xp.multiply(g, 1.0 - rho, out=tmp)
        a += tmp
        xp.multiply(a, a, out=tmp)                                # s = v - a^2
        xp.subtract(v, tmp, out=tmp)
        xp.sqrt(tmp, out=tmp)
    else:
        xp.sqrt(v, out=tmp)
    tmp += eps                                                    # sqrt(s) + eps
    xp.divide(g, tmp, out=tmp)                                    # d = g / (sqrt(s) + eps)
    if momentum:
        b = state["momentum_buffer"]
        b *= momentum                                             # b = mu b + d
        b += tmp
        xp.multiply(b, lr, out=tmp)                               # W = W - alpha b
    else:
        tmp *= lr                                                 # W = W - alpha d
    w -= tmp
