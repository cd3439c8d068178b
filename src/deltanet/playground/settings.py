"""The playground's configuration: one flat dict of JSON values, what the page's URL hash holds.

:func:`normalize` checks a partial configuration from the page (or a model
file) against :data:`DEFAULTS` and returns a complete one, raising
``ValueError`` with a message for the page on a bad value. Keys in
:data:`LIVE` change the running session in place (the learning rate, the
batch size, the regularization); any other change rebuilds the data and the
network from scratch, as a new run.
"""

from __future__ import annotations

import math
from typing import Any

from .datasets import DATASETS, FEATURES
from .network import HIDDEN_ACTIVATIONS, MAX_LAYERS, MAX_UNITS

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine", "plateau")
REGULARIZATION = ("none", "l1", "l2")

DEFAULTS: dict[str, Any] = {
    "dataset": "spiral",
    "classes": 2,
    "noise": 0.1,
    "n_samples": 400,
    "test_ratio": 0.5,
    "seed": 0,
    "features": ["x1", "x2"],
    "hidden": [8, 8, 6],
    "activations": ["tanh", "tanh", "tanh"],
    "residual": False,
    "batch_norm": False,
    "dropout": 0.0,
    "optimizer": "adam",
    "lr": 0.03,
    "schedule": "constant",
    "batch_size": 10,
    "regularization": "none",
    "reg_rate": 0.001,
    "init_seed": 0,
}

#: Keys applied to the running session without a reset.
LIVE = frozenset({"lr", "batch_size", "regularization", "reg_rate"})


def _number(key: str, value: Any, lo: float, hi: float, integer: bool = False) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{key} must be between {lo:g} and {hi:g}, got {value!r}")
    if integer:
        if v != round(v):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        return round(v)
    return v


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    raise ValueError(f"{key} must be true or false, got {value!r}")


def _list(key: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v != ""]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key} must be a list, got {value!r}")
    return list(value)


def normalize(changes: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete, checked configuration: ``base`` (default :data:`DEFAULTS`) updated with ``changes``."""
    if not isinstance(changes, dict):
        raise ValueError(f"a configuration is a JSON object, got {type(changes).__name__}")
    unknown = sorted(set(changes) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    c = dict(base or DEFAULTS)
    c.update(changes)
    out: dict[str, Any] = {}
    out["dataset"] = _choice("dataset", c["dataset"], DATASETS)
    out["classes"] = _number("classes", c["classes"], 2, 6, integer=True)
    out["noise"] = _number("noise", c["noise"], 0.0, 0.5)
    out["n_samples"] = _number("n_samples", c["n_samples"], 20, 2000, integer=True)
    out["test_ratio"] = _number("test_ratio", c["test_ratio"], 0.1, 0.9)
    out["seed"] = _number("seed", c["seed"], 0, 2**31 - 1, integer=True)
    feats = _list("features", c["features"])
    for f in feats:
        _choice("feature", f, tuple(FEATURES))
    if not feats:
        raise ValueError("choose at least one feature input")
    out["features"] = [f for f in FEATURES if f in feats]          # a fixed order: the order of the input column
    hidden = [_number("hidden", h, 1, MAX_UNITS, integer=True) for h in _list("hidden", c["hidden"])]
    if len(hidden) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} hidden layers, got {len(hidden)}")
    acts = [_choice("activation", a, HIDDEN_ACTIVATIONS) for a in _list("activations", c["activations"])]
    if len(acts) < len(hidden):                                    # a new layer takes the activation of the one before
        acts += [acts[-1] if acts else "tanh"] * (len(hidden) - len(acts))
    out["hidden"], out["activations"] = hidden, acts[:len(hidden)]
    out["residual"] = _bool("residual", c["residual"])
    out["batch_norm"] = _bool("batch_norm", c["batch_norm"])
    out["dropout"] = _number("dropout", c["dropout"], 0.0, 0.9)
    out["optimizer"] = _choice("optimizer", c["optimizer"], OPTIMIZERS)
    out["lr"] = _number("lr", c["lr"], 1e-6, 10.0)
    out["schedule"] = _choice("schedule", c["schedule"], SCHEDULES)
    out["batch_size"] = _number("batch_size", c["batch_size"], 1, 2000, integer=True)
    if out["batch_norm"] and out["batch_size"] < 2:
        raise ValueError("batch normalization needs batches of at least 2 rows")
    out["regularization"] = _choice("regularization", c["regularization"], REGULARIZATION)
    out["reg_rate"] = _number("reg_rate", c["reg_rate"], 0.0, 10.0)
    out["init_seed"] = _number("init_seed", c["init_seed"], 0, 2**31 - 1, integer=True)
    return out


__all__ = ["DEFAULTS", "LIVE", "OPTIMIZERS", "REGULARIZATION", "SCHEDULES", "normalize"]
