"""The optimizer contract."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import backend
from ..parameter import Parameter


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Validate a hyper-parameter: ``lr must be > 0, got -0.1``."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {value!r}") from exc
    if not (v >= 0 if allow_zero else v > 0) or v != v or v == float("inf"):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return v


def check_unit_interval(name: str, value: float, *, closed_right: bool = False) -> float:
    """Validate a hyper-parameter in [0, 1) (or [0, 1])."""
    v = float(value)
    if not (0.0 <= v <= 1.0 if closed_right else 0.0 <= v < 1.0):
        raise ValueError(f"{name} must be in [0, {'1]' if closed_right else '1)'}, got {value}")
    return v


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state.

    Subclasses implement :meth:`_update` (the published rule for one
    parameter, a small function of its value, gradient and state) and
    :meth:`hyperparameters`. The learning rate ``lr`` is a plain attribute that
    schedules set; ``step()`` applies one update to every parameter;
    ``state_dict()`` / ``load_state_dict()`` capture everything needed to
    resume exactly (hyper-parameters, step count and state arrays).

    Weight decay applies only to parameters with ``decay=True`` (weights, not
    biases or normalization parameters).
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters (model.parameters()), got {type(p).__name__}")
        self.lr = check_positive("lr", lr)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyper-parameters (without ``params``)."""
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

    def _buffer(self, state: dict[str, Any], key: str, like: Any) -> Any:
        buf = state.get(key)
        if buf is None:
            buf = state[key] = backend.xp.zeros_like(like)
        return buf

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "step_count", "state": {"<i>.<key>": array}}`` (arrays copied)."""
        arrays = {f"{i}.{k}": backend.xp.array(v, copy=True) for i, st in enumerate(self.state) for k, v in st.items()}
        return {"type": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state is for {state.get('type')!r}")
        for k, v in state["hyperparameters"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.step_count = int(state["step_count"])
        self.state = [{} for _ in self.params]
        for key, value in state["state"].items():
            i, name = key.split(".", 1)
            i = int(i)
            if i >= len(self.params) or tuple(value.shape) != self.params[i].shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: state {key!r} does not match the parameters")
            self.state[i][name] = backend.xp.array(value, dtype=self.params[i].dtype, copy=True)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"
