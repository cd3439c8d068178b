"""Property tests (hypothesis): random architectures, shapes and settings.

- random MLPs (widths, depth, activation, batch norm, batch size) pass
  ``dn.gradcheck`` in float64;
- ``dn.save`` then ``dn.load`` is the identity (config, every tensor bit for
  bit, the same predictions), float32 and float64;
- a run cut at any epoch and resumed from its checkpoint ends with the weights
  and history of the uninterrupted run, bit for bit (shuffling, dropout, Adam
  moments, schedule);
- a configuration written as TOML and read back is the same run configuration.

Examples are few (``max_examples``) so the file runs in seconds; the seed is
derived from the test, so failures reproduce.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import deltanet as dn  # noqa: E402
from deltanet.config import ConfigError, RunConfig, dumps_toml, loads_config  # noqa: E402
from deltanet.training import ModelCheckpoint  # noqa: E402

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

widths = st.lists(st.integers(1, 6), min_size=0, max_size=3)


@FAST
@given(n_in=st.integers(1, 5), hidden=widths, n_out=st.integers(1, 4), batch=st.integers(2, 6),
       activation=st.sampled_from(["tanh", "sigmoid", "gelu", "identity"]), batch_norm=st.booleans(),
       seed=st.integers(0, 2**16))
def test_random_mlps_pass_gradcheck(n_in, hidden, n_out, batch, activation, batch_norm, seed):
    # gradients that are exactly 0 in exact arithmetic make a relative error of finite-difference noise: batch
    # norm over 2 rows gives +-1 whatever the input; a width-1 layer before it cancels its weight; a batch norm
    # after a linear one (identity activation) cancels the first one's beta
    assume(not batch_norm or (batch >= 4 and n_in >= 2 and all(h >= 2 for h in hidden) and activation != "identity"))
    net = dn.mlp([n_in, *hidden, n_out], activation, batch_norm=batch_norm, rng=seed, dtype=np.float64)
    x = np.random.default_rng(seed).standard_normal((batch, n_in))
    # tol 1e-4, not tests/test_gradcheck.py's 1e-6: random nets have saturated units whose tiny gradients carry
    # round-off of ~1e-16 / (eps |g|) in the differences; a wrong backward is off by O(1)
    result = dn.gradcheck(net, x, training=batch_norm, raise_on_fail=False, max_entries=60, seed=seed, tol=1e-4)
    assert result.passed, str(result)


@FAST
@given(n_in=st.integers(1, 6), hidden=widths, n_out=st.integers(1, 4), dtype=st.sampled_from([np.float32, np.float64]),
       activation=st.sampled_from(["relu", "tanh", "leaky_relu", "gelu"]), batch_norm=st.booleans(),
       dropout=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_save_then_load_is_the_identity(tmp_path_factory, n_in, hidden, n_out, dtype, activation, batch_norm, dropout, seed):
    net = dn.mlp([n_in, *hidden, n_out], activation, batch_norm=batch_norm, dropout=dropout, rng=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((7, n_in)).astype(dtype)
    if batch_norm:
        net.forward(x, training=True)  # running statistics away from their initial values
    path = tmp_path_factory.mktemp("save") / "m.safetensors"
    dn.save(net, path, metadata={"seed": seed})
    again = dn.load(path)
    assert again.config() == net.config()
    a, b = net.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    assert np.array_equal(net.forward(x), again.forward(x))


def _data(seed, n, d, classes):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, rng.integers(0, classes, n)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(epochs=st.integers(2, 4), data=st.data(), batch=st.sampled_from([4, 7, 16]), dropout=st.sampled_from([0.0, 0.25]),
       optimizer=st.sampled_from(["adam", "sgd", "rmsprop"]), schedule=st.sampled_from([None, "cosine", "step"]),
       seed=st.integers(0, 1000))
def test_resuming_from_any_epoch_equals_the_uninterrupted_run(tmp_path_factory, epochs, data, batch, dropout, optimizer,
                                                               schedule, seed):
    cut = data.draw(st.integers(1, epochs - 1), label="cut")
    X, y = _data(seed, 30, 3, 3)
    kwargs = {"optimizer": optimizer, "batch_size": batch, "epochs": epochs, "seed": seed, "record_layers": False}
    if schedule:
        kwargs["schedule"] = schedule
        kwargs["schedule_kwargs"] = {"step_size": 1} if schedule == "step" else {}
    folder = tmp_path_factory.mktemp("resume")

    def model():
        return dn.mlp([3, 5, 3], dropout=dropout, rng=seed)

    full = dn.Trainer(model(), **kwargs)
    full.fit(X, y)
    first = dn.Trainer(model(), **kwargs, callbacks=[ModelCheckpoint(folder / "e{epoch}.npz", complete_epochs_only=True)])
    first.fit(X, y)
    resumed = dn.Trainer.load_checkpoint(folder / f"e{cut}.npz")
    assert resumed.epoch == cut
    resumed.fit(X, y)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    a, b = resumed.history.to_dict(), full.history.to_dict()
    for record in a["records"] + b["records"]:
        del record["time"]  # wall-clock seconds of the epoch
    assert a == b


hidden_list = st.lists(st.integers(1, 512), min_size=1, max_size=4)
reals = st.floats(1e-6, 1.0, allow_nan=False, allow_infinity=False)


@FAST
@given(model=st.fixed_dictionaries({}, optional={
           "hidden": hidden_list, "activation": st.sampled_from(["relu", "tanh", "sigmoid", "leaky_relu", "gelu"]),
           "dropout": st.floats(0.0, 0.9), "batch_norm": st.booleans(), "dtype": st.sampled_from(["float32", "float64"])}),
       data=st.fixed_dictionaries({}, optional={
           "name": st.sampled_from(["digits", "spiral", "moons", "iris"]), "val_fraction": st.floats(0.0, 0.4),
           "test_fraction": st.floats(0.0, 0.4), "seed": st.integers(0, 2**31), "standardize": st.booleans(),
           "n_samples": st.integers(2, 10_000), "noise": st.floats(0.0, 2.0)}),
       train=st.fixed_dictionaries({}, optional={
           "optimizer": st.sampled_from(["adam", "adamw", "sgd", "rmsprop"]), "lr": reals,
           "schedule": st.sampled_from(["none", "constant", "step", "exponential", "cosine"]),
           "batch_size": st.integers(1, 4096), "epochs": st.integers(1, 1000), "l2": st.floats(0.0, 1.0),
           "clip": st.one_of(reals, st.floats(1.0, 1e6)), "seed": st.integers(0, 2**31), "patience": st.integers(1, 50),
           "min_delta": st.floats(0.0, 1.0), "restore_best": st.booleans(), "warmup_epochs": st.integers(0, 10),
           "loss_below": reals, "gamma": st.floats(0.01, 0.99)}))
def test_a_config_written_and_read_back_is_the_same_run(model, data, train):
    try:
        cfg = RunConfig.from_dict({"model": model, "data": data, "train": train})
    except ConfigError:
        assume(False)
    text = dumps_toml(cfg.to_dict())
    again = loads_config(text, "written.toml")
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert dumps_toml(again.to_dict()) == text
