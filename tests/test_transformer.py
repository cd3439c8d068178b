"""LayerNorm, GELU, positional embeddings, pooling, the Transformer encoder block, and learning with them."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

import deltanet as dn
from deltanet.optim import Adam

F64 = "float64"


def _round_trip(m: dn.Module) -> dn.Module:
    """Rebuild ``m`` from its JSON config and copy its state: what a model file does."""
    clone = dn.build(json.loads(json.dumps(m.config())))
    clone.load_state_dict({k: np.array(v) for k, v in m.state_dict().items()})
    return clone


# -- LayerNorm -----------------------------------------------------------------------------------

def test_layernorm_normalizes_each_row(rng):
    ln = dn.LayerNorm(6, dtype=F64)
    x = 3 + 5 * rng.standard_normal((4, 3, 6))
    y = ln.forward(x)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(-1), 1 / (1 + 1e-5 / x.var(-1)), rtol=1e-10)
    ln.gamma.value[:] = 2.0
    ln.beta.value[:] = -1.0
    np.testing.assert_allclose(ln.forward(x), 2 * y - 1, rtol=1e-12)


@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 4), (2, 2, 3, 4)])
def test_layernorm_gradcheck(shape):
    r = np.random.default_rng(11)
    ln = dn.LayerNorm(4, dtype=F64)
    ln.gamma.value[:] = r.uniform(0.5, 1.5, 4)
    ln.beta.value[:] = r.standard_normal(4)
    assert dn.gradcheck(ln, r.standard_normal(shape), max_entries=None).worst < 1e-6


def test_layernorm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    ln = dn.LayerNorm(5, dtype=F64)
    ln.gamma.value[:] = rng.standard_normal(5)
    ref = torch.nn.LayerNorm(5, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ln.gamma.value))
    x = rng.standard_normal((2, 3, 5))
    g = rng.standard_normal((2, 3, 5))
    y = ln.forward(x)
    gx = ln.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(y, ref(xt).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ln.gamma.grad, ref.weight.grad.numpy(), rtol=1e-10)


def test_layernorm_rejects_wrong_width(rng):
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 4\)"):
        dn.LayerNorm(4).forward(rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match="positive int"):
        dn.LayerNorm(0)


# -- GELU ----------------------------------------------------------------------------------------

def test_gelu_is_the_tanh_form_close_to_x_phi_x():
    x = np.linspace(-6, 6, 121)
    y = dn.GELU().forward(x)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(y, tanh_form, rtol=1e-12, atol=1e-15)
    assert np.max(np.abs(y - exact)) < 1e-3
    assert y[60] == 0.0 and abs(y[-1] - 6.0) < 1e-9 and abs(y[0]) < 1e-9


def test_gelu_gradcheck_and_torch(rng):
    x = 3 * rng.standard_normal((4, 5))
    assert dn.gradcheck(dn.GELU(), x, max_entries=None).worst < 1e-6
    torch = pytest.importorskip("torch")
    g = rng.standard_normal(x.shape)
    act = dn.GELU()
    act.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(xt, approximate="tanh").backward(torch.tensor(g))
    np.testing.assert_allclose(act.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_gelu_is_an_activation_name_for_mlp():
    net = dn.mlp([3, 4, 2], activation="gelu", rng=0)
    assert isinstance(net[1], dn.GELU)


# -- positional embeddings -----------------------------------------------------------------------

def test_learned_positional_embedding_adds_rows_and_accumulates_their_gradient(rng):
    pe = dn.PositionalEmbedding(6, 3, rng=0, dtype=F64)
    x = rng.standard_normal((2, 4, 3))
    np.testing.assert_allclose(pe.forward(x), x + pe.weight.value[:4])
    g = rng.standard_normal((2, 4, 3))
    pe.zero_grad()
    np.testing.assert_array_equal(pe.backward(g), g)
    np.testing.assert_allclose(pe.weight.grad[:4], g.sum(0))
    np.testing.assert_array_equal(pe.weight.grad[4:], 0)
    assert not pe.weight.decay


@pytest.mark.parametrize("t", [3, 6])
def test_learned_positional_embedding_gradcheck(t):
    pe = dn.PositionalEmbedding(6, 3, rng=1, dtype=F64)
    assert dn.gradcheck(pe, np.random.default_rng(2).standard_normal((2, t, 3)), max_entries=None).worst < 1e-6


def test_learned_positional_embedding_rejects_long_sequences(rng):
    with pytest.raises(ValueError, match="exceeds max_len=4"):
        dn.PositionalEmbedding(4, 3).forward(rng.standard_normal((2, 5, 3)))
    with pytest.raises(ValueError, match=r"\(batch, T, 3\)"):
        dn.PositionalEmbedding(4, 3).forward(rng.standard_normal((2, 3)))


def test_sinusoidal_encoding_values():
    pe = dn.SinusoidalPositionalEncoding(5, dtype=F64)
    table = pe.table(3)
    np.testing.assert_allclose(table[0], [0, 1, 0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(table[1, :2], [math.sin(1), math.cos(1)])
    f = 10000 ** (-2 / 5)
    np.testing.assert_allclose(table[2, 2:4], [math.sin(2 * f), math.cos(2 * f)])
    np.testing.assert_allclose(table[2, 4], math.sin(2 * 10000 ** (-4 / 5)))
    np.testing.assert_allclose(pe.table(10)[:3], table)


def test_sinusoidal_encoding_gradcheck(rng):
    pe = dn.SinusoidalPositionalEncoding(4, dtype=F64)
    x = rng.standard_normal((2, 7, 4))
    np.testing.assert_allclose(pe.forward(x) - x, np.broadcast_to(pe.table(7), x.shape), atol=1e-15)
    assert dn.gradcheck(pe, x, max_entries=None).worst < 1e-6
    assert pe.parameters() == []


# -- pooling -------------------------------------------------------------------------------------

def test_mean_pool_with_and_without_mask(rng):
    x = rng.standard_normal((3, 4, 2))
    pool = dn.MeanPool()
    np.testing.assert_allclose(pool.forward(x), x.mean(1))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    y = pool.forward(x, mask=mask)
    np.testing.assert_allclose(y[0], x[0, :2].mean(0))
    np.testing.assert_allclose(y[1], x[1].mean(0))
    np.testing.assert_array_equal(y[2], 0)
    g = rng.standard_normal((3, 2))
    gx = pool.backward(g)
    np.testing.assert_allclose(gx[0, :2], np.broadcast_to(g[0] / 2, (2, 2)))
    np.testing.assert_array_equal(gx[0, 2:], 0)
    np.testing.assert_array_equal(gx[2], 0)


@pytest.mark.parametrize("mask", [None, [[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]]])
def test_mean_pool_gradcheck(mask):
    pool = dn.MeanPool()
    if mask is not None:
        pool.set_mask(np.array(mask, dtype=bool))
    assert dn.gradcheck(pool, np.random.default_rng(5).standard_normal((3, 4, 2)), max_entries=None).worst < 1e-6


@pytest.mark.parametrize("index", [0, 2, -1])
def test_token_pool(index, rng):
    x = rng.standard_normal((2, 3, 4))
    pool = dn.TokenPool(index)
    np.testing.assert_array_equal(pool.forward(x), x[:, index])
    assert dn.gradcheck(pool, x, max_entries=None).worst < 1e-6
    with pytest.raises(ValueError, match="out of range"):
        dn.TokenPool(5).forward(x)


def test_class_token(rng):
    ct = dn.ClassToken(3, rng=0, dtype=F64)
    x = rng.standard_normal((2, 4, 3))
    y = ct.forward(x)
    assert y.shape == (2, 5, 3)
    np.testing.assert_array_equal(y[:, 0], np.broadcast_to(ct.token.value, (2, 3)))
    np.testing.assert_array_equal(y[:, 1:], x)
    assert dn.gradcheck(ct, x, max_entries=None).worst < 1e-6
    np.testing.assert_array_equal(dn.ClassToken.extend_mask(np.array([[1, 0], [0, 0]], dtype=bool)), [[1, 1, 0], [1, 0, 0]])


# -- the encoder block ---------------------------------------------------------------------------

@pytest.mark.parametrize(("training", "dropout", "causal"), [(False, 0.0, False), (True, 0.3, False), (False, 0.0, True)])
def test_block_gradcheck(training, dropout, causal):
    r = np.random.default_rng(8)
    block = dn.TransformerEncoderBlock(8, 2, 12, dropout=dropout, causal=causal, rng=0, dtype=F64)
    res = dn.gradcheck(block, r.standard_normal((2, 4, 8)), training=training, max_entries=25)
    assert res.worst < 1e-6
    assert len(res.errors) == 1 + len(block.parameters())


def test_block_gradcheck_with_padding_mask():
    r = np.random.default_rng(9)
    block = dn.TransformerEncoderBlock(6, 3, 8, rng=1, dtype=F64)
    dn.set_mask(block, np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool))
    assert dn.gradcheck(block, r.standard_normal((2, 4, 6)), max_entries=25).worst < 1e-6


def test_block_is_pre_norm_residual(rng):
    block = dn.TransformerEncoderBlock(8, 2, 16, rng=3, dtype=F64)
    x = rng.standard_normal((2, 5, 8))
    y = block.forward(x)
    h = x + block.attn.forward(block.ln1.forward(x))
    expected = h + block.fc2.forward(block.act.forward(block.fc1.forward(block.ln2.forward(h))))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_block_matches_torch_encoder_layer(rng):
    torch = pytest.importorskip("torch")
    d, h, ff = 8, 2, 16
    block = dn.TransformerEncoderBlock(d, h, ff, rng=4, dtype=F64)
    ref = torch.nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, batch_first=True, norm_first=True, dtype=torch.float64,
                                           activation=functools.partial(torch.nn.functional.gelu, approximate="tanh"))
    a = block.attn
    with torch.no_grad():
        w_in = np.concatenate([a.q_proj.weight.value, a.k_proj.weight.value, a.v_proj.weight.value])
        ref.self_attn.in_proj_weight.copy_(torch.tensor(w_in))
        ref.self_attn.in_proj_bias.copy_(torch.tensor(np.concatenate([a.q_proj.bias.value, np.zeros(d), a.v_proj.bias.value])))
        ref.self_attn.out_proj.weight.copy_(torch.tensor(a.out_proj.weight.value))
        ref.self_attn.out_proj.bias.copy_(torch.tensor(a.out_proj.bias.value))
        for mine, theirs in ((block.fc1, ref.linear1), (block.fc2, ref.linear2)):
            theirs.weight.copy_(torch.tensor(mine.weight.value))
            theirs.bias.copy_(torch.tensor(mine.bias.value))
    x = rng.standard_normal((3, 5, d))
    g = rng.standard_normal(x.shape)
    y = block.forward(x)
    gx = block.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(block.fc1.weight.grad, ref.linear1.weight.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_block_eval_is_deterministic_and_training_uses_dropout(rng):
    block = dn.TransformerEncoderBlock(8, 2, 16, dropout=0.5, rng=0)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    np.testing.assert_array_equal(block.forward(x), block.forward(x))
    assert not np.allclose(block.forward(x, training=True), block.forward(x))
    assert len(block.generators()) == 2


def test_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="must divide"):
        dn.TransformerEncoderBlock(10, 3)
    with pytest.raises(ValueError, match="unknown activation"):
        dn.TransformerEncoderBlock(8, 2, activation="swish")
    assert dn.TransformerEncoderBlock(8, 2).d_ff == 32


# -- config files and model files ---------------------------------------------------------------

MODULES = {
    "LayerNorm": lambda: dn.LayerNorm(8, eps=1e-6),
    "GELU": dn.GELU,
    "PositionalEmbedding": lambda: dn.PositionalEmbedding(5, 8, rng=0),
    "SinusoidalPositionalEncoding": lambda: dn.SinusoidalPositionalEncoding(8, base=100.0),
    "MeanPool": dn.MeanPool,
    "TokenPool": lambda: dn.TokenPool(-1),
    "ClassToken": lambda: dn.ClassToken(8, rng=0),
    "TransformerEncoderBlock": lambda: dn.TransformerEncoderBlock(8, 2, 16, dropout=0.1, causal=True, rng=0),
    "classifier": lambda: dn.transformer_classifier(3, 4, 5, d_model=8, n_heads=2, n_blocks=2, pooling="cls",
                                                    positional="sinusoidal", rng=0),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_config_and_state_dict_round_trip(name, rng):
    m = MODULES[name]()
    # perturb the parameters so that a fresh build would differ
    for p in m.parameters():
        p.value += rng.standard_normal(p.shape).astype(p.dtype)
    clone = _round_trip(m)
    assert clone.config() == m.config()
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in m.named_parameters()]
    x = rng.standard_normal((2, 5, 3 if name == "classifier" else 8)).astype(np.float32)
    np.testing.assert_array_equal(clone.forward(x), m.forward(x))


def test_block_described_in_a_config_file():
    cfg = {"type": "Sequential", "layers": [
        {"type": "Linear", "in_features": 2, "out_features": 8},
        {"type": "PositionalEmbedding", "max_len": 6, "d_model": 8},
        {"type": "TransformerEncoderBlock", "d_model": 8, "n_heads": 2, "d_ff": 16},
        {"type": "LayerNorm", "d": 8},
        {"type": "MeanPool"},
        {"type": "Linear", "in_features": 8, "out_features": 3},
    ]}
    net = dn.build(cfg)
    assert net.forward(np.zeros((4, 6, 2))).shape == (4, 3)
    assert "2.attn.q_proj.weight" in net.state_dict()
    assert net.output_shape((4, 6, 2)) == (4, 3)


def test_classifier_shapes_and_flops():
    net = dn.transformer_classifier(3, 5, 7, d_model=8, n_heads=2, d_ff=16, n_blocks=1, rng=0)
    assert net.output_shape((2, 7, 3)) == (2, 5)
    t, d, ff = 7, 8, 16
    block = 4 * 2 * d * d * t + 2 * 2 * t * t * d + 2 * 2 * d * ff * t
    assert dn.count_flops(net, (1, 7, 3)) == 2 * 3 * d * t + block + 2 * d * 5
    cls = dn.transformer_classifier(3, 5, 7, d_model=8, n_heads=2, pooling="cls", rng=0)
    assert cls.forward(np.zeros((2, 7, 3))).shape == (2, 5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_classifier_with_a_padding_mask_ignores_padding(pooling, rng):
    net = dn.transformer_classifier(2, 3, 6, d_model=8, n_heads=2, n_blocks=2, pooling=pooling, rng=1, dtype=F64)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    if pooling == "cls":
        assert dn.set_mask(net, dn.ClassToken.extend_mask(mask)) == 4     # 2 blocks and their attention
    else:
        assert dn.set_mask(net, mask) == 5                                # ... and the mean pooling
    x = rng.standard_normal((2, 6, 2))
    y1 = net.forward(x)
    x[0, 4:] = 50.0
    np.testing.assert_allclose(net.forward(x), y1, rtol=1e-12)
    dn.set_mask(net, None)
    assert not np.allclose(net.forward(x), y1)


@pytest.mark.parametrize("make", [lambda: dn.TransformerEncoderBlock(8, 2, 16, rng=0), lambda: dn.dense_block(8, 2, 2, rng=0),
                                  lambda: dn.ClassToken(8, rng=0), lambda: dn.PositionalEmbedding(4, 8, rng=0)])
def test_gradcheck_checks_float32_modules_through_a_float64_copy(make):
    x = np.random.default_rng(6).standard_normal((2, 4, 8))
    assert dn.gradcheck(make(), x, max_entries=20).worst < 1e-6


# -- learning ------------------------------------------------------------------------------------

def _first_vs_last(n: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    x = r.random((n, t, 1)).astype(np.float32)
    return x, (x[:, 0, 0] > x[:, -1, 0]).astype(np.int64)


def _fit(net: dn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float = 3e-3, batch: int = 50) -> None:
    opt = Adam(net.parameters(), lr=lr)
    loss = dn.SoftmaxCrossEntropy()
    order = np.random.default_rng(0)
    for _ in range(epochs):
        idx = order.permutation(len(x))
        for i in range(0, len(x), batch):
            b = idx[i:i + batch]
            net.zero_grad()
            loss.forward(net.forward(x[b], training=True), y[b])
            net.backward(loss.backward())
            opt.step()


def test_transformer_learns_an_order_task_a_mean_pooled_mlp_cannot():
    """Is the first token larger than the last? A mean over positions forgets which is which."""
    t = 6
    x, y = _first_vs_last(1000, t, seed=1)
    x_test, y_test = _first_vs_last(1000, t, seed=2)
    transformer = dn.transformer_classifier(1, 2, t, d_model=16, n_heads=2, d_ff=32, n_blocks=1, rng=0)
    order_blind = dn.Sequential(dn.Linear(1, 32, rng=0), dn.ReLU(), dn.Linear(32, 32, rng=1), dn.ReLU(),
                                dn.MeanPool(), dn.Linear(32, 2, rng=2))
    _fit(transformer, x, y, epochs=10)
    _fit(order_blind, x, y, epochs=10)
    acc_transformer = float((transformer.forward(x_test).argmax(1) == y_test).mean())
    acc_blind = float((order_blind.forward(x_test).argmax(1) == y_test).mean())
    assert acc_transformer > 0.93
    assert acc_blind < 0.6


def test_trainer_trains_a_transformer_and_records_its_layers():
    training = pytest.importorskip("deltanet.training")
    x, y = _first_vs_last(600, 5, seed=3)
    net = dn.transformer_classifier(1, 2, 5, d_model=16, n_heads=2, d_ff=32, n_blocks=1, rng=0)
    trainer = training.Trainer(net, optimizer="adam", lr=3e-3, batch_size=50, epochs=6, seed=0)
    history = trainer.fit(x, y, validation_fraction=0.2)
    assert history["val_accuracy"][-1] > 0.85
    assert "2.attn.q_proj.weight" in history.records[-1]["layer_grad_norms"]


@pytest.mark.parametrize("make", [
    lambda: dn.transformer_classifier(3, 4, 5, d_model=8, n_heads=2, n_blocks=2, pooling="cls", rng=0),
    lambda: dn.Sequential(dn.Linear(3, 8, rng=0), dn.SinusoidalPositionalEncoding(8),
                          dn.Residual(dn.Sequential(dn.LayerNorm(8), dn.MultiHeadSelfAttention(8, 4, causal=True, rng=1))),
                          dn.DenseBlock([dn.Sequential(dn.Linear(8, 4, rng=2), dn.GELU())]), dn.MeanPool(), dn.Linear(12, 2)),
])
def test_model_file_round_trip(make, tmp_path, rng):
    io = pytest.importorskip("deltanet.io")
    model = make()
    for p in model.parameters():
        p.value += 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
    io.save(model, tmp_path / "model.safetensors")
    loaded = io.load(tmp_path / "model.safetensors")
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert loaded.config() == model.config()
