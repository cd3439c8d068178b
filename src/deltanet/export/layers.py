"""ONNX counterparts of the MLP modules: Linear, the activations, BatchNorm, LayerNorm, Dropout, Reshape and the containers.

Each converter computes what the module's ``forward(x, training=False)``
computes, with the standard operator where ONNX has one that means the same
thing in the graph's dtype, and with the module's own formula otherwise:

=========================  ==================================================================================
Linear                     Gemm (transB = 1) on (batch, in); MatMul with W^T, then Add b, on (batch, ..., in)
ReLU, Tanh, Sigmoid        Relu, Tanh, Sigmoid
LeakyReLU                  LeakyRelu in float32 graphs; max(x, alpha x) in float64 graphs (ONNX float
                           attributes are 32-bit: LeakyRelu's alpha would not be the module's alpha)
Softmax                    Softmax (the module's axis)
GELU                       deltanet's tanh form, x (1 + tanh(c (x + a x^3))) / 2: the Gelu operator with
                           approximate = "tanh" in float32 graphs from opset 20 on; otherwise the formula in
                           elementary nodes (onnxruntime's float64 Gelu is ~1e-8 away from it)
BatchNorm (eval)           BatchNormalization on (batch, F), with eps added to the running variance (the
                           attribute epsilon is 32-bit, so it is 0); (x - mean) s gamma + beta on more axes
LayerNorm                  LayerNormalization in float32 graphs from opset 17 on; otherwise the module's
                           formula in elementary nodes (onnxruntime's float64 LayerNormalization is ~1e-10
                           away from it, even with its statistics in float64)
Dropout (eval), Identity   nothing: the input passes through
Reshape                    Reshape to (0, *shape) (0 keeps the batch axis)
Sequential                 the children in order
Residual                   Add(block(x), x or projection(x))
DenseBlock                 Concat of the input and every layer's output on the last axis
=========================  ==================================================================================
"""

from __future__ import annotations

import math

import numpy

from ..errors import ExportError
from ..modules.activations import Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..modules.containers import Residual, Sequential
from ..modules.dense import DenseBlock
from ..modules.dropout import Dropout
from ..modules.gelu import _A, _C, GELU
from ..modules.layernorm import LayerNorm
from ..modules.linear import Linear
from ..modules.normalization import BatchNorm
from ..modules.reshape import Reshape
from .graph import Graph, Value, convert, converts, describe, expect_width, format_shape, join


def hint_of(path: str, module: object) -> str:
    """The prefix of the names of a module's nodes: its path, or its type for the root."""
    return path or type(module).__name__


def param(path: str, name: str) -> str:
    """A parameter's name in the graph: the model's own (``"0.weight"``, as in ``state_dict`` and the model file)."""
    return join(path, name)


@converts(Linear)
def linear(g: Graph, m: Linear, x: Value, path: str) -> Value:
    expect_width(x, m.in_features, path, m)
    hint = hint_of(path, m)
    bias = [g.weight(m.bias.value, param(path, "bias"))] if m.bias is not None else []
    if x.rank == 2:          # z = x W^T + b, W as stored (out_features, in_features)
        out = g.op("Gemm", [x.name, g.weight(m.weight.value, param(path, "weight")), *bias], hint, transB=1)
    else:                    # the same on every position of (batch, ..., in_features)
        w_t = g.weight(m.weight.value, param(path, "weight") + ".T", tag="T", fn=lambda w: w.T)
        out = g.op("MatMul", [x.name, w_t], hint)
        if bias:
            out = g.op("Add", [out, *bias], hint)
    return Value(out, (*x.shape[:-1], m.out_features))


@converts(Identity, Dropout)
def passthrough(g: Graph, m: object, x: Value, path: str) -> Value:
    return x                 # eval mode: dropout is the identity


@converts(ReLU, Tanh, Sigmoid)
def elementwise(g: Graph, m: object, x: Value, path: str) -> Value:
    op = {ReLU: "Relu", Tanh: "Tanh", Sigmoid: "Sigmoid"}[type(m)]
    return Value(g.op(op, [x.name], hint_of(path, m)), x.shape)


@converts(LeakyReLU)
def leaky_relu(g: Graph, m: LeakyReLU, x: Value, path: str) -> Value:
    hint = hint_of(path, m)
    if g.dtype == numpy.float32:  # the attribute is a float32: exactly the alpha a float32 module multiplies by
        return Value(g.op("LeakyRelu", [x.name], hint, alpha=m.alpha), x.shape)
    scaled = g.op("Mul", [x.name, g.const(m.alpha, "alpha")], hint)
    return Value(g.op("Max", [x.name, scaled], hint), x.shape)     # max(x, alpha x), as the module computes it


@converts(Softmax)
def softmax(g: Graph, m: Softmax, x: Value, path: str) -> Value:
    if not -x.rank <= m.axis < x.rank:
        raise ExportError(f"cannot export to ONNX: {describe(path, m)} normalizes axis {m.axis}, its input has shape "
                           f"{format_shape(x.shape)}")
    return Value(g.op("Softmax", [x.name], hint_of(path, m), axis=m.axis), x.shape)


@converts(GELU)
def gelu(g: Graph, m: GELU, x: Value, path: str) -> Value:
    hint = hint_of(path, m)
    if g.opset >= 20 and g.dtype == numpy.float32:     # float64: the formula (see the table above)
        return Value(g.op("Gelu", [x.name], hint, approximate="tanh"), x.shape)
    t = g.op("Mul", [x.name, x.name], hint)                        # the module's own sequence of operations:
    t = g.op("Mul", [t, g.const(_A, "gelu_a")], hint)              # u = c (x + a x^3) = c x (1 + a x^2)
    t = g.op("Add", [t, g.const(1.0, "one")], hint)
    t = g.op("Mul", [t, x.name], hint)
    t = g.op("Mul", [t, g.const(_C, "gelu_c")], hint)
    t = g.op("Tanh", [t], hint)                                    # t = tanh(u)
    h = g.op("Add", [t, g.const(1.0, "one")], hint)
    h = g.op("Mul", [h, x.name], hint)
    return Value(g.op("Mul", [h, g.const(0.5, "half")], hint), x.shape)   # h = x (1 + t) / 2


@converts(BatchNorm)
def batch_norm(g: Graph, m: BatchNorm, x: Value, path: str) -> Value:
    expect_width(x, m.num_features, path, m)
    hint = hint_of(path, m)
    gamma, beta = g.weight(m.gamma.value, param(path, "gamma")), g.weight(m.beta.value, param(path, "beta"))
    mean = g.weight(m.running_mean, param(path, "running_mean"))
    if x.rank == 2:          # eval mode: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta
        var_eps = g.weight(m.running_var, param(path, "running_var") + "+eps", tag="+eps", fn=lambda v: v + m.eps)
        out = g.op("BatchNormalization", [x.name, gamma, beta, mean, var_eps], hint, epsilon=0.0)
        return Value(out, x.shape)
    inv_std = g.weight(m.running_var, param(path, "inv_std"), tag="inv_std",
                       fn=lambda v: 1.0 / numpy.sqrt(v + m.eps))
    y = g.op("Sub", [x.name, mean], hint)                          # every leading axis is a batch axis
    y = g.op("Mul", [y, inv_std], hint)
    y = g.op("Mul", [y, gamma], hint)
    return Value(g.op("Add", [y, beta], hint), x.shape)


@converts(LayerNorm)
def layer_norm(g: Graph, m: LayerNorm, x: Value, path: str) -> Value:
    expect_width(x, m.d, path, m)
    hint = hint_of(path, m)
    gamma, beta = g.weight(m.gamma.value, param(path, "gamma")), g.weight(m.beta.value, param(path, "beta"))
    if g.opset >= 17 and g.dtype == numpy.float32:
        return Value(g.op("LayerNormalization", [x.name, gamma, beta], hint, axis=-1, epsilon=m.eps), x.shape)
    mu = g.reduce_mean(x.name, [-1], True, hint)                   # mu = mean_j x_j
    xc = g.op("Sub", [x.name, mu], hint)
    var = g.reduce_mean(g.op("Mul", [xc, xc], hint), [-1], True, hint)   # sigma^2 = mean_j (x_j - mu)^2
    std = g.op("Sqrt", [g.op("Add", [var, g.const(m.eps, "eps")], hint)], hint)
    inv = g.op("Div", [g.const(1.0, "one"), std], hint)            # s = 1 / sqrt(sigma^2 + eps)
    y = g.op("Mul", [g.op("Mul", [xc, inv], hint), gamma], hint)
    return Value(g.op("Add", [y, beta], hint), x.shape)            # y = gamma x_hat + beta


@converts(Reshape)
def reshape(g: Graph, m: Reshape, x: Value, path: str) -> Value:
    out = g.op("Reshape", [x.name, g.ints([0, *m.shape], "shape")], hint_of(path, m))
    sample = x.shape[1:]
    if all(isinstance(d, int) for d in sample):
        n = math.prod(sample)          # type: ignore[arg-type]
        known = math.prod(s for s in m.shape if s != -1)
        if (n % known) if -1 in m.shape else (n != known):
            raise ExportError(f"cannot export to ONNX: {describe(path, m)} cannot reshape samples of shape "
                               f"{format_shape(sample)} ({n} values) to {m.shape}")
        return Value(out, (x.shape[0], *(n // known if s == -1 else s for s in m.shape)))
    return Value(out, (x.shape[0], *(None if s == -1 else s for s in m.shape)))


@converts(Sequential)
def sequential(g: Graph, m: Sequential, x: Value, path: str) -> Value:
    for name, child in m.named_children():
        x = convert(g, child, x, join(path, name))
    return x


@converts(Residual)
def residual(g: Graph, m: Residual, x: Value, path: str) -> Value:
    out = convert(g, m.block, x, join(path, "block"))
    skip = convert(g, m.projection, x, join(path, "projection")) if m.projection is not None else x
    a, b = out.shape[-1], skip.shape[-1]
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise ExportError(f"cannot export to ONNX: {describe(path, m)}: the block's output has {a} features, the skip "
                           f"path {b}; pass projection=Linear(d_in, d_out, bias=False) when the block changes the width")
    return Value(g.op("Add", [out.name, skip.name], hint_of(path, m)), out.shape)


@converts(DenseBlock)
def dense_block(g: Graph, m: DenseBlock, x: Value, path: str) -> Value:
    hint = hint_of(path, m)
    pieces = [x]
    for name, layer in m.named_children():     # h_i = f_i([h_0, ..., h_{i-1}])
        pieces.append(convert(g, layer, _concat(g, pieces, hint), join(path, name)))
    return _concat(g, pieces if m.include_input else pieces[1:], hint)    # y = [h_0, h_1, ..., h_L] or [h_1, ..., h_L]


def _concat(g: Graph, pieces: list[Value], hint: str) -> Value:
    if len(pieces) == 1:
        return pieces[0]
    widths = [p.shape[-1] for p in pieces]
    width = sum(widths) if all(isinstance(w, int) for w in widths) else None     # type: ignore[arg-type]
    return Value(g.op("Concat", [p.name for p in pieces], hint, axis=-1), (*pieces[0].shape[:-1], width))
