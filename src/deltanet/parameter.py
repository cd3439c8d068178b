"""A trainable array and its gradient."""

from __future__ import annotations

from typing import Any

from . import backend, blas


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

    **Folded gradients.** An optimizer whose state is a running sum of the
    gradients (SGD's momentum buffer ``b <- mu b + g``) can have the next
    backward pass add the gradient there instead, with :meth:`fold_gradient`:
    a weight's gradient product then goes straight into ``b`` (one matrix
    product that also scales ``b``, see :func:`deltanet.blas.gemm`), and
    ``grad`` is not formed at all for that step (reading it raises).
    :meth:`unfold` ends it; :meth:`deltanet.optim.Optimizer.fold_gradients`
    arms it for every parameter and ``step()`` unfolds.
    """

    __slots__ = ("value", "_grad", "_grad_is_zero", "name", "decay", "_fold", "_fold_beta")

    def __init__(self, value: Any, name: str = "", decay: bool = True) -> None:
        self.value = value
        self._grad = backend.xp.zeros_like(value)
        self._grad_is_zero = False
        self.name = name
        self.decay = bool(decay)
        self._fold: Any = None          # the array the next gradient is added to (None: grad as usual)
        self._fold_beta: float | None = None   # what scales it before the first addition (None once one came)

    # -- gradient --------------------------------------------------------
    @property
    def grad(self) -> Any:
        """dL/d(value), same shape and dtype as ``value``."""
        if self._fold is not None:
            raise RuntimeError(f"Parameter {self.name!r}: this step's gradient goes straight into the optimizer's "
                               "state (fold_gradient) and is never formed; read grad in a step without folding")
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

    def zero_grad(self) -> None:
        """Set the gradient to zero (lazily: no pass over memory until it is used); ends any folding."""
        self._grad_is_zero = True
        self._fold = self._fold_beta = None

    # -- folding the gradient into an optimizer's state -----------------------
    def fold_gradient(self, target: Any, beta: float) -> None:
        """Until :meth:`unfold`, add gradients to ``target`` instead of ``grad``: ``target <- beta target + g``.

        ``target`` (shaped like the value) is scaled by ``beta`` once, with the
        first gradient that arrives; every gradient adds to it (a parameter used
        twice adds both). ``grad`` is unavailable meanwhile.
        """
        if target.shape != self.value.shape:
            raise ValueError(f"Parameter {self.name!r}: fold target shape {target.shape} != value shape {self.value.shape}")
        self._fold, self._fold_beta = target, float(beta)

    def unfold(self) -> bool:
        """End :meth:`fold_gradient`; return whether any gradient arrived (if not, the target was never scaled).

        The gradient is zero afterwards (lazily), as after :meth:`zero_grad`.
        """
        arrived = self._fold is not None and self._fold_beta is None
        self._fold = self._fold_beta = None
        self._grad_is_zero = True
        return arrived

    def _take_beta(self) -> float:
        """The factor for the fold target with this gradient: ``beta`` for the first to arrive, then 1."""
        beta, self._fold_beta = self._fold_beta, None
        return 1.0 if beta is None else beta

    def _fold_target(self) -> Any:
        """The fold target, scaled by ``beta`` if this is the first gradient to arrive."""
        beta = self._take_beta()
        if beta != 1.0:
            self._fold *= beta
        return self._fold

    # -- accumulation --------------------------------------------------------
    def accumulate(self, g: Any, rows: slice | None = None) -> None:
        """``grad += g`` (a copy when the gradient is zero); with ``rows``, ``grad[rows] += g``."""
        if self._fold is not None:
            target = self._fold_target()
            target[rows if rows is not None else ...] += g
        elif rows is not None:
            self.grad[rows] += g
        elif self._grad_is_zero:
            backend.xp.copyto(self._grad, g)
            self._grad_is_zero = False
        else:
            self._grad += g

    def accumulate_matmul(self, a: Any, b: Any) -> None:
        """``grad += a @ b``, computed straight into ``grad`` when the gradient is zero.

        When folded, one BLAS product does it all: ``target <- a @ b + beta target``.
        """
        if self._fold is not None:
            if a.ndim == 1:                # a vector (a bias): NumPy's matrix-vector product beats a one-row gemm
                self.accumulate(a @ b)
                return
            blas.gemm(1.0, a, b, self._take_beta(), self._fold)
            return
        if self._grad_is_zero:
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
        elif self._grad_is_zero and self._fold is None:
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

    def __setstate__(self, state: Any) -> None:
        # pickle's state for __slots__ is (None, {slot: value}); a parameter pickled before folding existed
        # lacks the fold slots: it starts unfolded
        slots = state[1] if isinstance(state, tuple) else state
        self._fold = self._fold_beta = None
        for key, value in (slots or {}).items():
            setattr(self, key, value)

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
