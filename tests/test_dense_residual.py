"""Skip connections (Residual) and dense connections (DenseBlock)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deltanet as dn
from deltanet.optim import Adam

F64 = "float64"


def _round_trip(m: dn.Module) -> dn.Module:
    clone = dn.build(json.loads(json.dumps(m.config())))
    clone.load_state_dict({k: np.array(v) for k, v in m.state_dict().items()})
    return clone


# -- Residual ------------------------------------------------------------------------------------

def test_residual_adds_the_input(rng):
    block = dn.Sequential(dn.Linear(4, 4, rng=0, dtype=F64), dn.Tanh())
    res = dn.Residual(block)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(res.forward(x), np.tanh(x @ block[0].weight.value.T + block[0].bias.value) + x)


def test_residual_with_projection_when_widths_differ(rng):
    block = dn.Sequential(dn.Linear(4, 6, rng=0, dtype=F64), dn.Tanh())
    proj = dn.Linear(4, 6, bias=False, rng=1, dtype=F64)
    res = dn.Residual(block, proj)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(res.forward(x), block.forward(x) + x @ proj.weight.value.T)
    with pytest.raises(ValueError, match="pass projection"):
        dn.Residual(dn.Sequential(dn.Linear(4, 6, rng=0))).forward(x)


@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4)])
def test_residual_gradcheck(projection, shape):
    r = np.random.default_rng(1)
    d_out = 3 if projection else 4
    block = dn.Sequential(dn.Linear(4, d_out, rng=0, dtype=F64), dn.Sigmoid(), dn.Linear(d_out, d_out, rng=1, dtype=F64))
    res = dn.Residual(block, dn.Linear(4, d_out, bias=False, rng=2, dtype=F64) if projection else None)
    result = dn.gradcheck(res, r.standard_normal(shape), max_entries=None)
    assert result.worst < 1e-6
    assert ("projection.weight" in result.errors) == projection


@pytest.mark.parametrize("projection", [False, True])
def test_residual_config_and_state_round_trip(projection, rng):
    width = 5 if projection else 4
    res = dn.Residual(dn.Sequential(dn.Linear(4, width, rng=0), dn.ReLU()),
                      dn.Linear(4, width, bias=False, rng=1) if projection else None)
    clone = _round_trip(res)
    assert clone.config() == res.config()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), res.forward(x))


def test_residual_keeps_gradients_alive_through_depth():
    """20 sigmoid layers: the plain stack's first-layer gradient all but vanishes, the residual one's does not."""
    r = np.random.default_rng(0)
    x = r.standard_normal((64, 16))
    g = r.standard_normal((64, 16))
    gen = np.random.default_rng(1)
    plain = dn.Sequential(*[m for _ in range(20) for m in (dn.Linear(16, 16, init="xavier", rng=gen, dtype=F64), dn.Sigmoid())])
    gen = np.random.default_rng(1)
    resid = dn.Sequential(*[dn.Residual(dn.Sequential(dn.Linear(16, 16, init="xavier", rng=gen, dtype=F64), dn.Sigmoid()))
                            for _ in range(20)])
    norms = []
    for net in (plain, resid):
        net.zero_grad()
        net.forward(x)
        net.backward(g)
        norms.append(float(np.linalg.norm(net.parameters()[0].grad)))
    assert norms[0] < 1e-8 < 1e-2 < norms[1]


# -- DenseBlock ----------------------------------------------------------------------------------

def test_dense_block_concatenates_input_and_every_output(rng):
    f1 = dn.Sequential(dn.Linear(3, 2, rng=0, dtype=F64), dn.Tanh())
    f2 = dn.Sequential(dn.Linear(5, 4, rng=1, dtype=F64), dn.Tanh())
    f3 = dn.Linear(9, 1, rng=2, dtype=F64)
    block = dn.DenseBlock([f1, f2, f3])
    x = rng.standard_normal((6, 3))
    y = block.forward(x)
    h1 = f1.forward(x)
    h2 = f2.forward(np.concatenate([x, h1], 1))
    h3 = f3.forward(np.concatenate([x, h1, h2], 1))
    np.testing.assert_allclose(y, np.concatenate([x, h1, h2, h3], 1))
    assert block.output_shape((6, 3)) == y.shape == (6, 10)
    assert dn.DenseBlock([f1, f2, f3], include_input=False).forward(x).shape == (6, 7)


@pytest.mark.parametrize("include_input", [True, False])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3)])
def test_dense_block_gradcheck(include_input, shape):
    block = dn.dense_block(3, 2, 3, activation="tanh", include_input=include_input, rng=0, dtype=F64)
    res = dn.gradcheck(block, np.random.default_rng(2).standard_normal(shape), max_entries=None)
    assert res.worst < 1e-6
    assert len(res.errors) == 1 + 6


def test_dense_block_backward_matches_the_unrolled_chain(rng):
    """Gradient of every path: the input feeds the output and all three layers."""
    block = dn.dense_block(2, 3, 3, activation="sigmoid", rng=0, dtype=F64)
    x = rng.standard_normal((4, 2))
    y = block.forward(x)
    g = rng.standard_normal(y.shape)
    gx = block.backward(g)
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((block.forward(xp) - block.forward(xm)) * g).sum() / (2 * eps)
    np.testing.assert_allclose(gx, num, rtol=1e-6, atol=1e-9)


def test_dense_block_config_file_and_state_round_trip(rng):
    cfg = {"type": "DenseBlock", "layers": [
        {"type": "Sequential", "layers": [{"type": "Linear", "in_features": 4, "out_features": 3}, {"type": "ReLU"}]},
        {"type": "Sequential", "layers": [{"type": "Linear", "in_features": 7, "out_features": 3}, {"type": "ReLU"}]},
    ]}
    block = dn.build(cfg)
    assert isinstance(block, dn.DenseBlock) and block.include_input
    assert [n for n, _ in block.named_parameters()] == ["0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias"]
    clone = _round_trip(block)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), block.forward(x))
    net = dn.Sequential(block, dn.Linear(10, 2, rng=0))
    assert dn.build(net.config()).forward(x).shape == (5, 2)
    assert dn.count_flops(net, (1, 4)) == 2 * (4 * 3 + 7 * 3 + 10 * 2)


def test_dense_block_rejects_bad_configs():
    with pytest.raises(TypeError, match="non-empty list"):
        dn.DenseBlock([])
    with pytest.raises(TypeError, match="non-empty list"):
        dn.DenseBlock(dn.Linear(2, 2))
    with pytest.raises(ValueError, match="expected keys"):
        dn.build({"type": "DenseBlock", "layers": [{"type": "ReLU"}], "growth": 3})
    with pytest.raises(ValueError, match="expected input of shape"):
        dn.dense_block(3, 2, 2, rng=0).forward(np.zeros((4, 5)))


def test_dense_block_trains_on_a_small_problem():
    """A dense block of two ReLU layers and a head learns XOR-like quadrants."""
    r = np.random.default_rng(0)
    x = r.uniform(-1, 1, (400, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
    net = dn.Sequential(dn.dense_block(2, 16, 2, rng=0), dn.Linear(34, 2, rng=1))
    opt = Adam(net.parameters(), lr=0.01)
    loss = dn.SoftmaxCrossEntropy()
    for _ in range(300):
        net.zero_grad()
        loss.forward(net.forward(x, training=True), y)
        net.backward(loss.backward())
        opt.step()
    assert float((net.forward(x).argmax(1) == y).mean()) > 0.95
