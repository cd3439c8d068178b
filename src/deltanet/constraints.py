"""One table of the hyper-parameters that more than one front end takes, and the constraint types it is made of.

deltanet takes the same hyper-parameters in three places: the library's
constructors (:class:`~deltanet.training.Trainer`, the optimizers, the
schedules, the stopping criteria), the TOML run configuration
(:mod:`deltanet.config`) and the scikit-learn estimators
(:mod:`deltanet.sklearn`). Each hyper-parameter is constrained once, here, in
:data:`CONSTRAINTS`, under one name (the library's), and every front end checks
it against that entry, under the name it gives the parameter::

    CONSTRAINTS["lr"].check("lr", 0.1)                      # Trainer, optimizers
    CONSTRAINTS["lr"].check("[train] lr", 0.1)              # a config file
    CONSTRAINTS["lr"].check("learning_rate_init", 0.1)      # MLPClassifier.fit

so a value is accepted, normalized and refused in the same way everywhere, and
the message names the parameter, the allowed values and the value received::

    momentum must be in [0, 1), got 1.5
    batch_size must be an int >= 1, got 2.5 (float)

A constraint's :meth:`~Constraint.check` returns the normalized value (a
Python ``float``, ``int``, ``bool``, ``str``, tuple of ints or
``numpy.dtype``) or raises :class:`InvalidParameterError`, a ``ValueError``;
a value of the wrong type raises :class:`ParameterTypeError`, which is a
``TypeError`` as well (as scikit-learn's ``InvalidParameterError`` is both), so
callers catching either keep working.

Normalization, the same in every front end: booleans are never numbers; an
int accepts Python and NumPy integers and integral floats (``64.0`` -> 64);
a real number accepts ints, floats and NumPy scalars, never strings, and must
be finite; a string choice is case-sensitive.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy

from .init import ALIASES as _INIT_ALIASES
from .init import INITIALIZERS as _INITIALIZERS

__all__ = [
    "CONSTRAINTS", "DTYPES", "HIDDEN_ACTIVATIONS", "INITIALIZER_NAMES", "OPTIMIZER_NAMES", "AnyOf", "Boolean",
    "Constraint", "Dtype", "Integer", "InvalidParameterError", "Literal", "Nullable", "OneOf", "ParameterTypeError",
    "Real", "Sizes", "Text", "check",
]


class InvalidParameterError(ValueError):
    """A hyper-parameter outside its constraint; the message names it, the allowed values and the value received."""


class ParameterTypeError(InvalidParameterError, TypeError):
    """A hyper-parameter of the wrong type (a ``TypeError``, and an :class:`InvalidParameterError` like any refusal)."""


def _typed(value: Any) -> str:
    """``'fast' (str)``: the value and its type, for a value of the wrong type."""
    return f"{value!r} ({type(value).__name__})"


def _num(x: float) -> str:
    """A bound as written in a range: ``0``, ``1``, ``0.5``, ``1e-08``."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, numpy.bool_))


class Constraint:
    """The allowed values of one hyper-parameter.

    Subclasses implement :meth:`check` and :meth:`describe`; :attr:`kind` is the
    configuration's field kind (``"float"``, ``"int"``, ``"bool"``, ``"str"``,
    ``"ints"``), :attr:`choices` the allowed strings of a choice.
    """

    kind = "any"
    choices: tuple[str, ...] | None = None

    def check(self, name: str, value: Any) -> Any:
        """``value`` normalized, or :class:`InvalidParameterError` naming ``name``, the allowed values and ``value``."""
        raise NotImplementedError

    def describe(self) -> str:
        """The allowed values in words: ``"a number in [0, 1)"``, ``"an int >= 1"``, ``"one of: sgd, adam"``."""
        raise NotImplementedError

    def range_text(self) -> str:
        """The range alone, for help texts: ``"in [0, 1)"``, ``">= 1"`` (``""`` for no range)."""
        return ""

    def __call__(self, name: str, value: Any) -> Any:
        return self.check(name, value)

    def _wrong_type(self, name: str, value: Any) -> ParameterTypeError:
        return ParameterTypeError(f"{name} must be {self.describe()}, got {_typed(value)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class Real(Constraint):
    """A finite real number, optionally in an interval.

    Parameters
    ----------
    low, high : float, optional
        The bounds (None: unbounded on that side).
    closed : {"both", "left", "right", "neither"}
        Which of the given bounds are allowed values: ``Real(0, 1, closed="left")``
        is [0, 1), ``Real(0, closed="neither")`` is > 0, ``Real(0)`` is >= 0.
    """

    kind = "float"

    def __init__(self, low: float | None = None, high: float | None = None, *, closed: str = "both") -> None:
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.low = None if low is None else float(low)
        self.high = None if high is None else float(high)
        self.low_open = closed in ("right", "neither")
        self.high_open = closed in ("left", "neither")

    def range_text(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f"in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.high_open else '<='} {_num(hi)}"
        return ""

    def describe(self) -> str:
        return f"a number {self.range_text()}".rstrip()

    def contains(self, v: float) -> bool:
        if self.low is not None and not (v > self.low if self.low_open else v >= self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def check(self, name: str, value: Any) -> float:
        if _is_bool(value) or not isinstance(value, numbers.Real):
            raise self._wrong_type(name, value)
        v = float(value)
        if not math.isfinite(v):
            raise InvalidParameterError(f"{name} must be a finite number{' ' + self.range_text() if self.range_text() else ''}, "
                                        f"got {value}")
        if not self.contains(v):
            raise InvalidParameterError(f"{name} must be {self.range_text()}, got {value}")
        return v


class Integer(Constraint):
    """An integer ``>= minimum`` (and ``<= maximum``): an int, a NumPy integer or an integral float such as ``64.0``."""

    kind = "int"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.low = minimum
        self.high = maximum

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in [{self.low}, {self.high}]"
        if self.low is not None:
            return f">= {self.low}"
        if self.high is not None:
            return f"<= {self.high}"
        return ""

    def describe(self) -> str:
        return f"an int {self.range_text()}".rstrip()

    def check(self, name: str, value: Any) -> int:
        if _is_bool(value):
            raise self._wrong_type(name, value)
        if isinstance(value, numbers.Integral):
            v = int(value)
        elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
            v = int(value)
        else:
            raise self._wrong_type(name, value)
        if (self.low is not None and v < self.low) or (self.high is not None and v > self.high):
            raise InvalidParameterError(f"{name} must be {self.describe()}, got {value}")
        return v


class Boolean(Constraint):
    """True or False (a Python or NumPy boolean; not 0/1, not a string)."""

    kind = "bool"

    def describe(self) -> str:
        return "True or False"

    def check(self, name: str, value: Any) -> bool:
        if not _is_bool(value):
            raise self._wrong_type(name, value)
        return bool(value)


class OneOf(Constraint):
    """One of a few strings (case-sensitive); a near miss is answered with the closest choice."""

    kind = "str"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def describe(self) -> str:
        return "one of: " + ", ".join(self.choices)

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ParameterTypeError(f"{name} must be {self.describe()}; got {_typed(value)}")
        if value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidParameterError(f"{name} must be {self.describe()}; got {value!r}{hint}")
        return value


class Text(Constraint):
    """Any string (a name, a path)."""

    kind = "str"

    def describe(self) -> str:
        return "a string"

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self._wrong_type(name, value)
        return value


class Dtype(Constraint):
    """A floating-point dtype of the parameters: anything ``numpy.dtype`` reads as float32 or float64 -> that dtype."""

    kind = "str"
    choices = ("float32", "float64")

    def describe(self) -> str:
        return "'float32' or 'float64'"

    def check(self, name: str, value: Any) -> numpy.dtype:
        if _is_bool(value):
            raise self._wrong_type(name, value)
        try:
            dt = numpy.dtype(value)
        except TypeError:
            raise self._wrong_type(name, value) from None
        except Exception:  # NumPy parses a string such as ",f2" with ast.literal_eval: SyntaxError, ValueError, ...
            raise InvalidParameterError(f"{name} must be {self.describe()}, got {value!r} (not a dtype)") from None
        if dt not in (numpy.float32, numpy.float64):
            raise InvalidParameterError(f"{name} must be {self.describe()}, got {value!r} ({dt.name})")
        return dt


class Sizes(Constraint):
    """Hidden layer widths: an int or a sequence of ints, each >= 1 -> a tuple. An empty sequence is no hidden
    layer (a linear model)."""

    kind = "ints"

    def __init__(self) -> None:
        self.width = Integer(1)

    def describe(self) -> str:
        return "an int or a sequence of ints, each >= 1 (e.g. (100,) or (64, 32))"

    def check(self, name: str, value: Any) -> tuple[int, ...]:
        if isinstance(value, numbers.Integral) and not _is_bool(value):
            items: list[Any] = [value]
        elif isinstance(value, (str, bytes, dict)) or _is_bool(value):
            raise self._wrong_type(name, value)
        else:
            try:
                items = list(value)
            except TypeError:
                raise self._wrong_type(name, value) from None
        out = []
        for item in items:
            if _is_bool(item) or not isinstance(item, numbers.Real):
                raise ParameterTypeError(f"{name} must be {self.describe()}, got {_typed(item)} in {value!r}")
            try:
                out.append(self.width.check("a width", item))
            except InvalidParameterError:
                raise InvalidParameterError(f"{name} must be {self.describe()}, got {item} in {value!r}") from None
        return tuple(out)


class Literal(Constraint):
    """Exactly one value (``"auto"``, ``numpy.inf``), for :class:`AnyOf`."""

    def __init__(self, value: Any, label: str | None = None) -> None:
        self.value = value
        self.label = label or repr(value)

    def describe(self) -> str:
        return self.label

    def check(self, name: str, value: Any) -> Any:
        if not _is_bool(value) and isinstance(value, type(self.value)) and value == self.value:
            return self.value
        raise self._wrong_type(name, value)


class AnyOf(Constraint):
    """Any of several constraints (the first that accepts the value normalizes it): ``AnyOf(Literal("auto"), Integer(1))``.

    The refusal is a :class:`ParameterTypeError` unless the value had the type of an alternative and
    only missed its range (``batch_size=0``)."""

    def __init__(self, *alternatives: Constraint) -> None:
        self.alternatives = alternatives
        kinds = {a.kind for a in alternatives if not isinstance(a, Literal)}
        self.kind = kinds.pop() if len(kinds) == 1 else "any"

    def describe(self) -> str:
        return " or ".join(a.describe() for a in self.alternatives)

    def range_text(self) -> str:
        return " or ".join(a.describe() for a in self.alternatives)

    def check(self, name: str, value: Any) -> Any:
        type_only = True
        for alternative in self.alternatives:
            try:
                return alternative.check(name, value)
            except ParameterTypeError:
                pass
            except InvalidParameterError:
                type_only = False
        error = ParameterTypeError if type_only else InvalidParameterError
        raise error(f"{name} must be {self.describe()}, got {_typed(value) if type_only else value}")


class Nullable(Constraint):
    """None, or a value of ``inner`` (None means "not used" or "the default", as the front end says)."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.choices = inner.choices

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def range_text(self) -> str:
        return self.inner.range_text()

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.inner.check(name, value)
        except InvalidParameterError as exc:
            raise type(exc)(str(exc).replace(f"{name} must be ", f"{name} must be None or ", 1)) from None


#: Hidden activations of :func:`deltanet.mlp` (``logistic`` is scikit-learn's name of ``sigmoid``).
HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "logistic", "identity")
#: Optimizer names (:data:`deltanet.optim.OPTIMIZERS`).
OPTIMIZER_NAMES = ("sgd", "adam", "adamw", "rmsprop")
#: Weight initializer names (:mod:`deltanet.init`, aliases included).
INITIALIZER_NAMES = tuple(sorted([*_INITIALIZERS, *_INIT_ALIASES]))
#: Parameter dtypes.
DTYPES = ("float32", "float64")

#: A fraction or a decay rate: [0, 1).
_UNIT = Real(0.0, 1.0, closed="left")
#: A positive real: > 0.
_POSITIVE = Real(0.0, closed="neither")
#: A non-negative real: >= 0.
_NON_NEGATIVE = Real(0.0)

#: name -> constraint, for every hyper-parameter that more than one front end takes. The keys are the
#: library's names; where each is checked against its entry (library; config key; estimator parameter):
#:
#: - lr: Optimizer(lr), Trainer(lr); [train] lr; learning_rate_init
#: - momentum: SGD, RMSprop; [train] momentum; momentum
#: - nesterov: SGD(nesterov); nesterovs_momentum
#: - beta1, beta2: Adam, AdamW (betas[0], betas[1]); beta_1, beta_2
#: - eps: Adam, AdamW, RMSprop; epsilon
#: - rho: RMSprop(alpha); rho
#: - weight_decay, l2: the optimizers' weight_decay, Trainer(l2); [train] l2; alpha
#: - batch_size: Trainer(batch_size); [train] batch_size; batch_size (or "auto")
#: - epochs: Trainer(epochs); [train] epochs; max_iter
#: - eval_batch_size: Trainer(eval_batch_size), Trainer.predict(batch_size)
#: - shuffle: Trainer(shuffle); shuffle
#: - seed: Trainer(seed) (or None); [train] seed, [data] seed
#: - clip_norm: Trainer(clip_norm), clip_grad_norm(max_norm); [train] clip; clip_norm (or None)
#: - loss_below, grad_norm_below: Trainer(stop_loss_below, stop_grad_norm_below); [train]
#: - patience: EarlyStopping(patience); [train] patience; n_iter_no_change (or numpy.inf)
#: - min_delta: EarlyStopping, ReduceLROnPlateau (min_delta); [train] min_delta; tol
#: - restore_best: EarlyStopping(restore_best); [train] restore_best
#: - validation_fraction: Trainer.fit, train_val_test_split (val_fraction); [data] val_fraction; validation_fraction
#: - test_fraction: train_val_test_split(test_fraction); [data] test_fraction
#: - step_size, gamma: StepLR, ExponentialLR; [train] step_size, gamma
#: - warmup_epochs: get_schedule, Trainer(schedule_kwargs); [train] warmup_epochs
#: - dropout: Dropout(rate), mlp(dropout); [model] dropout; dropout
#: - batch_norm: mlp(batch_norm); [model] batch_norm; batch_norm
#: - hidden_sizes: [model] hidden; hidden_layer_sizes
#: - activation: [model] activation; activation (mlp() builds the same names, and gelu)
#: - init: [model] init; weight_init (or None)
#: - dtype: [model] dtype; dtype
#: - optimizer: [train] optimizer; solver (Trainer(optimizer) and get_optimizer also take any case)
CONSTRAINTS: dict[str, Constraint] = {
    # optimizers
    "lr": _POSITIVE,                      # a step size: any positive rate (no upper bound: it depends on the loss's scale)
    "momentum": _UNIT,                    # v <- mu v + g forgets old gradients only for mu < 1
    "nesterov": Boolean(),
    "beta1": _UNIT,                       # Adam's moment decay rates: 1 - beta^t > 0 in the bias corrections
    "beta2": _UNIT,
    "eps": _POSITIVE,                     # m / (sqrt(v) + eps) is 0 / 0 for a gradient that has stayed 0 if eps = 0
    "rho": _UNIT,                         # RMSprop's decay rate of the squared-gradient average
    "weight_decay": _NON_NEGATIVE,
    "l2": _NON_NEGATIVE,
    # the training loop
    "batch_size": Integer(1),
    "epochs": Integer(1),
    "eval_batch_size": Integer(1),
    "shuffle": Boolean(),
    "seed": Integer(0),
    "clip_norm": _POSITIVE,
    "loss_below": _POSITIVE,
    "grad_norm_below": _POSITIVE,
    # early stopping and the plateau schedule
    "patience": Integer(1),
    "min_delta": _NON_NEGATIVE,
    "restore_best": Boolean(),
    # data splits: the fraction held out (0: none); 1 would leave nothing to train on
    "validation_fraction": _UNIT,
    "test_fraction": _UNIT,
    # schedules
    "step_size": Integer(1),
    "gamma": Real(0.0, 1.0, closed="right"),   # a decay factor; 1 keeps the rate constant
    "warmup_epochs": Integer(0),               # 0: no warm-up
    # the network
    "hidden_sizes": Sizes(),
    "activation": OneOf(HIDDEN_ACTIVATIONS),
    "dropout": _UNIT,                          # the rate of zeroed units: 1 would zero them all (p = 1 - rate = 0)
    "batch_norm": Boolean(),
    "init": OneOf(INITIALIZER_NAMES),
    "dtype": Dtype(),
    "optimizer": OneOf(OPTIMIZER_NAMES),
}


def check(key: str, value: Any, name: str | None = None) -> Any:
    """``CONSTRAINTS[key].check(name or key, value)``: the normalized value, or :class:`InvalidParameterError`."""
    return CONSTRAINTS[key].check(key if name is None else name, value)
