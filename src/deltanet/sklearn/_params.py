"""One declarative table of the estimators' hyper-parameters and their constraints.

scikit-learn's contract: ``__init__`` stores the hyper-parameters untouched and
``fit`` validates them. Each entry of :data:`CONSTRAINTS` maps a parameter
name to a checker that returns the normalised value or raises
``ValueError``/``TypeError`` saying what was expected and what came.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy

from .. import init as initializers

Checker = Callable[[str, Any], Any]

#: Hidden activations, scikit-learn's names plus ``leaky_relu``.
ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu")
#: Optimizers (all stochastic: one pass over mini-batches per iteration).
SOLVERS = ("sgd", "adam", "adamw", "rmsprop")
#: Learning-rate schedules: scikit-learn's three plus cosine annealing.
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def one_of(*choices: str) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {_describe(value)}")
        return value
    return check


def real(low: float | None = None, high: float | None = None, *, closed: str = "both",
         none: bool = False, inf: bool = False) -> Checker:
    """A real number in an interval; ``closed`` in {"both", "left", "right", "neither"}."""
    lo_ok = closed in ("both", "left")
    hi_ok = closed in ("both", "right")

    def check(name: str, value: Any) -> float | None:
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number{' or None' if none else ''}; got {_describe(value)}")
        v = float(value)
        if math.isnan(v) or (math.isinf(v) and not inf):
            raise ValueError(f"{name} must be finite; got {value}")
        bad_lo = low is not None and (v < low or (v == low and not lo_ok))
        bad_hi = high is not None and (v > high or (v == high and not hi_ok))
        if bad_lo or bad_hi:
            left = ("[" if lo_ok else "(") + (str(low) if low is not None else "-inf")
            right = (str(high) if high is not None else "inf") + ("]" if hi_ok else ")")
            raise ValueError(f"{name} must be in {left}, {right}; got {value}")
        return v
    return check


def integer(low: int, *, inf: bool = False) -> Checker:
    """An int >= ``low`` (``numpy.inf`` too when ``inf``)."""
    def check(name: str, value: Any) -> int | float:
        if inf and isinstance(value, float) and math.isinf(value) and value > 0:
            return math.inf
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int >= {low}{' or numpy.inf' if inf else ''}; got {_describe(value)}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}; got {value}")
        return int(value)
    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{name} must be True or False; got {_describe(value)}")
    return bool(value)


def verbose(name: str, value: Any) -> int:
    if isinstance(value, (bool, numpy.bool_)):
        return int(value)
    return integer(0)(name, value)


def hidden_sizes(name: str, value: Any) -> tuple[int, ...]:
    """An int or a sequence of ints >= 1 (an empty sequence gives a linear model)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        sizes = [value]
    else:
        try:
            sizes = list(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of ints, e.g. (100,) or (64, 32); "
                            f"got {_describe(value)}") from None
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{name} must hold ints; got {_describe(s)} in {value!r}")
        if s < 1:
            raise ValueError(f"{name} must hold positive layer widths; got {s} in {value!r}")
        out.append(int(s))
    return tuple(out)


def batch_size(name: str, value: Any) -> str | int:
    if value == "auto" and isinstance(value, str):
        return "auto"
    try:
        return integer(1)(name, value)
    except TypeError:
        raise TypeError(f"{name} must be 'auto' or an int >= 1; got {_describe(value)}") from None


def dtype(name: str, value: Any) -> numpy.dtype:
    try:
        dt = numpy.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be 'float32' or 'float64'; got {_describe(value)}") from None
    if dt not in (numpy.float32, numpy.float64):
        raise ValueError(f"{name} must be 'float32' or 'float64'; got {dt.name}")
    return dt


def weight_init(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be None or an initializer name; got {_describe(value)}")
    initializers.get(value)  # raises ValueError naming the valid choices
    return value


def random_state(name: str, value: Any) -> Any:
    if value is None or isinstance(value, numpy.random.RandomState):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    raise TypeError(f"{name} must be None, an int in [0, 2**32) or a numpy.random.RandomState; got {_describe(value)}")


def class_weight(name: str, value: Any) -> Any:
    if value is None or value == "balanced" or isinstance(value, dict):
        return value
    raise TypeError(f"{name} must be None, 'balanced' or a dict {{class label: weight}}; got {_describe(value)}")


#: name -> checker, for every hyper-parameter shared by both estimators.
CONSTRAINTS: dict[str, Checker] = {
    "hidden_layer_sizes": hidden_sizes,
    "activation": one_of(*ACTIVATIONS),
    "solver": one_of(*SOLVERS),
    "alpha": real(0.0),
    "batch_size": batch_size,
    "learning_rate": one_of(*LEARNING_RATES),
    "learning_rate_init": real(0.0, closed="right"),
    "power_t": real(0.0),
    "max_iter": integer(1),
    "shuffle": boolean,
    "random_state": random_state,
    "tol": real(0.0),
    "verbose": verbose,
    "warm_start": boolean,
    "momentum": real(0.0, 1.0),
    "nesterovs_momentum": boolean,
    "early_stopping": boolean,
    "validation_fraction": real(0.0, 1.0, closed="left"),
    "beta_1": real(0.0, 1.0, closed="left"),
    "beta_2": real(0.0, 1.0, closed="left"),
    "epsilon": real(0.0, closed="right"),
    "n_iter_no_change": integer(1, inf=True),
    "rho": real(0.0, 1.0, closed="left"),
    "dropout": real(0.0, 1.0, closed="left"),
    "batch_norm": boolean,
    "clip_norm": real(0.0, closed="right", none=True),
    "weight_init": weight_init,
    "dtype": dtype,
    "class_weight": class_weight,
}


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check every hyper-parameter against :data:`CONSTRAINTS`; return the normalised values."""
    out = {}
    for name, value in params.items():
        checker = CONSTRAINTS.get(name)
        out[name] = checker(name, value) if checker is not None else value
    if out.get("early_stopping") and not 0.0 < out.get("validation_fraction", 0.1) < 1.0:
        raise ValueError(f"early_stopping=True needs validation_fraction in (0, 1); got {params['validation_fraction']}")
    return out
