"""Reshape, and a sequence model trained through the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_transformer.toml"


def test_reshape_forward_backward_and_gradcheck():
    x = np.arange(24, dtype=np.float64).reshape(2, 12)
    m = dn.Reshape([3, 4])
    y = m.forward(x)
    assert y.shape == (2, 3, 4) and y[1, 2, 3] == 23.0
    assert m.backward(np.ones((2, 3, 4))).shape == (2, 12)
    assert dn.gradcheck(m, np.random.default_rng(0).standard_normal((3, 12))).worst < 1e-6
    assert dn.Reshape([-1]).forward(y).shape == (2, 12)
    assert m.output_shape((None, 12)) == (None, 3, 4)
    assert dn.build(m.config()).shape == (3, 4)


def test_reshape_rejects_what_does_not_fit():
    with pytest.raises(ValueError, match=r"Reshape.*cannot reshape samples of shape \(10,\)"):
        dn.Reshape([3, 4]).forward(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="at most one -1"):
        dn.Reshape([-1, -1])
    with pytest.raises(RuntimeError, match="before forward"):
        dn.Reshape([2]).backward(np.zeros((1, 2)))


def test_command_line_trains_a_transformer_from_a_layer_table(tmp_path, capsys):
    pytest.importorskip("sklearn")
    config = tmp_path / "tf.toml"
    config.write_text(EXAMPLE.read_text().replace("epochs = 30", "epochs = 3"))
    code = main(["train", str(config), "--out-dir", str(tmp_path), "--name", "tf", "--quiet", "--no-report"])
    assert code == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    assert accuracy > 50.0                              # 10 classes: chance is 10 %
    model = dn.load(tmp_path / "tf" / "model.safetensors")
    assert any(isinstance(m, dn.TransformerEncoderBlock) for m in model.modules())
    assert main(["summary", str(tmp_path / "tf")]) == 0
    assert "TransformerEncoderBlock" in capsys.readouterr().out
