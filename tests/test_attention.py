"""Scaled dot-product attention and multi-head self-attention: formulas, masks, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deltanet as dn
from deltanet.modules.attention import attention_backward, attention_forward, causal_mask

F64 = "float64"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _padding(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


# -- scaled dot-product attention ---------------------------------------------------------------

def test_attention_matches_hand_computed_values():
    # one query [1, 0] against keys [1, 0] and [0, 1]: scores 1/sqrt(2) and 0
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [0.0, 1.0]])
    v = np.array([[10.0, 0.0], [0.0, 20.0]])
    out, w = attention_forward(q, k, v)
    a = math.exp(1 / math.sqrt(2))
    w0, w1 = a / (a + 1), 1 / (a + 1)
    np.testing.assert_allclose(w, [[w0, w1]], rtol=1e-12)
    np.testing.assert_allclose(out, [[10 * w0, 20 * w1]], rtol=1e-12)


def test_attention_matches_the_formula_for_batches_of_heads(rng):
    q, k, v = rng.standard_normal((2, 3, 4, 8)), rng.standard_normal((2, 3, 6, 8)), rng.standard_normal((2, 3, 6, 5))
    out, w = attention_forward(q, k, v)
    expected_w = _softmax(q @ k.swapaxes(-1, -2) / math.sqrt(8))
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)
    np.testing.assert_allclose(out, expected_w @ v, rtol=1e-12)
    assert out.shape == (2, 3, 4, 5)


def test_causal_mask_is_lower_triangular():
    m = causal_mask(3)
    np.testing.assert_array_equal(m, [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert causal_mask(2, 4).shape == (2, 4)


def test_masked_keys_get_zero_weight_and_fully_masked_rows_give_zero(rng):
    q, k, v = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))
    mask = np.ones((3, 4, 4), dtype=bool)
    mask[0, :, 2] = False          # key 2 hidden from every query of sample 0
    mask[1, 3, :] = False          # query 3 of sample 1 sees nothing
    out, w = attention_forward(q, k, v, mask)
    assert np.isfinite(out).all() and np.isfinite(w).all()
    assert np.all(w[0, :, 2] == 0)
    np.testing.assert_allclose(w[0].sum(-1), 1.0)
    np.testing.assert_array_equal(w[1, 3], 0.0)
    np.testing.assert_array_equal(out[1, 3], 0.0)
    grads = attention_backward(rng.standard_normal(out.shape), q, k, v, w)
    assert all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "padding", "full", "empty_row"])
def test_sdpa_gradcheck_stacked(causal, mask_kind):
    r = np.random.default_rng(7)
    x = r.standard_normal((3, 2, 2, 4, 3))          # (q|k|v, batch, heads, T, d)
    m = dn.ScaledDotProductAttention(causal=causal)
    if mask_kind == "padding":
        m.set_mask(np.array([[1, 1, 1, 0], [1, 0, 1, 1]], dtype=bool)[:, None, None, :])
    elif mask_kind == "full":
        m.set_mask(r.random((2, 2, 4, 4)) > 0.4)
    elif mask_kind == "empty_row":
        mask = np.ones((2, 1, 4, 4), dtype=bool)
        mask[1, 0, 0] = False
        m.set_mask(mask)
    res = dn.gradcheck(m, x, max_entries=None)
    assert res.worst < 1e-6


def test_sdpa_tuple_input_matches_stacked(rng):
    x = rng.standard_normal((3, 2, 5, 4))
    m = dn.ScaledDotProductAttention(causal=True)
    out_stacked = m.forward(x)
    g = rng.standard_normal(out_stacked.shape)
    grad_stacked = m.backward(g)
    out_tuple = m.forward((x[0], x[1], x[2]))
    dq, dk, dv = m.backward(g)
    np.testing.assert_allclose(out_tuple, out_stacked)
    np.testing.assert_allclose(np.stack([dq, dk, dv]), grad_stacked)


def test_sdpa_cross_attention_shapes(rng):
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 6, 4)), rng.standard_normal((2, 6, 7))
    m = dn.ScaledDotProductAttention()
    out = m.forward((q, k, v))
    assert out.shape == (2, 3, 7)
    dq, dk, dv = m.backward(np.ones_like(out))
    assert (dq.shape, dk.shape, dv.shape) == (q.shape, k.shape, v.shape)


def test_sdpa_rejects_bad_inputs(rng):
    m = dn.ScaledDotProductAttention()
    with pytest.raises(ValueError, match="expected q"):
        m.forward((rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))))
    with pytest.raises(ValueError, match=r"\(3, \.\.\., T, d\)"):
        m.forward(rng.standard_normal((2, 3, 4, 5)))
    with pytest.raises(TypeError, match="boolean"):
        m.forward(rng.standard_normal((3, 2, 4, 5)), mask=np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        m.forward(rng.standard_normal((3, 2, 4, 5)), mask=np.ones((3, 4, 4), dtype=bool))
    with pytest.raises(RuntimeError, match="before forward"):
        dn.ScaledDotProductAttention().backward(np.ones((2, 4, 5)))


# -- multi-head self-attention -------------------------------------------------------------------

@pytest.mark.parametrize("n_heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_mhsa_gradcheck(n_heads, causal):
    r = np.random.default_rng(3)
    m = dn.MultiHeadSelfAttention(8, n_heads, causal=causal, rng=0, dtype=F64)
    res = dn.gradcheck(m, r.standard_normal((3, 5, 8)), max_entries=60)
    assert res.worst < 1e-6
    assert set(res.errors) == {"input", "q_proj.weight", "q_proj.bias", "k_proj.weight", "v_proj.weight", "v_proj.bias",
                               "out_proj.weight", "out_proj.bias"}


@pytest.mark.parametrize("causal", [False, True])
def test_mhsa_gradcheck_with_padding_mask(causal):
    r = np.random.default_rng(4)
    m = dn.MultiHeadSelfAttention(6, 2, causal=causal, rng=1, dtype=F64)
    # sample 2 is all padding; with causal masking, sample 1's first query sees no real key
    m.set_mask(_padding([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 0]]))
    res = dn.gradcheck(m, r.standard_normal((3, 5, 6)), max_entries=60)
    assert res.worst < 1e-6


def test_mhsa_equals_per_head_attention(rng):
    m = dn.MultiHeadSelfAttention(6, 3, rng=2, dtype=F64)
    x = rng.standard_normal((2, 4, 6))
    y = m.forward(x)
    q = x @ m.q_proj.weight.value.T + m.q_proj.bias.value
    k = x @ m.k_proj.weight.value.T
    v = x @ m.v_proj.weight.value.T + m.v_proj.bias.value
    heads = []
    for h in range(3):
        s = slice(2 * h, 2 * h + 2)
        heads.append(_softmax(q[..., s] @ k[..., s].swapaxes(1, 2) / math.sqrt(2)) @ v[..., s])
    expected = np.concatenate(heads, axis=-1) @ m.out_proj.weight.value.T + m.out_proj.bias.value
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    assert m.weights.shape == (2, 3, 4, 4)


def test_mhsa_padding_keys_do_not_change_real_positions(rng):
    m = dn.MultiHeadSelfAttention(8, 2, rng=3, dtype=F64)
    mask = _padding([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    x = rng.standard_normal((2, 5, 8))
    y1 = m.forward(x, mask=mask)
    x2 = x.copy()
    x2[0, 3:] = 100 * rng.standard_normal((2, 8))     # garbage in the padding
    y2 = m.forward(x2, mask=mask)
    np.testing.assert_allclose(y1[0, :3], y2[0, :3], rtol=1e-12)
    np.testing.assert_allclose(y1[1], y2[1], rtol=1e-12)
    assert not np.allclose(m.forward(x2)[0, :3], y1[0, :3])     # without the mask it does change


def test_mhsa_causal_output_ignores_the_future(rng):
    m = dn.MultiHeadSelfAttention(8, 2, causal=True, rng=4, dtype=F64)
    x = rng.standard_normal((2, 6, 8))
    y1 = m.forward(x)
    x2 = x.copy()
    x2[:, 4:] = rng.standard_normal((2, 2, 8))
    y2 = m.forward(x2)
    np.testing.assert_allclose(y1[:, :4], y2[:, :4], rtol=1e-12)
    assert not np.allclose(y1[:, 4:], y2[:, 4:])
    assert np.all(np.triu(m.weights[0, 0], k=1) == 0)


def test_mhsa_mask_keyword_and_set_mask_agree(rng):
    m = dn.MultiHeadSelfAttention(4, 2, rng=5, dtype=F64)
    x = rng.standard_normal((2, 3, 4))
    mask = _padding([[1, 1, 0], [1, 0, 0]])
    y_kw = m.forward(x, mask=mask)
    m.set_mask(mask)
    y_set = m.forward(x)
    np.testing.assert_allclose(y_kw, y_set)
    assert dn.set_mask(m, None) == 1
    assert not np.allclose(m.forward(x), y_set)


def test_mhsa_rejects_bad_masks_and_shapes(rng):
    m = dn.MultiHeadSelfAttention(4, 2, rng=0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    m.set_mask(np.ones((5, 3), dtype=bool))                 # left over from another batch
    with pytest.raises(ValueError, match=r"padding mask of shape \(batch, T\) = \(2, 3\)"):
        m.forward(x)
    m.set_mask(None)
    with pytest.raises(TypeError, match="boolean"):
        m.forward(x, mask=np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(batch, T, 4\)"):
        m.forward(x[0])
    with pytest.raises(ValueError, match="must divide"):
        dn.MultiHeadSelfAttention(6, 4)
    with pytest.raises(ValueError, match="positive int"):
        dn.MultiHeadSelfAttention(0, 1)


def test_mhsa_float32_runs_in_float32(rng):
    m = dn.MultiHeadSelfAttention(8, 2, rng=0)
    y = m.forward(rng.standard_normal((2, 3, 8)))
    g = m.backward(np.ones_like(y))
    assert y.dtype == np.float32 and g.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


def test_mhsa_matches_torch_multihead_attention(rng):
    torch = pytest.importorskip("torch")
    d, h = 8, 2
    m = dn.MultiHeadSelfAttention(d, h, causal=True, rng=6, dtype=F64)
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        w_in = np.concatenate([m.q_proj.weight.value, m.k_proj.weight.value, m.v_proj.weight.value])
        ref.in_proj_weight.copy_(torch.tensor(w_in))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate([m.q_proj.bias.value, np.zeros(d), m.v_proj.bias.value])))
        ref.out_proj.weight.copy_(torch.tensor(m.out_proj.weight.value))
        ref.out_proj.bias.copy_(torch.tensor(m.out_proj.bias.value))
    x = rng.standard_normal((3, 5, d))
    pad = _padding([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    y = m.forward(x, mask=pad)
    g = rng.standard_normal(y.shape)
    gx = m.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)        # torch: True = masked
    yt, _ = ref(xt, xt, xt, attn_mask=causal, key_padding_mask=torch.tensor(~pad), need_weights=False)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.out_proj.weight.grad, ref.out_proj.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.q_proj.weight.grad, ref.in_proj_weight.grad[:d].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("module", [
    lambda: dn.ScaledDotProductAttention(causal=True),
    lambda: dn.MultiHeadSelfAttention(8, 4, bias=False, causal=True, rng=0),
])
def test_attention_config_and_state_round_trip(module, rng):
    import json

    m = module()
    clone = dn.build(json.loads(json.dumps(m.config())))
    assert clone.config() == m.config()
    clone.load_state_dict(m.state_dict())
    x = rng.standard_normal((3, 2, 4, 8)) if isinstance(m, dn.ScaledDotProductAttention) else rng.standard_normal((2, 4, 8))
    np.testing.assert_array_equal(clone.forward(x), m.forward(x))
