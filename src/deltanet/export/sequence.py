"""ONNX counterparts of the sequence modules: attention, the Transformer block, positional information, pooling.

Sequences are ``(batch, T, d)`` with T dynamic: everything that depends on
the length (the causal mask, the rows of a positional table, the batch of
class tokens) is computed from the input's shape at run time.

=============================  ==============================================================================
ScaledDotProductAttention      stacked input (3, ..., T, d): Gather q, k, v; MatMul(q / sqrt(d_k), k^T);
                               causal: Where(i >= j, S, -1e30); Softmax; MatMul with v
MultiHeadSelfAttention         the projections (MatMul, Add), heads by Reshape (0, 0, H, d_h) and Transpose,
                               the attention above for all heads at once, heads merged, output projection
TransformerEncoderBlock        h = x + MHA(LN_1(x)),  y = h + W_2 act(W_1 LN_2(h) + b_1) + b_2 (pre-norm)
PositionalEmbedding            x + P[:T] (Slice of the table by the input's length)
SinusoidalPositionalEncoding   x + PE[:T], PE computed in float64 from Range(T) as the module computes it
ClassToken                     Concat(Expand(c, (batch, 1, d)), x) on the positions
MeanPool, TokenPool            ReduceMean over the positions; Gather of one position
=============================  ==============================================================================

A padding mask set on a module (``set_mask``) belongs to one batch: it is
refused, with a message saying how to clear it.
"""

from __future__ import annotations

import math

import numpy

from ..errors import ExportError
from ..modules.attention import _MASKED, MultiHeadSelfAttention, ScaledDotProductAttention
from ..modules.base import Module
from ..modules.pooling import ClassToken, MeanPool, TokenPool
from ..modules.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from ..modules.transformer import TransformerEncoderBlock
from .graph import Graph, Value, convert, converts, describe, expect_rank, expect_width, format_shape, join
from .layers import hint_of, param

SEQUENCES = "sequences (batch, T, d)"


def _no_mask(m: Module, path: str) -> None:
    if getattr(m, "_mask", None) is not None:
        raise ExportError(f"cannot export to ONNX: {describe(path, m)} has a padding mask set (set_mask), which belongs "
                          "to one batch and cannot be part of the graph; clear it with deltanet.set_mask(model, None) first")


def causal_mask(g: Graph, t: str, hint: str) -> str:
    """Boolean ``(T, T)``, True where key j <= query i, for the int64 scalar length ``t``."""
    r = g.op("Range", [g.ints(0, "zero"), t, g.ints(1, "one_int")], hint)
    rows = g.op("Unsqueeze", [r, g.ints([1], "axes")], hint)
    cols = g.op("Unsqueeze", [r, g.ints([0], "axes")], hint)
    return g.op("GreaterOrEqual", [rows, cols], hint)


def attention(g: Graph, q: str, k_t: str, v: str, scale: str, causal_len: str | None, hint: str) -> str:
    """softmax(Q K^T / sqrt(d_k)) V over the last two axes, ``k_t`` already transposed; causal when given the length."""
    scores = g.op("MatMul", [g.op("Mul", [q, scale], hint), k_t], hint)   # S = (Q / sqrt(d_k)) K^T
    if causal_len is not None:
        masked = g.const(_MASKED, "masked_score")                           # -1e30, as the module uses
        scores = g.op("Where", [causal_mask(g, causal_len, hint), scores, masked], hint)
    weights = g.op("Softmax", [scores], hint, axis=-1)                      # A = softmax_j(S)
    return g.op("MatMul", [weights, v], hint)                               # O = A V


@converts(ScaledDotProductAttention)
def scaled_dot_product_attention(g: Graph, m: ScaledDotProductAttention, x: Value, path: str) -> Value:
    _no_mask(m, path)
    hint = hint_of(path, m)
    if x.rank < 3 or (isinstance(x.shape[0], int) and x.shape[0] != 3):
        raise ExportError(f"cannot export to ONNX: {describe(path, m)} takes q, k and v stacked as (3, ..., T, d), its "
                          f"input has shape {format_shape(x.shape)}; give export_onnx that input_shape")
    q, k, v = (g.op("Gather", [x.name, g.ints(i, f"index_{i}")], hint, axis=0) for i in range(3))
    rank = x.rank - 1
    k_t = g.op("Transpose", [k], hint, perm=[*range(rank - 2), rank - 1, rank - 2])
    d_k = x.shape[-1]
    if isinstance(d_k, int):
        scale = g.const(1.0 / math.sqrt(d_k), "scale")
    else:                    # 1 / sqrt(d_k) in float64 from the run-time width, then in the graph's dtype
        d = g.cast(g.dim(x.name, -1, hint), numpy.float64, hint)
        scale = g.op("Div", [g.const(1.0, "one", numpy.float64), g.op("Sqrt", [d], hint)], hint)
        if g.dtype != numpy.float64:
            scale = g.cast(scale, g.dtype, hint)
    t = g.dim_scalar(x.name, -2, hint) if m.causal else None
    return Value(attention(g, q, k_t, v, scale, t, hint), x.shape[1:])


@converts(MultiHeadSelfAttention)
def multi_head_self_attention(g: Graph, m: MultiHeadSelfAttention, x: Value, path: str) -> Value:
    _no_mask(m, path)
    expect_rank(x, 3, SEQUENCES, path, m)
    expect_width(x, m.d_model, path, m)
    hint = hint_of(path, m)
    q, k, v = (convert(g, getattr(m, name), x, join(path, name)).name for name in ("q_proj", "k_proj", "v_proj"))
    heads = g.ints([0, 0, m.n_heads, m.head_dim], "heads_shape")             # (B, T, d) -> (B, T, H, d_h)
    q = g.op("Transpose", [g.op("Reshape", [q, heads], hint)], hint, perm=[0, 2, 1, 3])     # (B, H, T, d_h)
    k_t = g.op("Transpose", [g.op("Reshape", [k, heads], hint)], hint, perm=[0, 2, 3, 1])   # (B, H, d_h, T)
    v = g.op("Transpose", [g.op("Reshape", [v, heads], hint)], hint, perm=[0, 2, 1, 3])
    t = g.dim_scalar(x.name, 1, hint) if m.causal else None
    o = attention(g, q, k_t, v, g.const(1.0 / math.sqrt(m.head_dim), "scale"), t, hint)
    merged = g.op("Reshape", [g.op("Transpose", [o], hint, perm=[0, 2, 1, 3]), g.ints([0, 0, m.d_model], "merged_shape")], hint)
    return convert(g, m.out_proj, Value(merged, x.shape), join(path, "out_proj"))


@converts(TransformerEncoderBlock)
def transformer_encoder_block(g: Graph, m: TransformerEncoderBlock, x: Value, path: str) -> Value:
    expect_rank(x, 3, SEQUENCES, path, m)
    expect_width(x, m.d_model, path, m)
    hint = hint_of(path, m)

    def run(name: str, value: Value) -> Value:
        return convert(g, getattr(m, name), value, join(path, name))

    a = run("drop1", run("attn", run("ln1", x)))
    h = Value(g.op("Add", [x.name, a.name], hint), x.shape)                  # h = x + MHA(LN_1(x))
    f = run("drop2", run("fc2", run("act", run("fc1", run("ln2", h)))))
    return Value(g.op("Add", [h.name, f.name], hint), x.shape)               # y = h + MLP(LN_2(h))


@converts(PositionalEmbedding)
def positional_embedding(g: Graph, m: PositionalEmbedding, x: Value, path: str) -> Value:
    expect_rank(x, 3, SEQUENCES, path, m)
    expect_width(x, m.d_model, path, m)
    if isinstance(x.shape[1], int) and x.shape[1] > m.max_len:
        raise ExportError(f"cannot export to ONNX: {describe(path, m)} takes sequences of up to {m.max_len} positions, "
                          f"the input has {x.shape[1]}")
    hint = hint_of(path, m)
    zero = g.ints([0], "starts")
    rows = g.op("Slice", [g.weight(m.weight.value, param(path, "weight")), zero, g.dim(x.name, 1, hint), zero], hint)
    return Value(g.op("Add", [x.name, rows], hint), x.shape)                 # y_t = x_t + P_t


@converts(SinusoidalPositionalEncoding)
def sinusoidal_positional_encoding(g: Graph, m: SinusoidalPositionalEncoding, x: Value, path: str) -> Value:
    expect_rank(x, 3, SEQUENCES, path, m)
    expect_width(x, m.d_model, path, m)
    hint = hint_of(path, m)
    freq = numpy.exp(-math.log(m.base) * numpy.arange(0, m.d_model, 2, dtype=numpy.float64) / m.d_model)
    column_freq = numpy.repeat(freq, 2)[: m.d_model]          # columns 2i and 2i + 1 both use 1 / base^(2i / d)
    even = numpy.arange(m.d_model) % 2 == 0
    t = g.dim_scalar(x.name, 1, hint)
    pos = g.cast(g.op("Range", [g.ints(0, "zero"), t, g.ints(1, "one_int")], hint), numpy.float64, hint)
    pos = g.op("Unsqueeze", [pos, g.ints([1], "axes")], hint)                 # (T, 1)
    angle = g.op("Mul", [pos, g.const(column_freq, param(path, "frequencies"), numpy.float64)], hint)
    pe = g.op("Where", [g.const(even, "even_columns", numpy.bool_), g.op("Sin", [angle], hint), g.op("Cos", [angle], hint)], hint)
    if g.dtype != numpy.float64:
        pe = g.cast(pe, g.dtype, hint)
    return Value(g.op("Add", [x.name, pe], hint), x.shape)                   # y = x + PE[:T]


@converts(ClassToken)
def class_token(g: Graph, m: ClassToken, x: Value, path: str) -> Value:
    expect_rank(x, 3, SEQUENCES, path, m)
    expect_width(x, m.d_model, path, m)
    hint = hint_of(path, m)
    token = g.weight(m.token.value, param(path, "token"), tag="(1, 1, d)", fn=lambda c: c.reshape(1, 1, -1))
    shape = g.op("Concat", [g.dim(x.name, 0, hint), g.ints([1, m.d_model], "token_shape")], hint, axis=0)
    tokens = g.op("Expand", [token, shape], hint)                            # c for every sample: (B, 1, d)
    t = x.shape[1] + 1 if isinstance(x.shape[1], int) else None
    return Value(g.op("Concat", [tokens, x.name], hint, axis=1), (x.shape[0], t, x.shape[2]))


@converts(MeanPool)
def mean_pool(g: Graph, m: MeanPool, x: Value, path: str) -> Value:
    _no_mask(m, path)
    expect_rank(x, 3, SEQUENCES, path, m)
    return Value(g.reduce_mean(x.name, [1], False, hint_of(path, m)), (x.shape[0], x.shape[2]))


@converts(TokenPool)
def token_pool(g: Graph, m: TokenPool, x: Value, path: str) -> Value:
    expect_rank(x, 3, SEQUENCES, path, m)
    t = x.shape[1]
    if isinstance(t, int) and not -t <= m.index < t:
        raise ExportError(f"cannot export to ONNX: {describe(path, m)} reads position {m.index} of sequences of length {t}")
    out = g.op("Gather", [x.name, g.ints(m.index, "position")], hint_of(path, m), axis=1)
    return Value(out, (x.shape[0], x.shape[2]))
