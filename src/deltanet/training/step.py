r"""One update of the mini-batch loop: the course's steps 1 to 4 for one batch.

$$\text{out} = f(X_B;\theta), \quad
L_B = \ell(\text{out}, y_B; w_B) + \tfrac{\lambda}{2}\sum_l \lVert W^{(l)} \rVert_F^2, \quad
g = \nabla_\theta L_B, \quad g \leftarrow g \min\bigl(1, c / \lVert g \rVert\bigr), \quad
\theta \leftarrow \text{rule}(\theta, g)$$

In code, for the trainer ``t`` of the batch::

    out = t.model.forward(X_B, training=True)            # 1. forward
    loss = t.loss.forward(out, y_B, w_B) + L2 term       # 2. loss (no L2 term when the decay is decoupled)
    t.model.zero_grad(); t.model.backward(t.loss.backward())   # 3. backward: every p.grad = dL_B/dp
                                                         #    (data-parallel overlap: buckets sent meanwhile)
    all-reduce; gradient_hook; on_after_backward         #    the gradient is complete: hooks may change it
    norm = grad_norm(t.params)                           #    non-finite: divergence
    clip_grad_norm(t.params, t.clip_norm, norm=norm)     #    (optional)
    t.optimizer.step(); t.schedule.step_batch()          # 4. update

The fit's fast path (``t.fast_path``, a :class:`deltanet.accel.plan.FastPath`)
may take two shortcuts where nothing reads what they skip: the norm measured by
the optimizer inside its step (``norm_in_step``), and the gradients folded
straight into the optimizer's state (``fold``: then no ``p.grad`` is formed
and the step returns no norm).

A step that cannot go on returns what went non-finite as a string; the trainer
then stops the run (:func:`deltanet.training.safety.diverged`).

**Host reads** on a GPU namespace, each a device-to-host copy and a
synchronisation: per batch the loss, the gradient norm, the batch's sum of
sample weights when weighted and, with ``record_layers``, one squared norm per
parameter; per epoch the correct-prediction count. The modules' forward and
backward and the optimizer's step read nothing back
(``tests/test_guard_backend.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import backend
from ..errors import NonFiniteError
from ..optim import clip_grad_norm
from ..optim.clipping import grad_norm

if TYPE_CHECKING:
    from .callbacks import CallbackList
    from .trainer import Trainer


class StepResult(NamedTuple):
    """What one update reports to the epoch's statistics."""

    loss: float
    output: Any
    #: The gradient's norm, or None where the fast path folded the gradients (not formed).
    grad_norm: float | None
    #: Per-parameter squared gradient norms (``record_layers``), else None.
    layer_sq: list[float] | None


def train_step(t: Trainer, xb: Any, yb: Any, wb: Any, callbacks: CallbackList) -> StepResult | str:
    """One update of ``t``'s model on the batch ``(xb, yb, wb)``; its :class:`StepResult`, or what went non-finite."""
    try:
        out = t.model.forward(xb, training=True)
        loss = t.loss.forward(out, yb, wb)
    except NonFiniteError as exc:
        return _abandon(t, f"a NaN or infinite value in the forward pass ({exc})")
    lam = t.l2_in_loss
    if lam:
        loss += 0.5 * lam * sum(backend.sum_of_squares(p.value) for p in t.params if p.decay)
    if not math.isfinite(loss):
        return _abandon(t, f"the loss is {loss}")
    plan = t.fast_path
    plan.zero_grad()
    folded = plan.fold(t.batch, t.n_batches)
    if t.distributed is not None:           # under overlap: the gradient's buckets are sent as backward fills them
        t.distributed.begin_backward(t.model, t.params)
    t.model.backward(t.loss.backward())
    if folded:                  # the gradients went straight into the optimizer's state; nothing reads them
        t.optimizer.step()
        norm = sq = None
    else:
        update = _update(t, callbacks)
        if isinstance(update, str):
            return update
        norm, sq = update
    if t.schedule is not None:
        t.schedule.step_batch()
    return StepResult(loss, out, norm, sq)


def _update(t: Trainer, callbacks: CallbackList) -> tuple[float, list[float] | None] | str:
    """The update from complete gradients: all-reduce, hook, callbacks, norm, clipping, step; returns (gradient
    norm, per-parameter squared norms or None) or what went non-finite."""
    if t.distributed is not None:           # the global batch's gradient on every rank
        t.distributed.allreduce_gradients(t.params)
    if t.gradient_hook is not None:
        t.gradient_hook(t.params)
    callbacks.on_after_backward(t)
    sq = None
    if t.fast_path.norm_in_step:
        # the optimizer measures the norm while it updates; a non-finite one is caught just after the update,
        # whose weights and state the divergence handling then replaces by the last good ones
        norm = t.optimizer.step(measure_grad_norm=True)
        norm = None if norm is None else float(norm)     # a device scalar on a GPU: read here, with the loss
    elif t.record_layers:
        sq = [backend.sum_of_squares(p.grad) for p in t.params]
        norm = math.sqrt(sum(sq))
    else:
        norm = grad_norm(t.params)
    if norm is None or not math.isfinite(norm):
        return f"the gradient norm is {norm}"
    if not t.fast_path.norm_in_step:
        if t.clip_norm is not None:
            clip_grad_norm(t.params, t.clip_norm, norm=norm)
        t.optimizer.step()
    return norm, sq


def _abandon(t: Trainer, what: str) -> str:
    """A step that cannot go on; under data parallelism the other ranks learn it in their all-reduce."""
    if t.distributed is not None:
        t.distributed.abandon_step(t.params)
    return what


__all__ = ["StepResult", "train_step"]
