"""Run configurations: TOML files with a ``[model]``, a ``[data]`` and a ``[train]`` section.

A configuration is three dataclasses (:class:`ModelConfig`, :class:`DataConfig`,
:class:`TrainConfig`) gathered in a :class:`RunConfig`. Every field carries its
type, default, allowed range or choices and a help line in one declarative
table (the dataclass field's ``metadata["spec"]``, a :class:`Spec`); the same
table validates files, validates command-line overrides and writes the
``--help`` text. The fields that the library and the scikit-learn estimators
take too (``lr``, ``batch_size``, ``dropout``, ``hidden``, ...) take their kind
and range from :data:`deltanet.constraints.CONSTRAINTS`, so a file accepts and
refuses exactly what ``Trainer`` and ``MLPClassifier`` do.

An example, the default job written out::

    [model]
    hidden = [256, 128]          # or: layers = 3 (widths from d_l = sqrt(d_{l-1} d_{l+1}))
    activation = "relu"
    dropout = 0.2
    batch_norm = false

    [data]
    name = "digits"              # or: path = "table.csv", target = "label"
    val_fraction = 0.1
    test_fraction = 0.2

    [train]
    optimizer = "adam"
    lr = 0.003
    schedule = "cosine"
    batch_size = 64
    epochs = 40
    l2 = 0.0001

The model may instead be written layer by layer, exactly as
:meth:`deltanet.Module.config` describes a module and :func:`deltanet.build`
rebuilds it::

    [[model.layers]]
    type = "Linear"
    in_features = 64
    out_features = 32

    [[model.layers]]
    type = "ReLU"

    [[model.layers]]
    type = "Linear"
    in_features = 32
    out_features = 10

Unknown sections and keys are errors (:class:`ConfigError`) that name the key
and the section, suggest the closest valid key and list the valid ones.
:func:`dumps_toml` writes a configuration back (``tomllib`` only reads), so a
run directory's ``config.toml`` repeats the run.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy

from . import constraints as _c
from .constraints import CONSTRAINTS, Constraint, InvalidParameterError
from .io import atomic_write
from .losses import LOSSES
from .modules.base import _REGISTRY, Module, registered_types

__all__ = [
    "DEFAULT_DATASET", "DEFAULT_HIDDEN", "DEFAULT_LR", "ConfigError", "DataConfig", "ModelConfig", "RunConfig", "Spec",
    "TrainConfig", "dumps_toml", "load_config", "loads_config", "save_config", "section_specs",
]


class ConfigError(ValueError):
    """A mistake in a configuration file or option, described in one line."""


# ---------------------------------------------------------------------------
# The declarative table
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """Type, range and help of one configuration field.

    Parameters
    ----------
    kind : str
        ``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"ints"`` (a list of
        positive ints) or ``"layers"`` (a depth, or a list of module tables).
    help : str
        One line for ``--help`` and error messages.
    choices : tuple of str, optional
        The allowed values of a string.
    low, high : float, optional
        Bounds of a number; ``low_open``/``high_open`` make them exclusive.
    nullable : bool
        Whether the field may be absent (None), meaning "not used" or "decided
        at run time" as its help says.
    constraint : Constraint
        What :func:`check_value` checks a value against: for a hyper-parameter
        that the library and the estimators take too, the entry of
        :data:`deltanet.constraints.CONSTRAINTS` (:func:`_shared`; kind, choices
        and range are then the entry's), otherwise one built from ``kind``,
        ``choices`` and the bounds.
    """

    kind: str
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        if self.constraint is None and self.kind != "layers":
            object.__setattr__(self, "constraint", self._own_constraint())

    def _own_constraint(self) -> Constraint:
        if self.kind == "bool":
            return _c.Boolean()
        if self.kind == "str":
            return _c.OneOf(self.choices) if self.choices else _c.Text()
        if self.kind == "int":
            return _c.Integer(None if self.low is None else int(self.low), None if self.high is None else int(self.high))
        if self.kind == "float":
            closed = {(False, False): "both", (False, True): "left", (True, False): "right", (True, True): "neither"}
            return _c.Real(self.low, self.high, closed=closed[self.low_open, self.high_open])
        raise TypeError(f"unknown field kind {self.kind!r}")  # pragma: no cover - a mistake in the table itself

    def range_text(self) -> str:
        """``"> 0"``, ``"in [0, 1)"``, ``"one of: a, b"`` or ``""``."""
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        return self.constraint.range_text() if self.constraint is not None else ""


def _spec(kind: str, help: str, **kw: Any) -> dict[str, Spec]:
    """The metadata of a configuration field: ``field(default=..., metadata=_spec("int", "help", low=0))``."""
    return {"spec": Spec(kind=kind, help=help, **kw)}


def _shared(key: str, help: str, *, nullable: bool = False) -> dict[str, Spec]:
    """The metadata of a field that the library and the estimators take too: its kind, choices and range are
    those of ``CONSTRAINTS[key]`` (:mod:`deltanet.constraints`); the help is the configuration's own."""
    c = CONSTRAINTS[key]
    bounds: dict[str, Any] = {}
    if isinstance(c, (_c.Real, _c.Integer)):
        bounds = {"low": c.low, "high": c.high, "low_open": getattr(c, "low_open", False),
                  "high_open": getattr(c, "high_open", False)}
    return {"spec": Spec(kind=c.kind, help=help, choices=c.choices, nullable=nullable, constraint=c, **bounds)}


HIDDEN_ACTIVATIONS = _c.HIDDEN_ACTIVATIONS
INITIALIZER_NAMES = _c.INITIALIZER_NAMES
OPTIMIZERS = _c.OPTIMIZER_NAMES
SCHEDULES = ("none", "constant", "step", "exponential", "cosine", "plateau")
TASKS = ("classification", "regression")

#: Hidden widths of the default network when neither ``hidden`` nor a depth is given.
DEFAULT_HIDDEN = [256, 128]
#: The dataset of the default job (scikit-learn's bundled 8x8 digits).
DEFAULT_DATASET = "digits"
#: Learning rate of each optimizer when ``lr`` is not given (inside the reference's 0.001-0.1).
DEFAULT_LR = {"sgd": 0.05, "adam": 3e-3, "adamw": 3e-3, "rmsprop": 1e-3}


@dataclass
class ModelConfig:
    """``[model]``: the network, in the short form or as an explicit list of layers."""

    layers: Any = field(default=None, metadata=_spec(
        "layers", "number of hidden layers, widths by d_l = sqrt(d_(l-1) d_(l+1)); or [[model.layers]] tables "
        "{type=..., ...} as Module.config() writes them", nullable=True))
    hidden: list[int] | None = field(default=None, metadata=_shared(
        "hidden_sizes", f"hidden layer widths (default {DEFAULT_HIDDEN} unless layers is given)", nullable=True))
    activation: str = field(default="relu", metadata=_shared("activation", "hidden activation"))
    dropout: float = field(default=0.2, metadata=_shared("dropout", "dropout rate after each hidden activation"))
    input_dropout: float = field(default=0.0, metadata=_shared("dropout", "dropout rate of the input features"))
    batch_norm: bool = field(default=False, metadata=_shared("batch_norm", "batch normalization before each hidden activation"))
    init: str | None = field(default=None, metadata=_shared(
        "init", "hidden weight initializer (default: He for ReLU, Xavier otherwise)", nullable=True))
    dtype: str = field(default="float32", metadata=_shared("dtype", "parameter dtype"))

    #: Keys of the short form (not allowed together with an explicit layer list).
    SHORT_FORM = ("hidden", "activation", "dropout", "input_dropout", "batch_norm", "init", "dtype")

    @property
    def explicit(self) -> bool:
        """Whether the layers are listed explicitly (``[[model.layers]]``)."""
        return isinstance(self.layers, list)

    def hidden_sizes(self, n_in: int, n_out: int) -> list[int]:
        """The hidden widths to build: ``hidden``, else the heuristic for a depth, else the default."""
        from .architecture import geometric_hidden_sizes

        if self.explicit:
            raise ValueError("hidden_sizes: the model lists its layers explicitly")
        if self.hidden is not None:
            return list(self.hidden)
        if self.layers is not None:
            return geometric_hidden_sizes(n_in, n_out, self.layers)
        return list(DEFAULT_HIDDEN)

    def resolved(self, n_in: int, n_out: int) -> ModelConfig:
        """The same model with its hidden widths written out (the form saved in a run directory)."""
        if self.explicit:
            return self
        sizes = self.hidden_sizes(n_in, n_out)
        if not sizes:  # no hidden layer (``hidden = []`` or ``layers = 0``): written as ``layers = 0``
            return replace(self, hidden=None, layers=0)
        return replace(self, hidden=sizes, layers=None)


@dataclass
class DataConfig:
    """``[data]``: where the data comes from and how it is split and scaled."""

    name: str | None = field(default=None, metadata=_spec(
        "str", f"a dataset name from `deltanet datasets` (default {DEFAULT_DATASET!r} unless path is given)", nullable=True))
    path: str | None = field(default=None, metadata=_spec(
        "str", "a data file (.csv or .npz) instead of a named dataset", nullable=True))
    target: str | None = field(default=None, metadata=_spec(
        "str", "the target column of a CSV file (default: the last column)", nullable=True))
    task: str | None = field(default=None, metadata=_spec(
        "str", "the task of a data file (default: classification for integer or text targets)", choices=TASKS, nullable=True))
    val_fraction: float = field(default=0.1, metadata=_shared(
        "validation_fraction", "fraction of the data held out for validation"))
    test_fraction: float = field(default=0.2, metadata=_shared("test_fraction", "fraction of the data held out for the final test"))
    standardize: bool | None = field(default=None, metadata=_spec(
        "bool", "scale features to zero mean and unit variance, fitted on the training split (default: unless every "
        "feature already lies in [0, 1], as normalized pixels do)", nullable=True))
    n_samples: int | None = field(default=None, metadata=_spec(
        "int", "number of points of a synthetic dataset (spiral, moons, ...)", low=2, nullable=True))
    noise: float | None = field(default=None, metadata=_spec(
        "float", "noise level of a synthetic dataset", low=0.0, nullable=True))
    seed: int = field(default=0, metadata=_shared("seed", "seed of the split and of synthetic data"))
    data_dir: str | None = field(default=None, metadata=_spec(
        "str", "directory holding downloaded datasets (MNIST)", nullable=True))

    def source(self) -> str:
        """``path`` if given, else the dataset name (default :data:`DEFAULT_DATASET`)."""
        return self.path if self.path is not None else (self.name or DEFAULT_DATASET)


@dataclass
class TrainConfig:
    """``[train]``: loss, optimizer, schedule, batches, regularization and when to stop."""

    loss: str | None = field(default=None, metadata=_spec(
        "str", "loss (default: cross_entropy for classification, mse for regression)", choices=tuple(sorted(LOSSES)),
        nullable=True))
    optimizer: str = field(default="adam", metadata=_shared("optimizer", "optimizer"))
    lr: float | None = field(default=None, metadata=_shared(
        "lr", "learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")", nullable=True))
    momentum: float | None = field(default=None, metadata=_shared(
        "momentum", "momentum of sgd (default 0.9) and rmsprop (default 0)", nullable=True))
    schedule: str = field(default="cosine", metadata=_spec(
        "str", "learning-rate schedule, stepped once per epoch", choices=SCHEDULES))
    warmup_epochs: int = field(default=0, metadata=_shared(
        "warmup_epochs", "epochs of linear learning-rate warm-up before the schedule"))
    step_size: int | None = field(default=None, metadata=_shared(
        "step_size", "epochs between decays of the step schedule (default epochs // 3)", nullable=True))
    gamma: float | None = field(default=None, metadata=_shared(
        "gamma", "decay factor of the step (default 0.1), exponential (0.95) and plateau (0.1, < 1) schedules",
        nullable=True))
    batch_size: int = field(default=64, metadata=_shared("batch_size", "mini-batch size"))
    epochs: int = field(default=40, metadata=_shared("epochs", "maximum number of epochs"))
    loss_below: float | None = field(default=None, metadata=_shared(
        "loss_below", "stop when the training loss falls below this", nullable=True))
    grad_norm_below: float | None = field(default=None, metadata=_shared(
        "grad_norm_below", "stop when the mean gradient norm of an epoch falls below this", nullable=True))
    patience: int | None = field(default=None, metadata=_shared(
        "patience", "early stopping: epochs without validation improvement before stopping", nullable=True))
    min_delta: float = field(default=0.0, metadata=_shared(
        "min_delta", "early stopping: smallest decrease of the validation loss that counts"))
    restore_best: bool = field(default=True, metadata=_shared("restore_best", "early stopping: restore the weights of the best epoch"))
    clip: float | None = field(default=None, metadata=_shared(
        "clip_norm", "clip the global gradient norm to this", nullable=True))
    l2: float = field(default=1e-4, metadata=_shared("l2", "L2 penalty lambda: L + lambda/2 sum ||W||^2 over weights"))
    seed: int = field(default=0, metadata=_shared("seed", "seed of the weights, the shuffling and dropout"))

    def learning_rate(self) -> float:
        """``lr``, else the optimizer's default from :data:`DEFAULT_LR`."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    def loss_name(self, task: str) -> str:
        """``loss``, else the natural loss of the task."""
        if self.loss is not None:
            return self.loss
        return "cross_entropy" if task == "classification" else "mse"


_SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def section_specs(section: str) -> dict[str, tuple[Spec, Any]]:
    """``{key: (Spec, default)}`` of a section (``"model"``, ``"data"`` or ``"train"``)."""
    return {f.name: (f.metadata["spec"], f.default) for f in fields(_SECTIONS[section])}


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def _unknown(key: str, where: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {key!r} in {where}{hint}; valid keys: {', '.join(valid)}")


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__)


def check_value(section: str, key: str, value: Any) -> Any:
    """Validate one value against the table and return it normalized (ints to floats for float fields, integral
    floats to ints for int fields, a single hidden width to a list); the message of a refusal names
    ``[section] key``, the allowed values and the value (:mod:`deltanet.constraints`)."""
    spec = section_specs(section)[key][0]
    where = f"[{section}] {key}"
    if value is None:
        if spec.nullable:
            return None
        raise ConfigError(f"{where} needs a value ({spec.kind})")
    if spec.kind == "layers":
        return _check_layers(value)
    assert spec.constraint is not None
    try:
        value = spec.constraint.check(where, value)
    except InvalidParameterError as exc:
        raise ConfigError(str(exc)) from None
    if spec.kind == "ints":
        return list(value)
    if isinstance(value, numpy.dtype):
        return value.name
    return value


def _check_layers(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"[model] layers (a depth) must be >= 0, got {value}")
        return value
    if not isinstance(value, list) or not value:
        raise ConfigError(f"[model] layers must be a number of hidden layers or a non-empty list of layer tables, got {value!r}")
    return [check_layer(item, f"[[model.layers]] #{i + 1}") for i, item in enumerate(value)]


def _layer_keys(cls: type[Module]) -> list[str] | None:
    """The keys a module description may hold: the constructor's arguments (None: the class decides)."""
    if cls.from_config.__func__ is not Module.from_config.__func__:  # containers parse their own keys
        return None
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values()):
        return None
    return [name for name in params if name not in ("self", "rng")]


def check_layer(item: Any, where: str) -> dict[str, Any]:
    """Validate one module description ``{"type": ..., **hyper-parameters}`` (keys, nested descriptions)."""
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a table with a 'type' key, got {item!r}")
    if "type" not in item:
        raise ConfigError(f"{where} has no 'type'; known types: {', '.join(registered_types())}")
    kind = item["type"]
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(kind), registered_types(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown layer type {kind!r}{hint}; known types: {', '.join(registered_types())}")
    valid = _layer_keys(cls)
    if valid is not None:
        for key in item:
            if key != "type" and key not in valid:
                raise _unknown(key, f"{where} ({kind})", valid)
    out = {}
    for key, v in item.items():
        if v is None:  # TOML has no null: an absent key means the constructor's default
            continue
        if isinstance(v, dict) and "type" in v:
            v = check_layer(v, f"{where}.{key}")
        elif isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
            v = [check_layer(e, f"{where}.{key} #{j + 1}") for j, e in enumerate(v)]
        out[key] = v
    return out


def _checked_values(section: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data``'s values validated against the field table of ``[section]``; an unknown key is an error
    that lists the valid ones."""
    specs = section_specs(section)
    for key in data:
        if key not in specs:
            raise _unknown(key, f"[{section}]", sorted(specs))
    return {key: check_value(section, key, v) for key, v in data.items()}


def _section_from_dict(section: str, data: Any) -> Any:
    cls = _SECTIONS[section]
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{section}] must be a table, got {_type_name(data)}")
    values = _checked_values(section, data)
    if section == "model" and isinstance(values.get("layers"), list):
        mixed = sorted(k for k in ModelConfig.SHORT_FORM if k in values)
        if mixed:
            raise ConfigError(f"[model] lists its layers explicitly ([[model.layers]]); {', '.join(mixed)} only apply to "
                              "the short form (hidden = [...], activation = ...); use one form or the other")
    return cls(**values)


def _check_consistency(cfg: RunConfig) -> None:
    m, d = cfg.model, cfg.data
    if isinstance(m.layers, int) and m.hidden is not None and len(m.hidden) != m.layers:
        raise ConfigError(f"[model] layers = {m.layers} but hidden lists {len(m.hidden)} widths {m.hidden}; give one of them")
    if not m.explicit and m.init == "zeros" and (m.hidden or (m.layers is None and m.hidden is None) or m.layers):
        raise ConfigError("[model] init = \"zeros\" gives every hidden unit the same weights, so they all get the same "
                          "gradient and stay identical (no symmetry breaking): the network cannot learn; use he_normal "
                          "(ReLU) or xavier_normal (tanh, sigmoid), or leave init unset")
    t = cfg.train
    if t.momentum is not None and t.optimizer not in ("sgd", "rmsprop"):
        raise ConfigError(f"[train] momentum applies to the optimizers sgd and rmsprop, not to {t.optimizer!r} "
                          "(Adam and AdamW have betas); remove momentum or choose optimizer sgd or rmsprop")
    if t.schedule == "plateau" and t.gamma == 1.0:
        raise ConfigError("[train] gamma = 1 with schedule = \"plateau\" would never lower the rate (the plateau "
                          "schedule's factor must be in (0, 1)); choose gamma < 1, or schedule = \"constant\"")
    if d.name is not None and d.path is not None:
        raise ConfigError(f"[data] gives both name ({d.name!r}) and path ({d.path!r}); give one")
    if d.val_fraction + d.test_fraction >= 1.0:
        raise ConfigError(f"[data] val_fraction + test_fraction must be < 1, got {d.val_fraction} + {d.test_fraction}")


@dataclass
class RunConfig:
    """A whole configuration: ``model``, ``data`` and ``train`` sections."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Validate a parsed TOML document; raises :class:`ConfigError` naming the first mistake."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a configuration is a table of sections, got {_type_name(data)}")
        for key in data:
            if key not in _SECTIONS:
                close = difflib.get_close_matches(key, list(_SECTIONS), n=1)
                hint = f" (did you mean [{close[0]}]?)" if close else ""
                raise ConfigError(f"unknown section [{key}]{hint}; valid sections: {', '.join(f'[{s}]' for s in _SECTIONS)}")
        cfg = cls(**{s: _section_from_dict(s, data.get(s, {})) for s in _SECTIONS})
        _check_consistency(cfg)
        return cfg

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict of every field that is set (None fields are left out: TOML has no null)."""
        out: dict[str, dict[str, Any]] = {}
        for s in _SECTIONS:
            sec = getattr(self, s)
            skip = ModelConfig.SHORT_FORM if s == "model" and self.model.explicit else ()
            out[s] = {f.name: _plain(getattr(sec, f.name)) for f in fields(sec)
                      if getattr(sec, f.name) is not None and f.name not in skip}
        return out

    def override(self, section: str, **values: Any) -> RunConfig:
        """A copy with some fields of one section replaced, validated like a file (``cfg.override("train", lr=0.01)``)."""
        if section not in _SECTIONS:
            raise ConfigError(f"unknown section {section!r}; valid sections: {', '.join(_SECTIONS)}")
        checked = _checked_values(section, values)
        if section == "model" and self.model.explicit and "layers" not in checked:
            mixed = sorted(k for k in ModelConfig.SHORT_FORM if k in checked)
            if mixed:
                raise ConfigError(f"the configured model lists its layers explicitly; {', '.join(mixed)} only apply to the "
                                  "short form (pass --hidden or --layers N to replace the layer list)")
        new = replace(self, **{section: replace(getattr(self, section), **checked)})
        _check_consistency(new)
        return new


def _plain(v: Any) -> Any:
    if isinstance(v, list):
        return [_plain(e) for e in v]
    if isinstance(v, dict):
        return {k: _plain(e) for k, e in v.items() if e is not None}
    return v


def loads_config(text: str, source: str = "<string>") -> RunConfig:
    """Parse and validate TOML text; errors start with ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not a usable configuration: arrays or tables nested too deeply") from None
    try:
        return RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML configuration file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if p.is_dir():
        raise ConfigError(f"{p} is a directory, not a config file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    return loads_config(text, str(p))


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write ``config`` as TOML (atomically: :func:`deltanet.io.atomic_write`)."""
    p = Path(path)
    text = dumps_toml(config.to_dict())
    with atomic_write(p, "w", encoding="utf-8") as f:
        f.write(text)
    return p


# ---------------------------------------------------------------------------
# A small TOML writer for the configuration's types
# ---------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _string(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-trip form: 0.001, 1e-05, 256.0
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(e) for e in v) + "]"
    if isinstance(v, Mapping):
        items = [f"{_key(k)} = {_value(e)}" for k, e in v.items() if e is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(e, Mapping) for e in v)


def dumps_toml(data: Mapping[str, Any]) -> str:
    """Write a nested dict as TOML text that ``tomllib.loads`` reads back equal.

    Supports strings, booleans, ints, floats (nan/inf included), lists, tables
    and arrays of tables (``[[model.layers]]``); tables nested inside an array
    of tables are written inline. ``None`` values are left out (TOML has no null).
    """
    lines: list[str] = []
    _emit_table(data, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _emit_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping) and not _is_table_array(v)]
    for k, v in scalars:
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        if isinstance(v, Mapping):
            sub = [*path, _key(k)]
            lines.extend(["", f"[{'.'.join(sub)}]"])
            _emit_table(v, sub, lines)
    for k, v in table.items():
        if _is_table_array(v):
            sub = [*path, _key(k)]
            for item in v:
                lines.extend(["", f"[[{'.'.join(sub)}]]"])
                for ik, iv in item.items():
                    if iv is not None:
                        lines.append(f"{_key(ik)} = {_value(iv)}")
