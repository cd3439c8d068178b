"""Optimizers, learning-rate schedules and gradient clipping.

- Optimizers (:class:`Optimizer` subclasses): :class:`SGD`, :class:`Adam`, :class:`AdamW`,
  :class:`RMSprop`; :func:`get_optimizer` builds one by name. They step once per mini-batch.
- :class:`LBFGS`: full-batch L-BFGS (SciPy's L-BFGS-B over the flat parameter vector), with
  :meth:`LBFGS.minimize` (model, loss, X, y); ``Trainer(optimizer="lbfgs")`` calls it.
- Schedules (:mod:`deltanet.optim.schedules`): :class:`ConstantLR`, :class:`StepLR`,
  :class:`ExponentialLR`, :class:`CosineAnnealingLR`, :class:`ReduceLROnPlateau`,
  :class:`LinearWarmup` around any of them; :func:`get_schedule` builds one by name.
- :func:`clip_grad_norm` (global-norm clipping) and :func:`grad_norm`.
- :class:`FlatBuffer` and :func:`flatten` (re-exported from the fast path, :mod:`deltanet.accel.flat`): all parameters of a dtype in
  one contiguous value buffer and one gradient buffer, which the fused optimizers (``fused=True``,
  the default) update with a few whole-array operations.
"""

from ..accel import FlatBuffer, flatten
from .adam import Adam, AdamW
from .base import Optimizer
from .clipping import clip_grad_norm, grad_norm
from .lbfgs import LBFGS
from .registry import OPTIMIZERS, get_optimizer
from .rmsprop import RMSprop
from .schedules import (
    SCHEDULES,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    get_schedule,
)
from .sgd import SGD

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "SGD", "Adam", "AdamW", "ConstantLR", "CosineAnnealingLR", "ExponentialLR",
    "FlatBuffer", "LBFGS", "LinearWarmup", "Optimizer", "RMSprop", "ReduceLROnPlateau", "Schedule", "StepLR", "clip_grad_norm",
    "flatten", "get_optimizer", "get_schedule", "grad_norm",
]
