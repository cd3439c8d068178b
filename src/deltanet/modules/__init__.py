"""Layers, activations, normalization, dropout and containers."""

from .activations import ACTIVATIONS, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, log_softmax, softmax
from .base import Module, build, check_finite, registered_types
from .containers import Residual, Sequential
from .dropout import Dropout
from .linear import Linear
from .normalization import BatchNorm

__all__ = [
    "ACTIVATIONS", "Activation", "BatchNorm", "Dropout", "Identity", "LeakyReLU", "Linear", "Module", "ReLU",
    "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "build", "check_finite", "log_softmax",
    "registered_types", "softmax",
]
