"""Watching a model's own passes: what each module's forward returned and what its backward received and returned.

The modules already compute every number the backward view shows: a
``Linear``'s ``backward`` receives delta_l = dL/dz_l and returns
W_l^T delta_l (batch-first: delta_l W_l), an activation's ``backward`` turns
dL/dh_l into dL/dz_l = f'(z_l) * dL/dh_l. :class:`Probe` wraps the
``forward`` and ``backward`` of chosen module instances (an instance
attribute shadowing the class's method, removed by :meth:`Probe.remove`) to
keep references to those arrays; the model's own ``Sequential`` /
``Residual`` chaining runs unchanged, so the recorded deltas are the ones the
parameters' gradients were computed from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..modules.base import Module


class Probe:
    """Record the arrays passing through ``modules`` during forward and backward passes.

    ``outputs[id(m)]``: what ``m.forward`` returned last; ``grad_out[id(m)]``:
    what ``m.backward`` received last (dL/d output); ``grad_in[id(m)]``: what it
    returned (dL/d input). ``recording`` turns the bookkeeping off and on.
    """

    def __init__(self, modules: Iterable[Module]) -> None:
        self.modules: list[Module] = []
        self.outputs: dict[int, Any] = {}
        self.grad_out: dict[int, Any] = {}
        self.grad_in: dict[int, Any] = {}
        self.recording = True
        for m in modules:
            if any(m is seen for seen in self.modules):
                continue
            self.modules.append(m)
            self._wrap(m)

    def _wrap(self, m: Module) -> None:
        forward, backward = m.forward, m.backward      # the bound methods of the class
        key = id(m)

        def recorded_forward(x: Any, training: bool = False) -> Any:
            out = forward(x, training=training)
            if self.recording:
                self.outputs[key] = out
            return out

        def recorded_backward(grad_out: Any) -> Any:
            grad_in = backward(grad_out)
            if self.recording:
                self.grad_out[key] = grad_out
                self.grad_in[key] = grad_in
            return grad_in

        m.forward = recorded_forward            # type: ignore[method-assign]
        m.backward = recorded_backward          # type: ignore[method-assign]

    def clear(self) -> None:
        self.outputs.clear()
        self.grad_out.clear()
        self.grad_in.clear()

    def output(self, m: Module) -> Any:
        return self.outputs.get(id(m))

    def delta(self, m: Module) -> Any:
        """dL/d(output of ``m``) from the last backward pass (None before one)."""
        return self.grad_out.get(id(m))

    def input_grad(self, m: Module) -> Any:
        return self.grad_in.get(id(m))

    def remove(self) -> None:
        """Put the modules' own methods back."""
        for m in self.modules:
            m.__dict__.pop("forward", None)
            m.__dict__.pop("backward", None)
        self.modules.clear()
        self.clear()


__all__ = ["Probe"]
