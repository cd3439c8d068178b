"""Configuration files: the declarative table, validation messages, and the TOML writer's round trip."""

from __future__ import annotations

import math
import tomllib

import pytest

import deltanet as dn
from deltanet.config import (
    DEFAULT_HIDDEN,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    check_value,
    dumps_toml,
    load_config,
    loads_config,
    save_config,
    section_specs,
)


def _roundtrip(data: dict) -> dict:
    return tomllib.loads(dumps_toml(data))


# -- the TOML writer -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "plain", 'quote " and backslash \\', "new\nline\ttab\r", "unicode: ü λ 数", "control \x01 \x1f \x7f", "",
    0, -7, 2**62, 0.1, 1e-05, 1e300, -2.5e-12, 256.0, math.inf, -math.inf, True, False,
    [1, 2, 3], [0.5, 1e-3], ["a", "b"], [], [[1, 2], [3]], [True, False],
])
def test_toml_writer_round_trips_scalars_and_lists(value):
    assert _roundtrip({"section": {"key": value}}) == {"section": {"key": value}}


def test_toml_writer_round_trips_nan():
    out = _roundtrip({"s": {"x": math.nan}})
    assert math.isnan(out["s"]["x"])


def test_toml_writer_quotes_keys_and_nests_tables():
    data = {"top": 1, "a b": {"c.d": "x", "inner": {"k": [1]}}, "arr": [{"type": "A", "sub": {"n": 1}}, {"type": "B"}]}
    assert _roundtrip(data) == data


def test_toml_writer_leaves_out_none():
    assert _roundtrip({"s": {"a": None, "b": 1}}) == {"s": {"b": 1}}


def test_toml_writer_rejects_unknown_types():
    with pytest.raises(TypeError, match="cannot write object"):
        dumps_toml({"s": {"x": object()}})


# -- round trips of whole configurations ------------------------------------------------------------

def test_default_config_round_trips():
    cfg = RunConfig()
    assert loads_config(dumps_toml(cfg.to_dict())) == cfg


def test_every_field_set_round_trips(tmp_path):
    cfg = RunConfig(
        model=ModelConfig(hidden=[32, 16], activation="tanh", dropout=0.3, batch_norm=True, init="xavier_uniform",
                          dtype="float64"),
        data=DataConfig(path="some dir/data \"x\".csv", target="label", task="classification", val_fraction=0.15,
                        test_fraction=0.25, standardize=False, seed=3, data_dir="/tmp/d"),
        train=TrainConfig(loss="cross_entropy", optimizer="sgd", lr=0.05, momentum=0.8, schedule="step", warmup_epochs=2,
                          step_size=5, gamma=0.5, batch_size=128, epochs=7, loss_below=1e-3, grad_norm_below=1e-5,
                          patience=4, min_delta=1e-4, restore_best=False, clip=5.0, l2=1e-3, seed=11),
    )
    path = save_config(cfg, tmp_path / "c.toml")
    assert load_config(path) == cfg
    assert not list(tmp_path.glob("*.tmp"))


def test_explicit_layers_round_trip_with_nested_containers():
    net = dn.Sequential(dn.Linear(2, 4), dn.ReLU(),
                        dn.Residual(dn.Sequential(dn.Linear(4, 4), dn.Tanh())), dn.Dropout(0.1), dn.Linear(4, 3))
    cfg = RunConfig.from_dict({"model": {"layers": net.config()["layers"]}})
    again = loads_config(dumps_toml(cfg.to_dict()))
    assert again == cfg
    assert again.model.explicit
    rebuilt = dn.build({"type": "Sequential", "layers": again.model.layers})
    assert rebuilt.config() == net.config()


def test_explicit_layers_do_not_write_short_form_keys():
    cfg = RunConfig.from_dict({"model": {"layers": [{"type": "Linear", "in_features": 2, "out_features": 3}]}})
    assert set(cfg.to_dict()["model"]) == {"layers"}


# -- the table itself -----------------------------------------------------------------------------

@pytest.mark.parametrize("section", ["model", "data", "train"])
def test_every_field_has_help_and_a_valid_default(section):
    for key, (spec, default) in section_specs(section).items():
        assert spec.help, key
        assert check_value(section, key, default) == default


# -- validation messages --------------------------------------------------------------------------

@pytest.mark.parametrize("doc, fragments", [
    ({"train": {"learning_rate": 0.1}}, ["unknown key 'learning_rate'", "[train]", "valid keys:", "lr"]),
    ({"train": {"epoch": 3}}, ["unknown key 'epoch'", "did you mean 'epochs'?"]),
    ({"model": {"hiden": [3]}}, ["unknown key 'hiden' in [model]", "did you mean 'hidden'?"]),
    ({"trian": {}}, ["unknown section [trian]", "did you mean [train]?", "[model], [data], [train]"]),
    ({"train": {"lr": -0.1}}, ["[train] lr must be > 0, got -0.1"]),
    ({"train": {"lr": 0}}, ["[train] lr must be > 0, got 0"]),
    ({"train": {"lr": float("inf")}}, ["[train] lr must be a finite number > 0, got inf"]),
    ({"train": {"epochs": 0}}, ["[train] epochs must be an int >= 1, got 0"]),
    ({"train": {"epochs": "ten"}}, ["[train] epochs must be an int >= 1, got 'ten' (str)"]),
    ({"train": {"batch_size": 1.5}}, ["[train] batch_size must be an int >= 1, got 1.5 (float)"]),
    ({"train": {"l2": True}}, ["[train] l2 must be a number >= 0, got True (bool)"]),
    ({"model": {"dropout": 1.0}}, ["[model] dropout must be in [0, 1), got 1.0"]),
    ({"model": {"batch_norm": "yes"}}, ["[model] batch_norm must be True or False, got 'yes' (str)"]),
    ({"model": {"activation": "rleu"}}, ["[model] activation must be one of", "did you mean 'relu'?"]),
    ({"model": {"hidden": [64, 0]}}, ["[model] hidden must be an int or a sequence of ints, each >= 1", "got 0 in [64, 0]"]),
    ({"model": {"hidden": [64, "a"]}}, ["[model] hidden must be an int or a sequence of ints", "got 'a' (str) in [64, 'a']"]),
    ({"model": {"dtype": "float16"}}, ["[model] dtype must be 'float32' or 'float64', got 'float16'"]),
    ({"train": {"schedule": "plateau", "gamma": 1.0}}, ["gamma = 1", "plateau"]),
    ({"model": {"layers": -1}}, ["layers (a depth) must be >= 0"]),
    ({"model": {"layers": 2, "hidden": [3]}}, ["layers = 2 but hidden lists 1 widths"]),
    ({"model": {"layers": [{"type": "ReLU"}], "dropout": 0.1}}, ["lists its layers explicitly", "dropout"]),
    ({"model": {"layers": [{"type": "Lienar"}]}}, ["unknown layer type 'Lienar'", "did you mean 'Linear'?"]),
    ({"model": {"layers": [{"in_features": 3}]}}, ["#1 has no 'type'"]),
    ({"model": {"layers": [{"type": "Linear", "in_feature": 3}]}}, ["unknown key 'in_feature'", "(Linear)",
                                                                    "did you mean 'in_features'?"]),
    ({"data": {"val_fraction": 0.5, "test_fraction": 0.5}}, ["val_fraction + test_fraction must be < 1"]),
    ({"data": {"name": "digits", "path": "x.csv"}}, ["gives both name"]),
    ({"data": {"task": "clustering"}}, ["[data] task must be one of: classification, regression"]),
    ({"train": {"optimizer": "adamm"}}, ["did you mean 'adam'?"]),
    ({"train": 3}, ["[train] must be a table"]),
])
def test_mistakes_are_named_precisely(doc, fragments):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(doc)
    msg = str(info.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg


def test_unknown_key_lists_every_valid_key():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"data": {"nmae": "x"}})
    for key in section_specs("data"):
        assert key in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[train]\nlr = 1\nepohcs = 3\n")
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key 'epohcs'"):
        load_config(typo)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_no_hidden_layer_and_a_single_width():
    # hidden = [] is a network without hidden layers (a linear model), as layers = 0 and hidden_layer_sizes=()
    assert loads_config("[model]\nhidden = []\n").model.resolved(4, 3).layers == 0
    assert loads_config("[model]\nhidden = 64\n").model.hidden == [64]


def test_ints_become_floats_for_float_fields():
    cfg = RunConfig.from_dict({"train": {"lr": 1, "l2": 0}})
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    assert isinstance(cfg.train.l2, float)


# -- overrides and resolution -----------------------------------------------------------------------

def test_override_is_validated_like_a_file():
    cfg = RunConfig()
    assert cfg.override("train", lr=0.01).train.lr == 0.01
    assert cfg.train.lr is None  # the original is unchanged
    with pytest.raises(ConfigError, match=r"lr must be > 0, got -1\.0"):
        cfg.override("train", lr=-1.0)
    with pytest.raises(ConfigError, match="unknown key 'lrr'"):
        cfg.override("train", lrr=0.1)


def test_override_of_an_explicit_model():
    cfg = RunConfig.from_dict({"model": {"layers": [{"type": "Linear", "in_features": 2, "out_features": 3}]}})
    with pytest.raises(ConfigError, match="only apply to the short form"):
        cfg.override("model", dropout=0.5)
    replaced = cfg.override("model", hidden=[8], layers=None)
    assert replaced.model.hidden == [8] and not replaced.model.explicit


@pytest.mark.parametrize("model, expected", [
    (ModelConfig(), DEFAULT_HIDDEN),
    (ModelConfig(hidden=[7, 5]), [7, 5]),
    (ModelConfig(layers=3), dn.geometric_hidden_sizes(64, 10, 3)),
    (ModelConfig(layers=0), []),
    (ModelConfig(hidden=[]), []),
])
def test_hidden_sizes_follow_the_heuristic_for_a_depth(model, expected):
    assert model.hidden_sizes(64, 10) == expected
    resolved = model.resolved(64, 10)
    if expected:
        assert resolved.hidden == expected and resolved.layers is None
    else:  # no hidden layer is written as layers = 0
        assert resolved.hidden is None and resolved.layers == 0


def test_learning_rate_and_loss_defaults():
    assert TrainConfig(optimizer="sgd").learning_rate() == 0.05
    assert TrainConfig(optimizer="adam", lr=0.02).learning_rate() == 0.02
    for lr in (TrainConfig(optimizer=o).learning_rate() for o in ("sgd", "adam", "adamw", "rmsprop")):
        assert 0.001 <= lr <= 0.1  # the reference's advice
    assert TrainConfig().loss_name("classification") == "cross_entropy"
    assert TrainConfig().loss_name("regression") == "mse"


def _module_samples() -> list:
    samples = [dn.Linear(3, 4, bias=False, init="xavier_uniform"), dn.ReLU(), dn.LeakyReLU(0.2), dn.Tanh(), dn.Sigmoid(),
               dn.Identity(), dn.Softmax(), dn.Dropout(0.3), dn.BatchNorm(4, eps=1e-3, momentum=0.2),
               dn.Residual(dn.Sequential(dn.Linear(4, 4), dn.ReLU())),
               dn.Residual(dn.Linear(4, 2), projection=dn.Linear(4, 2, bias=False)),
               dn.Sequential(dn.Linear(2, 2), dn.Sequential(dn.Tanh()))]
    optional = {
        "GELU": lambda: dn.GELU(), "LayerNorm": lambda: dn.LayerNorm(4),
        "MultiHeadSelfAttention": lambda: dn.MultiHeadSelfAttention(8, 2, causal=True),
        "TransformerEncoderBlock": lambda: dn.TransformerEncoderBlock(8, 2, d_ff=16, dropout=0.1),
        "DenseBlock": lambda: dn.DenseBlock([dn.Linear(4, 2), dn.Linear(6, 2)]),
        "PositionalEmbedding": lambda: dn.PositionalEmbedding(10, 8),
        "SinusoidalPositionalEncoding": lambda: dn.SinusoidalPositionalEncoding(8),
        "ClassToken": lambda: dn.ClassToken(8), "MeanPool": lambda: dn.MeanPool(), "TokenPool": lambda: dn.TokenPool(1),
    }
    for name, make in optional.items():
        if hasattr(dn, name):
            samples.append(make())
    return samples


@pytest.mark.parametrize("module", _module_samples(), ids=lambda m: type(m).__name__)
def test_every_module_can_be_written_as_a_layer_table(module):
    doc = {"model": {"layers": [module.config()]}}
    cfg = loads_config(dumps_toml(RunConfig.from_dict(doc).to_dict()))
    rebuilt = dn.build(cfg.model.layers[0])
    assert type(rebuilt) is type(module)
    assert _without_none(rebuilt.config()) == _without_none(module.config())  # TOML has no null


def _without_none(v):
    if isinstance(v, dict):
        return {k: _without_none(e) for k, e in v.items() if e is not None}
    if isinstance(v, list):
        return [_without_none(e) for e in v]
    return v
