"""Input dropout: mlp(input_dropout=...), the config key and the command's option."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.config import loads_config


def test_mlp_puts_a_dropout_before_the_first_layer():
    net = dn.mlp([10, 8, 3], dropout=0.5, input_dropout=0.2, rng=0)
    kinds = [type(m).__name__ for m in net.children()]
    assert kinds == ["Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert net[0].rate == 0.2 and net[3].rate == 0.5
    x = np.ones((200, 10), dtype=np.float32)
    kept = net[0].forward(x, training=True) != 0
    assert abs(kept.mean() - 0.8) < 0.03                                  # 2,000 inputs: 5 sigma is 0.045
    np.testing.assert_array_equal(net[0].forward(x, training=False), x)   # identity in eval mode


def test_no_input_dropout_by_default_and_the_range_is_checked():
    assert type(next(iter(dn.mlp([4, 3, 2], rng=0).children()))).__name__ == "Linear"
    with pytest.raises(ValueError, match=r"input_dropout.*\[0, 1\)"):
        dn.mlp([4, 3, 2], input_dropout=1.0)


def test_config_key_reaches_the_commands_network():
    from deltanet.cli._pipeline import build_model

    cfg = loads_config("[model]\nhidden = [8]\ninput_dropout = 0.25\ndropout = 0\n")
    net = build_model(cfg.model, 6, 3, seed=0)
    assert [type(m).__name__ for m in net.children()] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert net[0].rate == 0.25


def test_config_round_trip_and_range():
    cfg = loads_config("[model]\nhidden = [8]\ninput_dropout = 0.2\n")
    assert cfg.model.input_dropout == 0.2
    with pytest.raises(ValueError, match="input_dropout"):
        loads_config("[model]\ninput_dropout = 1.5\n")


def test_the_first_linear_behind_input_dropout_skips_the_data_gradient_and_training_matches_the_reference():
    from deltanet import accel
    from deltanet.accel.plan import data_layer
    from deltanet.training import Callback, Trainer

    net = dn.mlp([6, 8, 3], dropout=0.0, input_dropout=0.3, rng=0, dtype="float64")
    assert data_layer(net) is net[1]
    seen = []

    class Watch(Callback):
        def on_batch_end(self, trainer, batch, loss):
            seen.append(trainer.model[1].input_grad)

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    weights = []
    for fast in (True, False):
        accel.set_fast_enabled(fast)
        try:
            model = dn.mlp([6, 8, 3], dropout=0.0, input_dropout=0.3, rng=0, dtype="float64")
            Trainer(model, optimizer="adam", batch_size=8, epochs=2, seed=1, callbacks=[Watch()]).fit(x, y)
            weights.append(np.concatenate([p.value.ravel() for p in model.parameters()]))
        finally:
            accel.set_fast_enabled(None)
    assert seen[:10] == [False] * 10 and seen[10:] == [True] * 10       # fast path: dL/dx skipped; reference: formed
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-10, atol=1e-13)
