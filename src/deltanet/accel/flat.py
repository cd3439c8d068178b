"""One contiguous buffer for the values, and one for the gradients, of many parameters.

Why: an optimizer step over a network's parameters one by one costs a few
NumPy calls per parameter and per state array; over one flat buffer per dtype
it is a few whole-array passes (or one compiled kernel), measured faster for
every network of the benchmarks (``benchmarks/results/measurements.md``).

A fused optimizer (the default, ``fused=True``) updates all parameters of one
dtype with a few whole-array operations on two flat buffers instead of a few
operations per parameter: :func:`flatten` moves the parameters there with
:meth:`Parameter.rebind`, after which each ``p.value`` and ``p.grad`` is a view
(shaped like the parameter) into the buffers ``FlatBuffer.value`` and
``FlatBuffer.grad``. Contents are unchanged; only the array objects are new, so
code that keeps a reference to an old ``p.value`` array from before the
optimizer was built sees that old array, not the trained weights. Everything
that goes through ``p.value`` / ``p.grad`` or copies into them in place
(``model.state_dict()``, ``model.load_state_dict()``, saving and loading a
model, the trainer's snapshots) works unchanged.

Parameters with ``decay=True`` come first, so that weight decay applies to one
slice, ``value[:n_decay]``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..parameter import Parameter

# id(buffer array) -> the FlatBuffer that owns it (value and grad arrays both), to find and reuse a layout
_OWNERS: weakref.WeakValueDictionary[int, FlatBuffer] = weakref.WeakValueDictionary()


class FlatBuffer:
    """All parameters of one dtype in one contiguous value buffer and one gradient buffer.

    Parameters
    ----------
    params : iterable of Parameter
        At least one parameter, all of the same dtype, each once. They are
        rebound (:meth:`Parameter.rebind`) to views into the new buffers,
        contents copied.

    Attributes
    ----------
    params : list of Parameter
        The parameters in buffer order: those with ``decay=True`` first, then
        the others, each part in the order given.
    value, grad : array of shape (size,)
        The buffers; ``p.value`` and ``p.grad`` are views into them.
    offsets : list of int
        Where each parameter of ``params`` starts in the buffers.
    n_decay : int
        Number of leading elements that belong to parameters with ``decay=True``.
    size : int
        Total number of elements.
    dtype : dtype
    """

    def __init__(self, params: Iterable[Parameter]) -> None:
        params = list(params)
        if not params:
            raise ValueError("FlatBuffer: got an empty parameter list")
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise ValueError(f"FlatBuffer: all parameters must have one dtype, got {sorted(str(d) for d in dtypes)}; "
                             "use flatten(params) for one buffer per dtype")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("FlatBuffer: a parameter appears more than once in the parameter list")
        self.params = decay_first(params)
        self.dtype = params[0].dtype
        self.offsets = []
        self.size = self.n_decay = 0
        for p in self.params:
            self.offsets.append(self.size)
            self.size += p.size
            self.n_decay += p.size if p.decay else 0
        xp = backend.xp
        self.value = xp.empty(self.size, dtype=self.dtype)
        self.grad = xp.empty(self.size, dtype=self.dtype)
        for i, p in enumerate(self.params):
            p.rebind(self.view(self.value, i), self.view(self.grad, i))
        # what sync() checks: each parameter still holds exactly these views and its decay flag
        self._bindings = [(p, p.value, p.grad_buffer, p.decay) for p in self.params]
        self._ids = {id(p) for p in self.params}
        _OWNERS[id(self.value)] = _OWNERS[id(self.grad)] = self

    def view(self, flat: Any, i: int) -> Any:
        """The part of ``flat`` (an array of shape ``(size,)``) that belongs to ``params[i]``, shaped like it
        and in its memory order (a column-major parameter gets a column-major view)."""
        p, start = self.params[i], self.offsets[i]
        return backend.view_like(flat[start:start + p.size], p.value)

    def is_bound(self) -> bool:
        """Whether every parameter still uses this buffer's views and has the decay flag it had here."""
        return all(p.value is v and p.grad_buffer is g and p.decay == d for p, v, g, d in self._bindings)

    def sync(self) -> bool:
        """Make ``grad`` hold every parameter's true gradient; return False if the layout is stale.

        A parameter whose gradient was zeroed lazily (``zero_grad()`` and no
        backward since) has stale numbers in its slice of ``grad``: they are
        set to 0 here (only for those parameters). Returns False, and the
        buffer must not be used, when a parameter no longer uses this
        buffer's views (it was rebound elsewhere, e.g. by another optimizer
        over an overlapping parameter list) or its ``decay`` flag changed.
        """
        for p, v, g, d in self._bindings:
            if p.value is not v or p.grad_buffer is not g or p.decay != d:
                return False
            if p.grad_is_zero or p.sink is not None:
                _ = p.grad                      # reading it fills the buffer (zeros, or what a sink received)
        return True

    def __repr__(self) -> str:
        return f"FlatBuffer(dtype={self.dtype}, parameters={len(self.params)}, size={self.size}, n_decay={self.n_decay})"


def decay_first(params: Iterable[Parameter]) -> list[Parameter]:
    """The parameters with ``decay=True`` first, then the others, each part in the given order."""
    params = list(params)
    return [p for p in params if p.decay] + [p for p in params if not p.decay]


def flatten(params: Iterable[Parameter]) -> list[FlatBuffer]:
    """One :class:`FlatBuffer` per dtype (in order of first appearance) holding ``params``.

    Parameters that already form exactly one existing, intact buffer (same
    parameters in the same order, e.g. flattened by another optimizer over the
    same model) keep it: nothing is copied and both users share it. Otherwise
    the parameters are rebound to a new buffer, which leaves any earlier buffer
    that held some of them stale (its users notice through
    :meth:`FlatBuffer.sync` and flatten again).
    """
    by_dtype: dict[Any, list[Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.dtype, []).append(p)
    return [_existing(group) or FlatBuffer(group) for group in by_dtype.values()]


def _existing(params: list[Parameter]) -> FlatBuffer | None:
    buf = _OWNERS.get(id(params[0].value.base))
    if buf is None or buf.value is not params[0].value.base or len(buf.params) != len(params):
        return None
    ordered = decay_first(params)
    if any(p is not q for p, q in zip(buf.params, ordered, strict=True)) or not buf.is_bound():
        return None
    return buf


def flat_buffers(params: Iterable[Parameter]) -> list[FlatBuffer] | None:
    """The intact flat buffers that hold exactly the gradients of ``params`` (each once), or None.

    As :func:`flat_grads`, but the gradients are not touched (lazily zeroed
    ones stay lazy): for a caller that only needs the layout, such as the
    data-parallel overlap's bucket plan before a backward pass.
    """
    count: dict[int, int] = {}
    found: list[FlatBuffer] = []
    seen: set[int] = set()
    for p in params:
        base = p.grad_buffer.base
        buf = _OWNERS.get(id(base))
        if buf is None or buf.grad is not base or id(p) not in buf._ids or id(p) in seen:
            return None
        seen.add(id(p))
        if id(buf) not in count:
            count[id(buf)] = 0
            found.append(buf)
        count[id(buf)] += 1
    for buf in found:
        if count[id(buf)] != len(buf.params) or not buf.is_bound():
            return None
    return found


def flat_grads(params: Iterable[Parameter]) -> list[Any] | None:
    """The flat gradient buffers that hold exactly the gradients of ``params``, or None.

    Returns a list of 1-D arrays (one per :class:`FlatBuffer`) whose
    concatenation is, up to order, the concatenation of all ``p.grad``, when
    ``params`` are exactly the parameters of some intact flat buffers (each
    once); lazily zeroed gradients are filled with 0 first. Returns None when
    they are not (plain per-parameter arrays, a subset of a buffer, or a
    parameter listed twice): the caller then works per parameter.
    """
    found = flat_buffers(params)
    if found is None:
        return None
    for buf in found:
        if not buf.sync():
            return None
    return [buf.grad for buf in found]
