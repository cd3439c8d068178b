"""deltanet.constraints: one table, three front ends.

Every hyper-parameter of :data:`deltanet.constraints.CONSTRAINTS` is taken by
the library (Trainer, optimizers, schedules, stopping criteria, modules), by
the TOML configuration and/or by the scikit-learn estimators. For each, the
same bad value is refused by every front end that takes it, with the same
range in the message and the front end's own name for the parameter; the same
good value is accepted and normalized to the same Python value and type.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import deltanet as dn
from deltanet import constraints as C
from deltanet.config import ConfigError, RunConfig, dumps_toml, loads_config, section_specs
from deltanet.constraints import CONSTRAINTS, InvalidParameterError, ParameterTypeError
from deltanet.data.split import train_val_test_split
from deltanet.optim import SGD, Adam, ExponentialLR, RMSprop, StepLR, get_schedule
from deltanet.optim.base import check_int, check_positive, check_unit_interval
from deltanet.training import EarlyStopping

X = np.random.default_rng(0).normal(size=(30, 3))
Y = (X[:, 0] > 0).astype(np.int64)


def _params() -> list[dn.Parameter]:
    return dn.mlp([3, 4, 2], rng=0).parameters()


def _trainer(**kw: Any) -> dn.Trainer:
    return dn.Trainer(dn.mlp([3, 4, 2], rng=0), **kw)


def _none(*_: Any) -> None:
    """For a call site that accepts the value without keeping it (a fit, a split, a module built)."""
    return None


@dataclass
class FrontEnds:
    """Where one table entry is taken: library call sites (the name they give the parameter, a function of
    the value returning the normalized value or None where nothing keeps it), the config key (section, key)
    with the other keys it needs, and the estimators' parameter name."""

    library: list[tuple[str, Callable[[Any], Any]]] = field(default_factory=list)
    config: tuple[str, str] | None = None
    config_extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    sklearn: str | None = None


FRONT_ENDS: dict[str, FrontEnds] = {
    "lr": FrontEnds([("lr", lambda v: SGD(_params(), lr=v).lr), ("lr", lambda v: _trainer(lr=v).optimizer.lr)],
                    ("train", "lr"), sklearn="learning_rate_init"),
    "momentum": FrontEnds([("momentum", lambda v: SGD(_params(), lr=0.1, momentum=v).momentum),
                           ("momentum", lambda v: RMSprop(_params(), momentum=v).momentum)],
                          ("train", "momentum"), {"train": {"optimizer": "sgd"}}, sklearn="momentum"),
    "nesterov": FrontEnds([("nesterov", lambda v: SGD(_params(), lr=0.1, momentum=0.9, nesterov=v).nesterov)],
                          sklearn="nesterovs_momentum"),
    "beta1": FrontEnds([("betas[0]", lambda v: Adam(_params(), betas=(v, 0.999)).betas[0])], sklearn="beta_1"),
    "beta2": FrontEnds([("betas[1]", lambda v: Adam(_params(), betas=(0.9, v)).betas[1])], sklearn="beta_2"),
    "eps": FrontEnds([("eps", lambda v: Adam(_params(), eps=v).eps), ("eps", lambda v: RMSprop(_params(), eps=v).eps)],
                     sklearn="epsilon"),
    "rho": FrontEnds([("alpha", lambda v: RMSprop(_params(), alpha=v).alpha)], sklearn="rho"),
    "weight_decay": FrontEnds([("weight_decay", lambda v: SGD(_params(), weight_decay=v).weight_decay),
                               ("weight_decay", lambda v: dn.optim.AdamW(_params(), weight_decay=v).weight_decay)],
                              sklearn="alpha"),
    "l2": FrontEnds([("l2", lambda v: _trainer(l2=v).l2)], ("train", "l2"), sklearn="alpha"),
    "batch_size": FrontEnds([("batch_size", lambda v: _trainer(batch_size=v).batch_size)], ("train", "batch_size"),
                            sklearn="batch_size"),
    "epochs": FrontEnds([("epochs", lambda v: _trainer(epochs=v).epochs)], ("train", "epochs"), sklearn="max_iter"),
    "eval_batch_size": FrontEnds([("eval_batch_size", lambda v: _trainer(eval_batch_size=v).eval_batch_size),
                                  ("batch_size", lambda v: _none(_trainer().predict(X, batch_size=v)))]),
    "shuffle": FrontEnds([("shuffle", lambda v: _trainer(shuffle=v).shuffle)], sklearn="shuffle"),
    "seed": FrontEnds([("seed", lambda v: _trainer(seed=v).seed)], ("train", "seed")),
    "clip_norm": FrontEnds([("clip_norm", lambda v: _trainer(clip_norm=v).clip_norm),
                            ("max_norm", lambda v: _none(dn.optim.clip_grad_norm(_params(), v)))],
                           ("train", "clip"), sklearn="clip_norm"),
    "loss_below": FrontEnds([("stop_loss_below", lambda v: _trainer(stop_loss_below=v).criteria[0].threshold)],
                            ("train", "loss_below")),
    "grad_norm_below": FrontEnds([("stop_grad_norm_below", lambda v: _trainer(stop_grad_norm_below=v).criteria[0].threshold)],
                                 ("train", "grad_norm_below")),
    "patience": FrontEnds([("patience", lambda v: EarlyStopping(patience=v).patience),
                           ("patience", lambda v: _trainer(early_stopping={"patience": v}).early_stopping.patience)],
                          ("train", "patience"), sklearn="n_iter_no_change"),
    "min_delta": FrontEnds([("min_delta", lambda v: EarlyStopping(min_delta=v).min_delta),
                            ("min_delta", lambda v: dn.optim.ReduceLROnPlateau(SGD(_params()), min_delta=v).min_delta)],
                           ("train", "min_delta"), sklearn="tol"),
    "restore_best": FrontEnds([("restore_best", lambda v: EarlyStopping(restore_best=v).restore_best)],
                              ("train", "restore_best")),
    "validation_fraction": FrontEnds([("validation_fraction", lambda v: _none(_trainer(epochs=1).fit(X, Y, validation_fraction=v))),
                                      ("val_fraction", lambda v: _none(train_val_test_split(X, Y, v, 0.0)))],
                                     ("data", "val_fraction"), sklearn="validation_fraction"),
    "test_fraction": FrontEnds([("test_fraction", lambda v: _none(train_val_test_split(X, Y, 0.0, v)))],
                               ("data", "test_fraction")),
    "step_size": FrontEnds([("step_size", lambda v: StepLR(SGD(_params()), v).step_size),
                            ("step_size", lambda v: _none(_trainer(schedule="step", schedule_kwargs={"step_size": v})))],
                           ("train", "step_size")),
    "gamma": FrontEnds([("gamma", lambda v: ExponentialLR(SGD(_params()), v).gamma),
                        ("gamma", lambda v: StepLR(SGD(_params()), 2, gamma=v).gamma)], ("train", "gamma")),
    "warmup_epochs": FrontEnds([("warmup_epochs", lambda v: getattr(get_schedule("constant", SGD(_params()), warmup_epochs=v),
                                                                    "warmup_epochs", 0)),
                                ("warmup_epochs", lambda v: _none(_trainer(schedule="constant",
                                                                           schedule_kwargs={"warmup_epochs": v})))],
                               ("train", "warmup_epochs")),
    "hidden_sizes": FrontEnds([], ("model", "hidden"), sklearn="hidden_layer_sizes"),
    "activation": FrontEnds([], ("model", "activation"), sklearn="activation"),
    "dropout": FrontEnds([("Dropout: rate", lambda v: dn.Dropout(v).rate),
                          ("dropout", lambda v: _none(dn.mlp([3, 4, 2], dropout=v)))],
                         ("model", "dropout"), sklearn="dropout"),
    "batch_norm": FrontEnds([("batch_norm", lambda v: any(isinstance(m, dn.BatchNorm)
                                                          for m in dn.mlp([3, 4, 2], batch_norm=v).modules()))],
                            ("model", "batch_norm"), sklearn="batch_norm"),
    "init": FrontEnds([], ("model", "init"), sklearn="weight_init"),
    "dtype": FrontEnds([], ("model", "dtype"), sklearn="dtype"),
    "optimizer": FrontEnds([], ("train", "optimizer"), sklearn="solver"),
}

_NAN, _INF = float("nan"), float("inf")

#: key -> values every front end taking the key refuses (each TOML-writable).
BAD: dict[str, list[Any]] = {
    "lr": [-0.1, 0.0, _NAN, _INF, "0.1", True],
    "momentum": [1.0, 1.5, -0.1, "x"],
    "nesterov": ["yes", 1],
    "beta1": [1.0, -0.5], "beta2": [1.0, 2], "eps": [0.0, -1e-8], "rho": [1.0, -0.1],
    "weight_decay": [-1, _NAN], "l2": [-0.5, _INF, False],
    "batch_size": [0, -3, 2.5, "ten", True],
    "epochs": [0, 2.5, "ten", False],
    "eval_batch_size": [0, 1.5],
    "shuffle": ["no", 0],
    "seed": [-1, 1.5, "s"],
    "clip_norm": [0.0, -1.0, "big"],
    "loss_below": [0.0, -1e-3, _INF], "grad_norm_below": [0, -2.0],
    "patience": [0, -1, 1.5],
    "min_delta": [-1e-4, _NAN, "0"],
    "restore_best": ["true", 1],
    "validation_fraction": [1.0, -0.1, 1.5],
    "test_fraction": [1.0, -0.2],
    "step_size": [0, 1.5], "gamma": [0.0, 1.5, -0.5], "warmup_epochs": [-1, 0.5],
    "hidden_sizes": [[64, 0], [8, -1], "big", [8, True]],
    "activation": ["softmax", "rleu", 3],
    "dropout": [1.0, -0.1, 1.5],
    "batch_norm": ["yes", 1],
    "init": ["ones", 0],
    "dtype": ["float16", "int32"],
    "optimizer": ["newton", "Adam"],
}

#: key -> (value, its normalized form) that every front end taking the key accepts.
GOOD: dict[str, list[tuple[Any, Any]]] = {
    "lr": [(0.5, 0.5), (1, 1.0), (np.float32(0.25), 0.25)],
    "momentum": [(0.0, 0.0), (0.9, 0.9), (np.float64(0.5), 0.5)],
    "nesterov": [(True, True), (np.bool_(False), False)],
    "beta1": [(0.0, 0.0), (0.5, 0.5)], "beta2": [(0.999, 0.999), (np.float64(0.9), 0.9)],
    "eps": [(1e-8, 1e-8), (1, 1.0)], "rho": [(0.0, 0.0), (0.99, 0.99)],
    "weight_decay": [(0, 0.0), (0.01, 0.01)], "l2": [(0, 0.0), (np.float64(1e-4), 1e-4)],
    "batch_size": [(1, 1), (8.0, 8), (np.int64(4), 4)],
    "epochs": [(1, 1), (3.0, 3), (np.int32(2), 2)],
    "eval_batch_size": [(7, 7), (7.0, 7)],
    "shuffle": [(False, False), (np.bool_(True), True)],
    "seed": [(0, 0), (5.0, 5), (np.uint64(7), 7)],
    "clip_norm": [(1, 1.0), (0.5, 0.5)],
    "loss_below": [(1e-3, 1e-3), (2, 2.0)], "grad_norm_below": [(0.1, 0.1)],
    "patience": [(1, 1), (4.0, 4), (np.int64(3), 3)],
    "min_delta": [(0, 0.0), (1e-3, 1e-3)],
    "restore_best": [(False, False), (True, True)],
    "validation_fraction": [(0.0, 0.0), (0.25, 0.25)],
    "test_fraction": [(0.0, 0.0), (0.3, 0.3)],
    "step_size": [(1, 1), (3.0, 3)], "gamma": [(1.0, 1.0), (0.5, 0.5)], "warmup_epochs": [(0, 0), (2.0, 2)],
    "hidden_sizes": [([8, 4], (8, 4)), (6, (6,)), ([], ()), ([np.int64(5), 3.0], (5, 3))],
    "activation": [("tanh", "tanh"), ("sigmoid", "sigmoid"), ("logistic", "logistic")],
    "dropout": [(0.0, 0.0), (0.5, 0.5)],
    "batch_norm": [(True, True), (False, False)],
    "init": [("he_normal", "he_normal"), ("xavier", "xavier")],
    "dtype": [("float64", np.dtype("float64")), ("f4", np.dtype("float32"))],
    "optimizer": [("sgd", "sgd"), ("rmsprop", "rmsprop")],
}


def _canon(key: str, value: Any) -> Any:
    """A front end's normalized value in the table's form (the config keeps lists and dtype names)."""
    if isinstance(value, (list, tuple)):
        assert all(type(v) is int for v in value)
        return tuple(value)
    if key == "dtype" and value is not None:
        return np.dtype(value)
    return value


def _toml_writable(value: Any) -> bool:
    if isinstance(value, list):
        return all(_toml_writable(v) for v in value)
    return type(value) in (bool, int, float, str)


def _load_config(key: str, value: Any) -> Any:
    """The config front end: a TOML snippet through loads_config (an override for NumPy scalars, which TOML cannot
    hold), and the value it keeps."""
    section, name = FRONT_ENDS[key].config
    extra = FRONT_ENDS[key].config_extra
    if _toml_writable(value):
        doc = {s: dict(extra.get(s, {})) for s in ("model", "data", "train")}
        doc[section][name] = value
        cfg = loads_config(dumps_toml(doc), "snippet.toml")
    else:
        cfg = RunConfig()
        for s, values in extra.items():
            cfg = cfg.override(s, **values)
        cfg = cfg.override(section, **{name: value})
    return getattr(getattr(cfg, section), name)


def _fit_estimator(param: str, value: Any) -> Any:
    """The estimator front end: MLPClassifier.fit, and the value it validated."""
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from deltanet.sklearn import MLPClassifier

    kw = {"hidden_layer_sizes": (4,), "max_iter": 1, "random_state": 0, param: value}
    est = MLPClassifier(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    return est._validated[param]


def _expected_fragments(key: str, value: Any) -> tuple[str, str]:
    """What every refusal of ``value`` for ``key`` says: the range (or the allowed values) and the value."""
    c = CONSTRAINTS[key]
    allowed = c.range_text() or c.describe()
    if key == "hidden_sizes" and not isinstance(value, str):
        bad = next(v for v in value if isinstance(v, bool) or v < 1)
        return allowed, f"got {bad!r}" if isinstance(bad, bool) else f"got {bad} in "
    return allowed, repr(value) if isinstance(value, str) else str(value)


BAD_CASES = [(k, v) for k, values in BAD.items() for v in values]
GOOD_CASES = [(k, v, n) for k, values in GOOD.items() for v, n in values]


def _case_id(case: Any) -> str:
    return repr(case)[:40]


def test_the_cases_cover_the_whole_table():
    assert set(FRONT_ENDS) == set(CONSTRAINTS) == set(BAD) == set(GOOD)
    for key, fe in FRONT_ENDS.items():
        sites = len(fe.library) + (fe.config is not None) + (fe.sklearn is not None)
        assert sites >= 2, key                       # shared by two call sites at least


@pytest.mark.parametrize(("key", "value"), BAD_CASES, ids=_case_id)
def test_a_bad_value_is_refused_by_every_front_end_with_the_same_range(key, value):
    fe = FRONT_ENDS[key]
    allowed, shown = _expected_fragments(key, value)
    wrong_type = False
    try:
        CONSTRAINTS[key].check(key, value)
    except ParameterTypeError:
        wrong_type = True
    except InvalidParameterError:
        pass
    else:
        pytest.fail(f"the table accepts {value!r} for {key}")
    messages = []
    for name, build in fe.library:
        with pytest.raises(ValueError) as info:
            build(value)
        assert isinstance(info.value, InvalidParameterError)
        assert isinstance(info.value, TypeError) == wrong_type
        messages.append((f"{name} must be ", str(info.value)))
    if fe.config is not None:
        section, name = fe.config
        with pytest.raises(ConfigError) as info:
            _load_config(key, value)
        messages.append((f"snippet.toml: [{section}] {name} must be ", str(info.value)))
    if fe.sklearn is not None:
        with pytest.raises(ValueError) as info:
            _fit_estimator(fe.sklearn, value)
        assert isinstance(info.value, TypeError) == wrong_type
        messages.append((f"{fe.sklearn} must be ", str(info.value)))
    assert messages
    for prefix, msg in messages:
        assert prefix in msg, msg
        assert allowed in msg, msg
        assert shown in msg, msg


@pytest.mark.parametrize(("key", "value", "normalized"), GOOD_CASES, ids=_case_id)
def test_a_good_value_is_accepted_and_normalized_alike(key, value, normalized):
    fe = FRONT_ENDS[key]
    got = [("table", CONSTRAINTS[key].check(key, value))]
    for name, build in fe.library:
        got.append((name, build(value)))
    if fe.config is not None:
        got.append(("config", _load_config(key, value)))
    if fe.sklearn is not None:
        got.append((fe.sklearn, _fit_estimator(fe.sklearn, value)))
    for where, v in got:
        if v is None:                                 # accepted, the value is not kept (fit, a split)
            continue
        v = _canon(key, v)
        assert v == normalized and type(v) is type(normalized), (where, v)


# -- what the table holds ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "text"), [
    ("lr", "> 0"), ("momentum", "in [0, 1)"), ("beta1", "in [0, 1)"), ("beta2", "in [0, 1)"), ("eps", "> 0"),
    ("rho", "in [0, 1)"), ("weight_decay", ">= 0"), ("l2", ">= 0"), ("dropout", "in [0, 1)"), ("batch_size", ">= 1"),
    ("epochs", ">= 1"), ("eval_batch_size", ">= 1"), ("clip_norm", "> 0"), ("patience", ">= 1"), ("min_delta", ">= 0"),
    ("validation_fraction", "in [0, 1)"), ("test_fraction", "in [0, 1)"), ("step_size", ">= 1"), ("gamma", "in (0, 1]"),
    ("warmup_epochs", ">= 0"), ("seed", ">= 0"), ("loss_below", "> 0"), ("grad_norm_below", "> 0"),
])
def test_the_ranges(key, text):
    assert CONSTRAINTS[key].range_text() == text


def test_the_choices_are_the_librarys_names():
    from deltanet.modules.activations import ACTIVATIONS
    from deltanet.optim import OPTIMIZERS

    assert set(C.HIDDEN_ACTIVATIONS) <= set(ACTIVATIONS) - {"softmax"}     # mlp() also builds gelu
    assert C.OPTIMIZER_NAMES == tuple(OPTIMIZERS)
    assert set(C.INITIALIZER_NAMES) == set(dn.init.INITIALIZERS) | set(dn.init.ALIASES)
    for activation in C.HIDDEN_ACTIVATIONS:                  # mlp builds every activation the table allows
        assert dn.mlp([3, 4, 2], activation=activation, rng=0)
    for init in C.INITIALIZER_NAMES:
        assert dn.mlp([3, 4, 2], init=init, rng=0)


def test_the_config_and_the_estimators_use_the_table_entries_themselves():
    shared = {("model", "hidden"): "hidden_sizes", ("data", "val_fraction"): "validation_fraction", ("train", "clip"): "clip_norm"}
    n_shared = 0
    for section in ("model", "data", "train"):
        for key, (spec, _) in section_specs(section).items():
            table_key = shared.get((section, key), key)
            if table_key in CONSTRAINTS:
                assert spec.constraint is CONSTRAINTS[table_key], (section, key)
                assert spec.kind == CONSTRAINTS[table_key].kind
                n_shared += 1
    assert n_shared == 25
    pytest.importorskip("sklearn")
    from deltanet.sklearn._params import CONSTRAINTS as SK

    for param, key in [("learning_rate_init", "lr"), ("alpha", "l2"), ("max_iter", "epochs"), ("tol", "min_delta"),
                       ("momentum", "momentum"), ("beta_1", "beta1"), ("beta_2", "beta2"), ("epsilon", "eps"),
                       ("rho", "rho"), ("dropout", "dropout"), ("validation_fraction", "validation_fraction"),
                       ("hidden_layer_sizes", "hidden_sizes"), ("activation", "activation"),
                       ("shuffle", "shuffle"), ("batch_norm", "batch_norm"),
                       ("nesterovs_momentum", "nesterov")]:
        assert SK[param] is CONSTRAINTS[key], param
    assert SK["clip_norm"].inner is CONSTRAINTS["clip_norm"] and SK["weight_init"].inner is CONSTRAINTS["init"]
    assert SK["dtype"].inner is CONSTRAINTS["dtype"]                     # None: follow the data, as scikit-learn
    assert SK["solver"].choices == (*CONSTRAINTS["optimizer"].choices, "lbfgs")   # and the full-batch solver
    assert CONSTRAINTS["patience"] in SK["n_iter_no_change"].alternatives
    assert CONSTRAINTS["batch_size"] in SK["batch_size"].alternatives


# -- the ranges that changed when the front ends were joined ----------------------------------------------------

def test_lr_has_no_upper_bound_in_a_config_any_more():
    assert loads_config("[train]\nlr = 20\n").train.lr == 20.0          # was (0, 10]
    assert SGD(_params(), lr=20).lr == 20.0


def test_eps_zero_is_refused_by_the_optimizers_as_by_the_estimators():
    # with eps = 0 a coordinate whose gradient has stayed 0 gets m / sqrt(v) = 0 / 0
    for make in (lambda: Adam(_params(), eps=0), lambda: dn.optim.AdamW(_params(), eps=0.0),
                 lambda: RMSprop(_params(), eps=0)):
        with pytest.raises(ValueError, match=r"^eps must be > 0, got 0"):
            make()


def test_momentum_one_is_refused_by_the_estimators_at_validation():
    with pytest.raises(ValueError, match=r"^momentum must be in \[0, 1\), got 1\.0$"):
        _fit_estimator("momentum", 1.0)


def test_gamma_one_is_a_constant_rate_except_for_the_plateau_schedule():
    assert loads_config("[train]\nschedule = \"step\"\ngamma = 1.0\n").train.gamma == 1.0     # was (0, 1)
    opt = SGD(_params(), lr=0.1)
    schedule = StepLR(opt, 1, gamma=1.0)
    for _ in range(3):
        schedule.step()
    assert opt.lr == 0.1
    with pytest.raises(ConfigError, match=r"gamma = 1 with schedule = \"plateau\" would never lower the rate"):
        loads_config("[train]\nschedule = \"plateau\"\ngamma = 1.0\n")


def test_no_hidden_layer_is_a_linear_model_in_every_front_end():
    cfg = loads_config("[model]\nhidden = []\n")
    assert cfg.model.hidden_sizes(3, 2) == [] and cfg.model.resolved(3, 2).layers == 0
    assert _fit_estimator("hidden_layer_sizes", ()) == ()


# -- the constraint types -------------------------------------------------------------------------------------

def test_refusals_are_value_errors_and_wrong_types_type_errors_too():
    with pytest.raises(InvalidParameterError) as info:
        C.Real(0, 1).check("p", 2.0)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, TypeError)
    assert str(info.value) == "p must be in [0, 1], got 2.0"
    with pytest.raises(ParameterTypeError) as info:
        C.Real(0, 1).check("p", "2")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert str(info.value) == "p must be a number in [0, 1], got '2' (str)"


@pytest.mark.parametrize(("constraint", "value", "message"), [
    (C.Real(0, closed="neither"), -1, "x must be > 0, got -1"),
    (C.Real(0, 1, closed="right"), 0.0, "x must be in (0, 1], got 0.0"),
    (C.Real(high=1, closed="neither"), 1.0, "x must be < 1, got 1.0"),
    (C.Real(0), _NAN, "x must be a finite number >= 0, got nan"),
    (C.Real(), _INF, "x must be a finite number, got inf"),
    (C.Integer(1), 0, "x must be an int >= 1, got 0"),
    (C.Integer(0, 3), 4, "x must be an int in [0, 3], got 4"),
    (C.Integer(1), np.float64(2.5), "x must be an int >= 1, got np.float64(2.5) (float64)"),
    (C.Integer(1), _INF, "x must be an int >= 1, got inf (float)"),
    (C.Boolean(), "true", "x must be True or False, got 'true' (str)"),
    (C.OneOf(("sgd", "adam")), "adma", "x must be one of: sgd, adam; got 'adma' (did you mean 'adam'?)"),
    (C.OneOf(("sgd", "adam")), None, "x must be one of: sgd, adam; got None (NoneType)"),
    (C.Sizes(), [4, 0], "x must be an int or a sequence of ints, each >= 1 (e.g. (100,) or (64, 32)), got 0 in [4, 0]"),
    (C.Dtype(), "float16", "x must be 'float32' or 'float64', got 'float16' (float16)"),
    (C.Nullable(C.Real(0, closed="neither")), 0, "x must be None or > 0, got 0"),
    (C.AnyOf(C.Literal("auto"), C.Integer(1)), 0, "x must be 'auto' or an int >= 1, got 0"),
    (C.AnyOf(C.Literal("auto"), C.Integer(1)), "all", "x must be 'auto' or an int >= 1, got 'all' (str)"),
    (C.Text(), 3, "x must be a string, got 3 (int)"),
])
def test_messages_name_the_parameter_the_allowed_values_and_the_value(constraint, value, message):
    with pytest.raises(InvalidParameterError) as info:
        constraint.check("x", value)
    assert str(info.value) == message


@pytest.mark.parametrize(("constraint", "value", "normalized"), [
    (C.Real(0), 3, 3.0), (C.Real(0), np.float32(0.5), 0.5), (C.Real(0), np.int8(2), 2.0),
    (C.Integer(0), 3.0, 3), (C.Integer(0), np.uint8(3), 3), (C.Integer(0), np.float64(4.0), 4),
    (C.Boolean(), np.True_, True), (C.Sizes(), np.array([3, 2]), (3, 2)), (C.Sizes(), (), ()),
    (C.Dtype(), np.float32, np.dtype("float32")), (C.Nullable(C.Integer(0)), None, None),
    (C.AnyOf(C.Integer(1), C.Literal(math.inf, "numpy.inf")), np.inf, math.inf),
    (C.AnyOf(C.Literal("auto"), C.Integer(1)), "auto", "auto"),
])
def test_normalization(constraint, value, normalized):
    got = constraint.check("x", value)
    assert got == normalized and type(got) is type(normalized)


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_a_boolean_is_never_a_number(value):
    for constraint in (C.Real(), C.Integer(), C.Sizes(), C.Dtype()):
        with pytest.raises(ParameterTypeError):
            constraint.check("x", value)


def test_the_optimizer_checks_are_thin_wrappers_of_the_types():
    assert check_positive("a", 2) == 2.0 and check_positive("a", 0, allow_zero=True) == 0.0
    assert check_unit_interval("g", 1.0, closed_right=True) == 1.0
    assert check_int("n", 3.0) == 3
    for call, message in [(lambda: check_positive("a", 0), "a must be > 0, got 0"),
                          (lambda: check_unit_interval("g", 0.0, open_left=True), "g must be in (0, 1), got 0.0"),
                          (lambda: check_unit_interval("g", 1.5, closed_right=True, open_left=True), "g must be in (0, 1], got 1.5"),
                          (lambda: check_int("n", -1), "n must be an int >= 0, got -1"),
                          (lambda: check_int("n", True, minimum=1), "n must be an int >= 1, got True (bool)")]:
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert str(info.value) == message
