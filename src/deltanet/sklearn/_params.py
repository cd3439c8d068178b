"""One declarative table of the estimators' hyper-parameters and their constraints.

scikit-learn's contract: ``__init__`` stores the hyper-parameters untouched and
``fit`` validates them. Each entry of :data:`CONSTRAINTS` maps a parameter
name to a checker that returns the normalised value or raises
``ValueError``/``TypeError`` saying what was expected and what came
(:class:`deltanet.constraints.InvalidParameterError`, both a ``ValueError``
and, for a value of the wrong type, a ``TypeError``, as scikit-learn's own).

The hyper-parameters the library and the configuration take too are the
entries of :data:`deltanet.constraints.CONSTRAINTS` under the library's name
(``learning_rate_init`` is ``lr``, ``alpha`` is ``l2``, ``max_iter`` is
``epochs``, ``tol`` is ``min_delta``, ``n_iter_no_change`` is ``patience``, ...),
so they are refused with the same range as ``Trainer`` and the config files.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy

from ..constraints import CONSTRAINTS as SHARED
from ..constraints import (
    HIDDEN_ACTIVATIONS,
    OPTIMIZER_NAMES,
    AnyOf,
    Boolean,
    Integer,
    Literal,
    Nullable,
    OneOf,
    ParameterTypeError,
    Real,
)

Checker = Callable[[str, Any], Any]

#: Hidden activations: scikit-learn's names plus ``leaky_relu`` and ``sigmoid`` (``logistic``'s other name).
ACTIVATIONS = HIDDEN_ACTIVATIONS
#: Solvers: the library's mini-batch optimizers (one pass over mini-batches per iteration) and full-batch L-BFGS.
SOLVERS = (*OPTIMIZER_NAMES, "lbfgs")
#: Learning-rate schedules: scikit-learn's three plus cosine annealing.
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine")


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def verbose(name: str, value: Any) -> int:
    if isinstance(value, (bool, numpy.bool_)):
        return int(value)
    return Integer(0).check(name, value)


def random_state(name: str, value: Any) -> Any:
    if value is None or isinstance(value, numpy.random.RandomState):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    raise ParameterTypeError(f"{name} must be None, an int in [0, 2**32) or a numpy.random.RandomState, "
                             f"got {_describe(value)}")


def class_weight(name: str, value: Any) -> Any:
    if value is None or value == "balanced" or isinstance(value, dict):
        return value
    raise ParameterTypeError(f"{name} must be None, 'balanced' or a dict {{class label: weight}}, got {_describe(value)}")


#: name -> checker, for every hyper-parameter shared by both estimators; the entries taken from
#: :data:`deltanet.constraints.CONSTRAINTS` (``SHARED``) are those the library and the config check too.
CONSTRAINTS: dict[str, Checker] = {
    "hidden_layer_sizes": SHARED["hidden_sizes"],
    "activation": SHARED["activation"],
    "solver": OneOf(SOLVERS),       # the shared optimizer names, and "lbfgs"
    "alpha": SHARED["l2"],
    "batch_size": AnyOf(Literal("auto"), SHARED["batch_size"]),
    "learning_rate": OneOf(LEARNING_RATES),
    "learning_rate_init": SHARED["lr"],
    "power_t": Real(0.0),
    "max_iter": SHARED["epochs"],
    "shuffle": SHARED["shuffle"],
    "random_state": random_state,
    "tol": SHARED["min_delta"],
    "verbose": verbose,
    "warm_start": Boolean(),
    "momentum": SHARED["momentum"],
    "nesterovs_momentum": SHARED["nesterov"],
    "early_stopping": Boolean(),
    "validation_fraction": SHARED["validation_fraction"],
    "beta_1": SHARED["beta1"],
    "beta_2": SHARED["beta2"],
    "epsilon": SHARED["eps"],
    "n_iter_no_change": AnyOf(SHARED["patience"], Literal(math.inf, "numpy.inf")),
    "max_fun": Integer(1),
    "rho": SHARED["rho"],
    "dropout": SHARED["dropout"],
    "batch_norm": SHARED["batch_norm"],
    "clip_norm": Nullable(SHARED["clip_norm"]),
    "weight_init": Nullable(SHARED["init"]),
    "dtype": Nullable(SHARED["dtype"]),
    "device": AnyOf(Literal("cpu"), Literal("cuda")),
    "class_weight": class_weight,
    "loss": OneOf(("squared_error", "poisson")),
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
