"""Exceptions of deltanet that callers may want to catch by type."""

from __future__ import annotations


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or infinity.

    Raised for NaN/inf in a module's input; the trainer treats it as divergence
    when it happens mid-training (the data itself is checked once up front).
    """


class GradcheckError(AssertionError):
    """A gradient check found an analytical gradient that disagrees with finite differences."""


class ExportError(ValueError):
    """A model, or a part of it, cannot be written in another format (ONNX): the message names the module."""
