"""Optimizers, learning-rate schedules and gradient clipping."""

from .base import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Optimizer"]
