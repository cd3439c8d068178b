"""Gradient clipping by global norm, and the global gradient norm itself."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .. import accel, backend
from ..constraints import check
from ..parameter import Parameter


def grad_norm(params: Iterable[Parameter]) -> float:
    r"""Global L2 norm of all gradients together, ``sqrt(sum_p ||grad_p||^2)``.

    One pass over each gradient (a dot product, no temporaries); when the
    parameters are exactly those of flat buffers (:mod:`deltanet.accel.flat`,
    built by a fused optimizer), one dot product per buffer.
    """
    params = list(params)
    grads = accel.flat_grads(params)
    if grads is None:
        grads = [p.grad for p in params]
    return math.sqrt(sum(backend.sum_of_squares(g) for g in grads))


def clip_grad_norm(params: Iterable[Parameter], max_norm: float, *, norm: float | None = None) -> float:
    r"""Clip gradients by their global norm, in place; return the norm before clipping.

    $$
    \lVert \nabla L \rVert > \tau \;\Rightarrow\; \nabla L \leftarrow \frac{\tau}{\lVert \nabla L \rVert}\, \nabla L,
    \qquad \lVert \nabla L \rVert = \Bigl(\sum_p \lVert g_p \rVert_F^2\Bigr)^{1/2}
    $$

    Parameters
    ----------
    params : iterable of Parameter
        Usually ``model.parameters()``; all gradients are treated as one vector.
    max_norm : float
        The threshold tau (> 0).
    norm : float, optional
        The global norm of these gradients when the caller has already
        computed it (the trainer records it every batch): saves one pass.

    Returns
    -------
    float
        ``||g||``, the global L2 norm of all gradients before clipping.

    Notes
    -----
    The reference's rule, over the concatenation g of ALL parameters' gradients::

        if ||g|| > tau:   g <- (tau / ||g||) g

    so the direction is kept and the clipped global norm is exactly tau;
    gradients with ``||g|| <= tau`` are left untouched. A non-finite norm
    (NaN or inf gradients) is returned as is and the gradients are left
    unchanged, so the caller can detect the divergence.

    References
    ----------
    Pascanu, Mikolov & Bengio (2013), "On the difficulty of training recurrent neural networks", ICML.
    """
    tau = check("clip_norm", max_norm, "max_norm")
    params = list(params)
    if norm is None:
        norm = grad_norm(params)
    if norm > tau and math.isfinite(norm):
        scale = tau / norm
        grads = accel.flat_grads(params)          # one pass per flat buffer, when the parameters are flat
        for g in grads if grads is not None else [p.grad for p in params]:
            g *= scale      # in place; not `p.grad *= scale`, which would copy back through the setter
    return norm
