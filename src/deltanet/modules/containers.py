"""Containers: modules made of modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy

from .base import Module, build


class Sequential(Module):
    r"""Apply modules one after the other: h^(l) = f_l(h^(l-1)), h^(0) = x.

    Backward runs the chain rule in reverse order: each module turns
    dL/dh^(l) into dL/dh^(l-1), which is the reference's
    delta^(l) = (W^(l+1))^T delta^(l+1) * sigma'(z^(l)) split into its two
    factors (a ``Linear`` and an activation).

    Parameters are listed layer by layer and named ``"<index>.<name>"``
    (``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...).

    A module may appear more than once (shared weights, e.g.
    ``Sequential(lin, Tanh(), lin)``): its parameters are listed once and its
    gradients add up over its uses. Each module keeps only its last forward
    state, so for such a child the forward state of each use is saved (a
    shallow copy of references) and put back before that use's backward.

    Only the module that receives the container's input tests it for NaN and
    infinity; the modules at positions > 0 get the previous module's output and
    skip that test (see ``Module``, "Finite-input checks"). A module that also
    receives the input (``Sequential(lin, Tanh(), lin)``) keeps it.

    **Backward hook.** ``after_child_backward``, when set to a callable
    ``hook(i)``, is called after the backward of child ``i`` (forward index:
    called for ``i = n-1, ..., 0``, and for ``i`` also when that child returned
    no input gradient and the pass stops there). From then on no later part of
    this backward pass writes the gradients of the parameters that only
    children ``i``, ``i+1``, ... hold: a data-parallel trainer starts sending
    them (:mod:`deltanet.distributed.overlap`). None (the default, a class
    attribute) costs one attribute read per backward pass. The hook is not part
    of the model's configuration or state; the data-parallel trainer sets it
    on the instance for one backward pass and removes it after.
    """

    #: Called as ``hook(i)`` after child ``i``'s backward (see "Backward hook"); None: nothing is called.
    after_child_backward: Callable[[int], None] | None = None

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for i, m in enumerate(modules):
            self.add_child(str(i), m)
        for m in modules[1:]:
            m._set_internal_input(True)
        if modules:
            modules[0]._set_internal_input(False)    # last: a module used at position 0 and later keeps its check
        self._name_parameters()
        counts: dict[int, int] = {}
        for m in self.modules():
            counts[id(m)] = counts.get(id(m), 0) + 1
        self._keeps_state = [any(counts[id(s)] > 1 for s in m.modules()) for m in modules]
        self._has_shared = any(self._keeps_state)
        self._saved: list[Any] | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        extra = set(config) - {"layers"}
        if extra:
            raise ValueError(f"Sequential: unknown keys {sorted(extra)}; valid keys: ['layers']")
        return cls(*[build(c) for c in config.get("layers", [])])

    def get_config(self) -> dict[str, Any]:
        return {"layers": [m.config() for m in self.children()]}

    def __len__(self) -> int:
        return len(self._children)

    def _set_internal_input(self, internal: bool) -> None:
        super()._set_internal_input(internal)
        if self._children:
            self._children[0][1]._set_internal_input(internal)

    def __getitem__(self, i: int | slice) -> Module:
        if isinstance(i, slice):
            return Sequential(*[m for _, m in self._children[i]])
        return self._children[i][1]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.children())

    def forward(self, x: Any, training: bool = False) -> Any:
        if not self._has_shared:
            for _, m in self._children:
                x = m.forward(x, training=training)
            return x
        self._saved = []  # a new list per pass: an enclosing container's snapshot holds the old one
        for (_, m), keep in zip(self._children, self._keeps_state, strict=True):
            x = m.forward(x, training=training)
            self._saved.append([(s, dict(s.__dict__)) for s in m.modules()] if keep else None)
        return x

    def backward(self, grad_out: Any) -> Any:
        hook = self.after_child_backward
        if hook is None and not self._has_shared:      # the common case: the bare chain rule
            for _, m in reversed(self._children):
                grad_out = m.backward(grad_out)
                if grad_out is None:         # a layer that computes no input gradient: nothing below needs one
                    return None
            return grad_out
        if self._has_shared and self._saved is None:
            raise self._missing_forward()
        saved = self._saved if self._has_shared else [None] * len(self._children)
        for i in range(len(self._children) - 1, -1, -1):
            for s, state in saved[i] or ():
                s.__dict__.update(state)     # this use's forward state (shared module)
            grad_out = self._children[i][1].backward(grad_out)
            if hook is not None:
                hook(i)                      # child i's backward returned (see "Backward hook")
            if grad_out is None:
                return None
        return grad_out

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        for m in self.children():
            input_shape = m.output_shape(input_shape)
        return input_shape

    def _child_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[Module, tuple[int, ...]]]:
        out = []
        for m in self.children():
            out.append((m, input_shape))
            input_shape = m.output_shape(input_shape)
        return out

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {m!r}".replace("\n", "\n  ") for i, m in enumerate(self.children()))
        return f"Sequential(\n{inner}\n)"


class Residual(Module):
    r"""Skip connection: y = block(x) + x, or y = block(x) + projection(x).

    $$y = f(x) + x, \qquad \frac{\partial L}{\partial x} = f'(x)^\top g + g, \quad g = \frac{\partial L}{\partial y}$$

    The reference's h^(l) = sigma(W^(l) h^(l-1) + b^(l)) + h^(l-2) is
    ``Residual(Sequential(Linear(d, d), act))`` fed with h^(l-2) -- or, with the
    intermediate layer explicit, a ``Residual`` around two layers. When
    ``block`` changes the width, pass a ``projection`` (usually
    ``Linear(d_in, d_out, bias=False)``) to map x to the block's output width.

    Backward: the identity path passes the gradient unchanged, so
    dL/dx = block.backward(g) + g (or + projection.backward(g)): gradients reach
    early layers even when the block's own derivative vanishes.
    """

    def __init__(self, block: Module, projection: Module | None = None) -> None:
        super().__init__()
        self.block = self.add_child("block", block)
        self.projection = self.add_child("projection", projection) if projection is not None else None
        self._name_parameters()
        self._input_shape: tuple[int, ...] | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        extra = set(config) - {"block", "projection"}
        if extra or "block" not in config:
            raise ValueError(f"Residual: expected keys 'block' and optional 'projection', got {sorted(config)}")
        proj = config.get("projection")
        return cls(build(config["block"]), build(proj) if proj else None)

    def _set_internal_input(self, internal: bool) -> None:
        super()._set_internal_input(internal)
        for child in self.children():       # block and projection both receive this module's input
            child._set_internal_input(internal)

    def get_config(self) -> dict[str, Any]:
        return {"block": self.block.config(), "projection": self.projection.config() if self.projection else None}

    def forward(self, x: Any, training: bool = False) -> Any:
        if not hasattr(x, "dtype"):
            x = numpy.asarray(x)
        out = self.block.forward(x, training=training)
        skip = self.projection.forward(x, training=training) if self.projection is not None else x
        if skip.dtype != out.dtype:
            skip = skip.astype(out.dtype)    # mixed dtype: the skip follows the block (converted once)
        if out.shape != skip.shape:
            hint = "" if self.projection is not None else "; pass projection=Linear(d_in, d_out, bias=False) when the block changes the width"
            raise ValueError(f"Residual: block output shape {tuple(out.shape)} != skip shape {tuple(skip.shape)}{hint}")
        self._input_shape = tuple(x.shape)
        return out + skip

    def backward(self, grad_out: Any) -> Any:
        if self._input_shape is None:
            raise self._missing_forward()
        grad_in = self.block.backward(grad_out)
        if self.projection is not None:
            grad_in = grad_in + self.projection.backward(grad_out)
        else:
            grad_in = grad_in + grad_out
        return grad_in

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.block.output_shape(input_shape)

    def _child_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[Module, tuple[int, ...]]]:
        return [(m, input_shape) for m in self.children()]

    def __repr__(self) -> str:
        proj = f",\n  projection={self.projection!r}" if self.projection is not None else ""
        return f"Residual(\n  block={self.block!r}{proj}\n)".replace("\n", "\n")


def input_layer(model: Module) -> Module:
    """The module that receives the network's input: ``model`` itself, or the first child of each
    ``Sequential`` on the way down."""
    while isinstance(model, Sequential) and len(model):
        model = model[0]
    return model
