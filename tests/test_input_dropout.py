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
