"""A trainable array and its gradient."""

from __future__ import annotations

from typing import Any, Protocol

from . import backend


class GradientSink(Protocol):
    """Where a parameter's gradients go instead of ``grad`` while the sink is attached (the fast path's hook).

    :mod:`deltanet.accel.folding` attaches one to have the backward pass add each
    gradient straight into an optimizer's state; nothing on the math path
    creates one.
    """

    def add(self, g: Any, rows: slice | None) -> None:
        """Receive ``g`` (``grad += g``, or ``grad[rows] += g``)."""

    def add_matmul(self, a: Any, b: Any) -> None:
        """Receive the product ``a @ b`` (``grad += a @ b``)."""

    def release(self, param: Parameter) -> None:
        """``param.grad`` is read: put what arrived into ``grad`` (:meth:`Parameter.accumulate`) and detach."""

    def zeroed(self) -> bool:
        """``zero_grad()`` was called: forget what arrived; whether to stay attached."""


class Parameter:
    """A trainable array ``value`` with its gradient ``grad`` of the same shape and dtype.

    Parameters
    ----------
    value : array
        The initial value; the parameter keeps this array (no copy).
    name : str
        A readable name. Containers give their children's parameters qualified
        names such as ``"0.weight"`` (layer 0 of a ``Sequential``).
    decay : bool
        Whether weight decay / L2 applies: True for weight matrices, False for
        biases and normalization scales/shifts (the reference's penalty is
        ``lambda/2 * sum_l ||W^(l)||_F^2`` over weights only).

    Notes
    -----
    Gradients *accumulate*: ``backward`` adds into ``grad`` so that a module
    used twice receives the sum of both contributions; call ``zero_grad()``
    before each backward pass. ``zero_grad`` is lazy: it marks the gradient as
    zero and the next accumulation writes into the buffer directly (for a
    weight, the matrix product writes its result in place with ``out=``)
    instead of adding to a buffer of zeros. Reading ``grad`` always shows the
    true value.

    **Gradient sink.** While :attr:`sink` is set (by the fast path, see
    :class:`GradientSink`), every accumulation goes to the sink instead and
    ``grad`` is not formed; reading ``grad`` has the sink give the gradient
    back first, and ``zero_grad()`` tells the sink (which may stay attached).
    """

    __slots__ = ("value", "_grad", "_grad_is_zero", "name", "decay", "sink")

    def __init__(self, value: Any, name: str = "", decay: bool = True) -> None:
        self.value = value
        self._grad = backend.xp.zeros_like(value)
        self._grad_is_zero = False
        self.name = name
        self.decay = bool(decay)
        self.sink: GradientSink | None = None

    # -- gradient --------------------------------------------------------
    @property
    def grad(self) -> Any:
        """dL/d(value), same shape and dtype as ``value``."""
        if self.sink is not None:
            self.sink.release(self)           # the sink puts what it received into grad and detaches
        if self._grad_is_zero:
            self._grad.fill(0)
            self._grad_is_zero = False
        return self._grad

    @grad.setter
    def grad(self, new: Any) -> None:
        if new.shape != self.value.shape:
            raise ValueError(f"Parameter {self.name!r}: gradient shape {new.shape} != value shape {self.value.shape}")
        self._grad[...] = new
        self._grad_is_zero = False

    @property
    def grad_buffer(self) -> Any:
        """The array ``grad`` lives in, as it is: stale numbers after a lazy ``zero_grad`` (see :meth:`zero_grad`)."""
        return self._grad

    @property
    def grad_is_zero(self) -> bool:
        """Whether the gradient is zero by a lazy ``zero_grad`` (``grad_buffer`` not yet filled)."""
        return self._grad_is_zero

    def zero_grad(self) -> None:
        """Set the gradient to zero (lazily: no pass over memory until it is used); a sink forgets what it
        received and is detached unless it asks to stay (:meth:`GradientSink.zeroed`)."""
        self._grad_is_zero = True
        if self.sink is not None and not self.sink.zeroed():
            self.sink = None

    # -- accumulation --------------------------------------------------------
    def accumulate(self, g: Any, rows: slice | None = None) -> None:
        """``grad += g`` (a copy when the gradient is zero); with ``rows``, ``grad[rows] += g``."""
        if self.sink is not None:
            self.sink.add(g, rows)
        elif rows is not None:
            self.grad[rows] += g
        elif self._grad_is_zero:
            backend.xp.copyto(self._grad, g)
            self._grad_is_zero = False
        else:
            self._grad += g

    def accumulate_matmul(self, a: Any, b: Any) -> None:
        """``grad += a @ b``, computed straight into ``grad`` when the gradient is zero."""
        if self.sink is not None:
            self.sink.add_matmul(a, b)
        elif self._grad_is_zero:
            backend.xp.matmul(a, b, out=self._grad)
            self._grad_is_zero = False
        else:
            self._grad += a @ b

    def accumulate_sum(self, g: Any) -> None:
        """``grad += g.sum(axis=0)`` for ``g`` of shape ``(n, *value.shape)``.

        For a vector parameter (a bias) the sum is the product ``1^T g`` (see :func:`backend.ones`).
        """
        if g.ndim == 2 and self.value.ndim == 1:
            self.accumulate_matmul(backend.ones(g.shape[0], g.dtype), g)
        elif self._grad_is_zero and self.sink is None:
            g.sum(axis=0, out=self._grad)
            self._grad_is_zero = False
        else:
            self.accumulate(g.sum(axis=0))

    def rebind(self, value: Any, grad: Any) -> None:
        """Point ``value`` and ``grad`` at new arrays (for example views into one
        flat buffer shared by all parameters), copying the current contents."""
        if value.shape != self.value.shape or grad.shape != self.value.shape:
            raise ValueError(f"Parameter {self.name!r}: rebind shapes {value.shape}, {grad.shape} != {self.value.shape}")
        value[...] = self.value
        grad[...] = self.grad
        self.value, self._grad = value, grad

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # a sink belongs to one step of one process: never pickled
        return None, {"value": self.value, "_grad": self._grad, "_grad_is_zero": self._grad_is_zero,
                      "name": self.name, "decay": self.decay}

    def __setstate__(self, state: Any) -> None:
        # pickle's state for __slots__ is (None, {slot: value}); slots of older versions (_fold, _fold_beta) are dropped
        slots = state[1] if isinstance(state, tuple) else state
        self.sink = None
        for key in ("value", "_grad", "_grad_is_zero", "name", "decay"):
            if key in (slots or {}):
                setattr(self, key, slots[key])

    # -- description -----------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def size(self) -> int:
        return int(self.value.size)

    @property
    def dtype(self) -> Any:
        return self.value.dtype

    def __repr__(self) -> str:
        return f"Parameter(name={self.name!r}, shape={self.shape}, dtype={self.dtype}, decay={self.decay})"
