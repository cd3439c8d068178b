"""The optimizer contract, hyper-parameter validation and the shared scratch space."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..parameter import Parameter


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {value!r}") from exc


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a finite hyper-parameter > 0 (or >= 0): ``lr must be > 0, got -0.1``."""
    v = _as_float(name, value)
    if not (v >= 0 if allow_zero else v > 0) or not math.isfinite(v):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return v


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False, open_left: bool = False) -> float:
    """Validate a hyper-parameter in [0, 1) (or [0, 1], (0, 1), (0, 1]):
    ``momentum must be in [0, 1), got 1.5``."""
    v = _as_float(name, value)
    ok_left = v > 0.0 if open_left else v >= 0.0
    ok_right = v <= 1.0 if closed_right else v < 1.0
    if not (ok_left and ok_right):
        interval = f"{'(' if open_left else '['}0, 1{']' if closed_right else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return v


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """Validate an integer hyper-parameter >= ``minimum``: ``patience must be an int >= 0, got -1``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state.

    Subclasses implement :meth:`_update` (the published rule for one
    parameter: a few in-place array operations on its value, gradient and
    state) and :meth:`hyperparameters`. The learning rate ``lr`` is a plain
    attribute that schedules set; ``step()`` applies one update to every
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

    Notes
    -----
    Per-parameter state lives in ``self.state[i]`` (a dict of arrays shaped
    like parameter ``i``), created on the first step. Temporaries of an update
    go to a scratch space (:meth:`_work`) shared by all parameters of a dtype,
    so that a step allocates no arrays after the first one.
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters (model.parameters()), got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the parameter list")
        self.lr = check_positive("lr", lr)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._workspace: dict[tuple[str, int], Any] = {}

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyper-parameters (without ``params``); JSON-able values."""
        return {"lr": self.lr}

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad``."""
        self.step_count += 1
        for p, state in zip(self.params, self.state, strict=True):
            self._update(p, state)

    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- helpers for _update ---------------------------------------------------
    def _buffer(self, state: dict[str, Any], key: str, like: Any) -> Any:
        """The state array ``state[key]``, created as zeros shaped like ``like`` on first use."""
        buf = state.get(key)
        if buf is None:
            buf = state[key] = backend.xp.zeros_like(like)
        return buf

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
        return buf[:p.size].reshape(p.value.shape)

    def _grad_with_l2(self, p: Parameter, weight_decay: float, slot: int = 0) -> Any:
        """``g = grad + weight_decay * W`` for a parameter marked for decay, else ``grad``.

        The gradient is not modified: the sum goes to scratch ``slot``. The
        result must be treated as read-only (it may be ``p.grad`` itself).
        """
        g = p.grad
        if weight_decay and p.decay:
            out = self._work(p, slot)
            backend.xp.multiply(p.value, weight_decay, out=out)
            out += g
            return out
        return g

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "step_count", "state": {"<i>.<key>": array}}``.

        Arrays are copies; everything else is JSON-able (ints, floats, bools,
        lists), so the dict can be saved without pickle (arrays to ``.npz`` or
        safetensors, the rest to JSON).
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
            arrays[int(i_str)][k] = backend.xp.array(value, dtype=p.dtype, copy=True)
        for k, v in state["hyperparameters"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.step_count = int(state["step_count"])
        self.state = arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"
