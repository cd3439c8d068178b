"""Reshaping the features of each sample: flat vectors to sequences and back."""

from __future__ import annotations

from typing import Any

import numpy

from .base import Module


class Reshape(Module):
    r"""Give each sample a new shape: ``(batch, *in_shape) -> (batch, *shape)``.

    Lets a table of flat feature vectors feed sequence modules (an MNIST
    image of 784 pixels as 28 tokens of 28: ``Reshape([28, 28])``), and a
    sequence be flattened again (``Reshape([-1])``). One entry of ``shape``
    may be -1 (inferred). No data is copied for contiguous input.

    Forward:  y = x.reshape(batch, *shape)
    Backward: dL/dx = dL/dy.reshape(x.shape)
    """

    def __init__(self, shape: list[int] | tuple[int, ...]) -> None:
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if not shape or any(s == 0 or s < -1 for s in shape) or shape.count(-1) > 1:
            raise ValueError(f"Reshape: shape must be positive sizes with at most one -1, got {list(shape)}")
        self.shape = shape
        self._in_shape: tuple[int, ...] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}

    def forward(self, x: Any, training: bool = False) -> Any:
        if not hasattr(x, "shape"):
            x = numpy.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"{self._label()}: expected input of shape (batch, ...), got a scalar")
        try:
            y = x.reshape((x.shape[0], *self.shape))
        except ValueError:
            raise ValueError(f"{self._label()}: cannot reshape samples of shape {tuple(x.shape[1:])} "
                             f"({int(numpy.prod(x.shape[1:]))} values) to {self.shape}") from None
        self._in_shape = tuple(x.shape)
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._in_shape is None:
            raise self._missing_forward()
        if grad_out.size != int(numpy.prod(self._in_shape)):
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {self._in_shape[0]} samples of {self.shape}")
        return grad_out.reshape(self._in_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        n = int(numpy.prod(input_shape[1:]))
        known = int(numpy.prod([s for s in self.shape if s != -1]))
        return (input_shape[0], *(n // known if s == -1 else s for s in self.shape))
