"""The optimizer contract: parameters, learning rate, per-parameter state, the published rule applied to each."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy

from .. import accel, backend
from ..constraints import Integer, Real, check
from ..parameter import Parameter


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a finite hyper-parameter > 0 (or >= 0): ``lr must be > 0, got -0.1``
    (:class:`deltanet.constraints.Real`)."""
    return Real(0.0, closed="left" if allow_zero else "neither").check(name, value)


_CLOSED = {(False, False): "left", (True, False): "both", (False, True): "neither", (True, True): "right"}


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False, open_left: bool = False) -> float:
    """Validate a hyper-parameter in [0, 1) (or [0, 1], (0, 1), (0, 1]):
    ``momentum must be in [0, 1), got 1.5`` (:class:`deltanet.constraints.Real`)."""
    return Real(0.0, 1.0, closed=_CLOSED[closed_right, open_left]).check(name, value)


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """Validate an integer hyper-parameter >= ``minimum``: ``patience must be an int >= 0, got -1``
    (:class:`deltanet.constraints.Integer`)."""
    return Integer(minimum).check(name, value)


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state, and applies the rule.

    Subclasses name their published update rule, :attr:`rule` (a function of
    :mod:`deltanet.optim.rules`: a few in-place array operations on a value,
    its gradient and its state arrays, for arrays of any shape) with
    :meth:`rule_arguments`, or override :meth:`_rule`; and implement
    :meth:`state_keys` and :meth:`hyperparameters`. The learning rate ``lr`` is
    a plain attribute that schedules set; ``step()`` applies one update to every
    parameter from its current ``grad`` (the gradient itself is never
    modified); ``state_dict()`` / ``load_state_dict()`` capture everything
    needed to resume exactly (hyper-parameters, step count and state arrays).

    Weight decay applies only to parameters with ``decay=True`` (weights, not
    biases or normalization parameters).

    Parameters
    ----------
    params : iterable of Parameter
        Usually ``model.parameters()``; each parameter at most once.
    lr : float
        Learning rate (> 0).
    fused : bool
        True (the default): the step runs on the fast path
        (:class:`deltanet.accel.fused.FusedStep`): all parameters of one dtype
        updated together over one flat value buffer and one flat gradient buffer,
        by the rule's compiled one-pass kernel (:attr:`kernel`) where it can.
        The parameters are moved there when the optimizer is built, with one
        visible effect: each ``p.value`` and ``p.grad`` array object is replaced
        by a view into the buffers, with identical contents (keep the
        Parameter, not an array taken from it before; a module reads
        ``self.weight.value`` at each call). False, or ``DELTANET_FAST=0``: one
        update per parameter on its own arrays, the reference. The two agree
        element by element (bit for bit where no kernel runs; the kernels to
        float rounding, see :mod:`deltanet.accel.kernels.optim`).

    Notes
    -----
    Per-parameter state lives in ``self.state[i]`` (a dict of arrays shaped
    like parameter ``i``), created on the first step; :meth:`state_dict` has
    the same layout either way, so a state saved by a fused optimizer loads
    into an unfused one and back. Temporaries go to preallocated scratch
    arrays, so a step allocates no arrays after the first one.

    If a parameter is later rebound elsewhere (another fused optimizer over an
    overlapping but different parameter list) or its ``decay`` flag changes,
    the next ``step()`` notices and flattens again (a copy; correct, only
    slower if two such optimizers alternate). A pickled or deep-copied
    optimizer flattens its copies of the parameters again when it is loaded.
    """

    #: Number of scratch arrays ``work`` that :meth:`_rule` receives.
    n_work = 2
    #: Every this many steps, flush subnormal numbers in the values and the state to 0 (see
    #: :meth:`_flush_subnormals`); None or 0 never does.
    flush_subnormals_every: int | None = 64
    #: The weight decay / L2 rate lambda (0: none). Rules apply it to the parameters with ``decay=True``.
    weight_decay: float = 0.0
    #: The published update rule, a function of :mod:`deltanet.optim.rules` (called with the keyword
    #: arguments of :meth:`rule_arguments`); None in a subclass that overrides :meth:`_rule` instead.
    rule: Any = None
    #: The name of the rule's compiled one-pass kernel in :mod:`deltanet.accel.kernels.optim` (None: none).
    kernel: str | None = None
    #: The gradient norm measured by the last :meth:`step` (None unless asked for, or after a folded step).
    last_grad_norm: float | None = None

    def __init__(self, params: Iterable[Parameter], lr: float, *, fused: bool = True) -> None:
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters (model.parameters()), got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the parameter list")
        self.lr = check("lr", lr)
        self.n_elements = sum(p.size for p in self.params)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._workspace: dict[tuple[str, int], Any] = {}
        self._fused = bool(fused)
        self._engine = accel.fused_step(self) if self._fused else None

    @property
    def fused(self) -> bool:
        """Whether the update runs over flat buffers (``fused=True`` and the fast path on; fixed at construction)."""
        return self._engine is not None

    @property
    def engine(self) -> Any:
        """The fast path's step engine (:class:`deltanet.accel.fused.FusedStep`), or None when not fused."""
        return self._engine

    @property
    def flat_buffers(self) -> list[Any]:
        """The flat buffers the fused update works on, one per dtype (empty when not fused)."""
        return [] if self._engine is None else self._engine.buffers

    @property
    def uses_rule(self) -> bool:
        """Whether the step is :attr:`rule` itself (``_rule`` not overridden): what the fast path may replace."""
        return self.rule is not None and type(self)._rule is Optimizer._rule

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyper-parameters (without ``params``); JSON-able values."""
        return {"lr": self.lr}

    def state_keys(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays the rule uses with the current hyper-parameters."""
        return ()

    def rule_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :attr:`rule` (and of its kernel) for this step: hyper-parameters and ``t``."""
        return {"lr": self.lr}

    def zero_grad(self) -> None:
        """Zero every parameter's gradient (lazily); folded gradients of a backward pass no step used are taken
        back out of the state."""
        for p in self.params:
            p.zero_grad()

    def fold_gradients(self) -> bool:
        """Have the next backward pass add the gradients straight into this optimizer's state; True if it will.

        Call it after :meth:`zero_grad` and before ``backward``; the next
        :meth:`step` applies the update and ends the folding. Only for a rule
        whose state is a running sum of the gradients (SGD's momentum buffer,
        ``b <- mu b + g``) on the fast path (:mod:`deltanet.accel.folding`):
        the gradients are then never formed, so ``p.grad`` cannot be read
        between ``backward`` and ``step`` (no clipping, gradient hook or
        statistics), and the step's gradient norm is None. Returns False, and
        nothing changes, anywhere else (Adam, RMSprop, Nesterov SGD, an unfused
        optimizer, small networks, no NumPy BLAS). The update is the same rule,
        up to rounding.
        """
        return self._engine is not None and self._engine.fold()

    def step(self, *, measure_grad_norm: bool = False) -> float | None:
        """Apply one update to every parameter from its current ``grad`` (or the folded gradients).

        With ``measure_grad_norm``, also return ``sqrt(sum_p ||grad_p||^2)`` of the
        gradients applied, measured in the update's own pass where it can (None
        after a folded step: those gradients were never formed); also kept in
        :attr:`last_grad_norm`.
        """
        self.step_count += 1
        if self._engine is not None:
            sq = self._engine.step(measure_grad_norm)
        else:
            sq = 0.0
            for p, state in zip(self.params, self.state, strict=True):
                if measure_grad_norm:
                    sq += backend.sum_of_squares(p.grad)
                self._update(p, state)
        norm = _root(sq) if measure_grad_norm and sq is not None else None
        self.last_grad_norm = norm
        if (self.flush_subnormals_every and self.step_count % self.flush_subnormals_every == 0
                and not (self._engine is not None and self._engine.kernel_ran)):   # the kernels store none
            self._flush_subnormals()
        return norm

    def _flush_subnormals(self) -> None:
        """Set values and state entries smaller in magnitude than the dtype's smallest normal number to 0.

        Weight decay and Adam's moment averages shrink the weights of inputs
        that are always zero (an image's border pixels) geometrically, into
        subnormal numbers; CPUs process those tens of times slower, and one
        such weight matrix can double the time of the matrix products that use
        it. Flushing them (what ``torch.set_flush_denormal(True)`` does in
        hardware) changes no value by more than ``finfo(dtype).tiny``
        (1.2e-38 in float32).
        """
        xp = backend.xp
        if self._engine is not None:
            arrays = self._engine.arrays()
        else:
            arrays = [p.value for p in self.params] + [a for st in self.state for a in st.values()]
        for a in arrays:
            a[xp.abs(a) < xp.finfo(a.dtype).tiny] = 0

    def _rule(self, w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], decay: bool) -> None:
        """The update rule, in place on ``w`` and the arrays of ``state``: :attr:`rule` with :meth:`rule_arguments`.

        ``w``, ``grad``, each ``state[key]`` (for every key of
        :meth:`state_keys`; created as zeros before the first step) and each
        of the ``n_work`` scratch arrays ``work`` (contents undefined) have
        the same shape: one parameter, or one chunk of a flat buffer.
        ``decay``: whether weight decay applies to these elements. ``grad``
        must not be modified. A subclass sets :attr:`rule` or overrides this.
        """
        if self.rule is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither rule nor _rule")
        self.rule(w, grad, state, work, decay=decay, **self.rule_arguments())

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        """One parameter's update on its own arrays (the reference path)."""
        for key in self.state_keys():
            if key not in state:
                state[key] = backend.xp.zeros_like(p.value)
        work = [self._work(p, slot) for slot in range(self.n_work)]
        self._rule(p.value, p.grad, state, work, p.decay)

    def _work(self, p: Parameter, slot: int = 0) -> Any:
        """A scratch array shaped like ``p`` (contents undefined, never saved).

        Each slot is one flat buffer per dtype, as large as the largest
        parameter, shared by all parameters: views into it cost no allocation.
        """
        key = (p.dtype.str, slot)
        buf = self._workspace.get(key)
        if buf is None:
            size = max(q.size for q in self.params if q.dtype == p.dtype)
            buf = self._workspace[key] = backend.xp.empty(size, dtype=p.dtype)
        return backend.view_like(buf[:p.size], p.value)

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "step_count", "state": {"<i>.<key>": array}}``.

        Arrays are copies; everything else is JSON-able (ints, floats, bools,
        lists), so the dict can be saved without pickle (arrays to ``.npz`` or
        safetensors, the rest to JSON). The layout is the same for a fused and
        an unfused optimizer.
        """
        arrays = {f"{i}.{k}": backend.xp.array(v, copy=True) for i, st in enumerate(self.state) for k, v in st.items()}
        hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyperparameters().items()}
        return {"type": type(self).__name__, "hyperparameters": hyper,
                "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore hyper-parameters, step count and state arrays from :meth:`state_dict`."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: state is for {state.get('type')!r}, not {name}")
        known = self.hyperparameters()
        unknown = sorted(set(state["hyperparameters"]) - set(known))
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unknown hyper-parameters {unknown}; expected {sorted(known)}")
        arrays: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state["state"].items():
            i_str, _, k = key.partition(".")
            if not i_str.isdigit() or not k or int(i_str) >= len(self.params):
                raise ValueError(f"{name}.load_state_dict: state key {key!r} does not match the {len(self.params)} parameters")
            p = self.params[int(i_str)]
            value = backend.xp.asarray(value)
            if tuple(value.shape) != p.shape:
                raise ValueError(f"{name}.load_state_dict: state {key!r} has shape {tuple(value.shape)}, "
                                 f"parameter {p.name!r} has shape {p.shape}")
            if self._engine is None:
                value, loaded = backend.xp.empty_like(p.value), value      # a copy in the parameter's memory order
                value[...] = loaded
            arrays[int(i_str)][k] = value
        previous = self.state
        self.state = arrays
        if self._engine is not None:
            try:
                self._engine.pack_state()                 # copies into the flat arrays
            except ValueError:
                self.state = previous
                raise
        for k, v in state["hyperparameters"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.step_count = int(state["step_count"])

    # -- pickling (joblib, multiprocessing) ------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # pickle stores every view into the flat buffers as an array of its own, which would cut the
        # unpickled parameters off the buffers the fused step updates: leave the engine out ...
        state = self.__dict__.copy()
        state["_engine"] = None
        state["_workspace"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for old in ("_groups", "_folding", "_n_elements", "measure_grad_norm"):   # pickled by an older version
            state.pop(old, None)
        self.__dict__.update(state)
        self.__dict__.setdefault("n_elements", sum(p.size for p in self.params))
        self._engine = accel.fused_step(self) if self._fused else None   # ... and rebuild it from the state arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


def _root(sq: Any) -> Any:
    """``sqrt(sq)``: a Python float for a host scalar; for a device scalar (a 0-d CuPy array), a 0-d array, so the
    step reads nothing back to the host (the trainer converts the norm once, with the batch's loss)."""
    if isinstance(sq, (int, float, numpy.number)):
        return math.sqrt(sq)
    return backend.xp.sqrt(sq)
