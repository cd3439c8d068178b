"""Training state: reproducibility, checkpoints and resume, History serialization."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

import deltanet as dn
from deltanet.training import Callback, History, ModelCheckpoint, load_state, save_state


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 0.7, (n, 5)) + np.eye(3, 5)[y] * 1.5
    return X, y


def make_net(init_seed=0, dropout_seed=None):
    """An MLP with dropout and batch norm (buffers + generators in the state)."""
    net = dn.Sequential(dn.Linear(5, 16, rng=init_seed), dn.BatchNorm(16), dn.ReLU(), dn.Dropout(0.3, rng=dropout_seed),
                        dn.Linear(16, 3, rng=init_seed + 1))
    return net


def trainer_for(net, **kw):
    args = dict(optimizer="adam", lr=0.01, schedule="cosine", batch_size=10, epochs=6, seed=7,
                early_stopping={"patience": 50, "restore_best": True})
    args.update(kw)
    return dn.Trainer(net, **args)


def without_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history.records]


def weights_equal(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


# -- reproducibility ----------------------------------------------------------------------------------------
def test_same_seed_same_weights_and_history_bit_for_bit():
    X, y = data()
    # different dropout generators in the two models: the trainer's seed reseeds them at the first fit
    t1 = trainer_for(make_net(dropout_seed=1))
    t2 = trainer_for(make_net(dropout_seed=2))
    h1 = t1.fit(X, y, validation_fraction=0.2)
    h2 = t2.fit(X, y, validation_fraction=0.2)
    assert weights_equal(t1.model.state_dict(), t2.model.state_dict())
    assert without_time(h1) == without_time(h2)
    t3 = trainer_for(make_net(dropout_seed=1), seed=8)
    t3.fit(X, y, validation_fraction=0.2)
    assert not np.array_equal(t3.model[0].weight.value, t1.model[0].weight.value)


# -- checkpoints -----------------------------------------------------------------------------------------------
class StopAtEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == self.epoch:
            trainer.request_stop("interrupted", "simulated crash")


@pytest.mark.parametrize("how", ["load_checkpoint", "resume"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, how):
    X, y = data()
    full = trainer_for(make_net())
    h_full = full.fit(X, y, validation_fraction=0.2)

    path = tmp_path / "run.npz"
    first = trainer_for(make_net(), callbacks=[ModelCheckpoint(path), StopAtEpoch(3)])
    assert len(first.fit(X, y, validation_fraction=0.2)) == 3
    if how == "load_checkpoint":
        resumed = dn.Trainer.load_checkpoint(path)
    else:
        resumed = trainer_for(make_net(init_seed=5, dropout_seed=9)).resume(path)
    assert resumed.epoch == 3
    es, es_first = resumed.early_stopping, first.early_stopping
    assert (es.best, es.best_epoch, es.wait) == (es_first.best, es_first.best_epoch, es_first.wait)
    assert es.best_epoch is not None and weights_equal(es.best_state, es_first.best_state)
    h_resumed = resumed.fit(X, y, validation_fraction=0.2)            # the 3 epochs left of the planned 6
    assert resumed.epoch == 6
    assert weights_equal(full.model.state_dict(), resumed.model.state_dict())
    assert without_time(h_full) == without_time(h_resumed)
    assert h_resumed.best_epoch == h_full.best_epoch
    assert isinstance(resumed.schedule, dn.optim.CosineAnnealingLR) and resumed.schedule.t_max == 6
    state_full, state_res = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert state_full["step_count"] == state_res["step_count"]
    assert all(np.array_equal(state_full["state"][k], state_res["state"][k]) for k in state_full["state"])


def test_fit_in_two_calls_equals_one_call_without_schedule(tmp_path):
    X, y = data()
    a = trainer_for(make_net(), schedule=None, early_stopping=None)
    a.fit(X, y, epochs=4)
    b = trainer_for(make_net(), schedule=None, early_stopping=None)
    b.fit(X, y, epochs=2)
    b.save_checkpoint(tmp_path / "half.npz")
    c = dn.Trainer.load_checkpoint(tmp_path / "half.npz")
    c.fit(X, y, epochs=2)
    assert weights_equal(a.model.state_dict(), c.model.state_dict())
    assert without_time(a.history) == without_time(c.history)


def test_checkpoint_file_is_plain_npz_without_pickle(tmp_path):
    X, y = data(40)
    t = trainer_for(make_net(), epochs=2)
    t.fit(X, y, validation_fraction=0.25)
    path = tmp_path / "ckpt.npz"
    t.save_checkpoint(path)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]                  # no temporary file left behind
    with np.load(path, allow_pickle=False) as f:
        names = set(f.files)
        assert all(f[n].dtype != object for n in names)
        meta = json.loads(str(f["__meta__"][()]))
    assert {"model/0.weight", "model/1.running_mean", "optimizer/state/0.exp_avg",
            "callbacks/early_stopping/best_state/0.weight"} <= names
    assert meta["format"] == "deltanet.checkpoint" and meta["state"]["epoch"] == 2
    with zipfile.ZipFile(path) as z:
        assert not any(n.endswith(".pkl") for n in z.namelist())


def test_save_state_roundtrip_and_rejects_objects(tmp_path):
    state = {"a": np.arange(3, dtype=np.float32), "n": [1, 2.5, None, "x", {"b": np.ones((2, 2))}], "big": 2**100,
             "inf": float("inf")}
    save_state(tmp_path / "s.npz", state)
    back = load_state(tmp_path / "s.npz")
    assert back["big"] == 2**100 and back["inf"] == float("inf") and back["n"][:4] == [1, 2.5, None, "x"]
    assert back["a"].dtype == np.float32 and np.array_equal(back["n"][4]["b"], np.ones((2, 2)))
    with pytest.raises(TypeError, match="cannot store"):
        save_state(tmp_path / "t.npz", {"f": object()})
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not a deltanet checkpoint"):
        load_state(tmp_path / "other.npz")


def test_model_checkpoint_every_and_epoch_in_name(tmp_path):
    X, y = data(30)
    cb = ModelCheckpoint(tmp_path / "ck-{epoch:02d}.npz", every=2)
    trainer_for(make_net(), epochs=5, callbacks=[cb]).fit(X, y, validation_fraction=0.2)
    assert sorted(os.listdir(tmp_path)) == ["ck-02.npz", "ck-04.npz", "ck-05.npz"]   # 5: saved when training ended


def test_trainer_state_dict_roundtrip_in_memory():
    X, y = data(40)
    t = trainer_for(make_net(), epochs=2)
    t.fit(X, y, validation_fraction=0.25)
    state = t.state_dict()
    u = trainer_for(make_net(init_seed=3))
    u.load_state_dict(state)
    assert weights_equal(t.model.state_dict(), u.model.state_dict())
    assert u.epoch == 2 and len(u.history) == 2 and u.history.stop_reason == "max_epochs"
    assert u.rng.bit_generator.state == t.rng.bit_generator.state


# -- History ----------------------------------------------------------------------------------------------
def small_history():
    X, y = data(40)
    t = dn.Trainer(dn.mlp([5, 6, 3], rng=0), epochs=3, batch_size=16)
    return t.fit(X, y, validation_fraction=0.25)


def test_history_access():
    h = small_history()
    assert len(h) == 3 and h["epoch"] == [1, 2, 3]
    assert h.last is h.records[-1]
    assert all(isinstance(v, float) for v in h["val_loss"])
    assert h.best_epoch == int(np.argmin(h["val_loss"])) + 1
    with pytest.raises(KeyError, match="unknown history key"):
        h["nope"]
    assert set(h.records[0]["layer_grad_norms"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_history_json_roundtrip(tmp_path):
    h = small_history()
    text = h.to_json(tmp_path / "h.json")
    back = History.from_json(tmp_path / "h.json")
    assert back.records == h.records and back.stop_reason == h.stop_reason == "max_epochs"
    assert back.stop_message == h.stop_message and back.best_epoch == h.best_epoch and back.task == "classification"
    assert History.from_json(text).records == h.records
    assert History.from_dict(h.to_dict()).to_dict() == h.to_dict()


def test_history_csv(tmp_path):
    h = small_history()
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:8] == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "grad_norm", "time"]
    assert "layer_grad_norms[0.weight]" in header and "dead_fraction[1]" in header
    assert len(lines) == 4
    row = dict(zip(header, lines[2].split(","), strict=True))
    assert float(row["val_loss"]) == h.records[1]["val_loss"]
    assert float(row["layer_grad_norms[2.bias]"]) == h.records[1]["layer_grad_norms"]["2.bias"]
