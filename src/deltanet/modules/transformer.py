"""The Transformer encoder block (pre-norm), and a small sequence classifier built from it."""

from __future__ import annotations

from typing import Any

from .. import backend
from .activations import ACTIVATIONS
from .attention import MultiHeadSelfAttention, as_sequence
from .base import Module
from .containers import Sequential
from .dropout import Dropout
from .gelu import GELU
from .layernorm import LayerNorm
from .linear import Linear
from .pooling import ClassToken, MeanPool, TokenPool
from .positional import PositionalEmbedding, SinusoidalPositionalEncoding


class TransformerEncoderBlock(Module):
    r"""Pre-norm Transformer encoder block on ``(batch, T, d_model)`` sequences.

    Parameters
    ----------
    d_model : int
        Width d of every position.
    n_heads : int
        Attention heads; must divide ``d_model``.
    d_ff : int, optional
        Hidden width of the position-wise MLP (default 4 d_model).
    dropout : float
        Dropout rate on each branch's output before it is added back (0: none).
    causal : bool
        Causal self-attention.
    activation : str
        The MLP's activation, ``"gelu"`` (default, tanh form) or another name
        of :data:`~deltanet.modules.activations.ACTIVATIONS`.
    eps : float
        LayerNorm epsilon.
    init : str
        Initializer of every projection (default ``"xavier_uniform"``).
    rng : int, Generator or None
        Seed of the initial weights and of the dropout masks.
    dtype : float32 (default) or float64.

    Notes
    -----
    Forward (pre-norm: Xiong et al. 2020, https://arxiv.org/abs/2002.04745;
    the residual paths are the reference's skip connections):

        h = x + Dropout(MHA(LN_1(x)))
        y = h + Dropout(W_2 GELU(W_1 LN_2(h) + b_1) + b_2)

    with W_1 of shape (d_ff, d), W_2 of shape (d, d_ff), applied at every
    position. Backward, the chain rule through both residual sums:

        dL/dh = dL/dy + LN_2.backward(W_1.backward(GELU.backward(W_2.backward(Dropout.backward(dL/dy)))))
        dL/dx = dL/dh + LN_1.backward(MHA.backward(Dropout.backward(dL/dh)))

    Masks (see :mod:`deltanet.modules.attention`): ``causal=True``, and a key
    padding mask ``(batch, T)`` via ``forward(x, mask=m)`` or :meth:`set_mask`.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0, causal: bool = False,
                 activation: str = "gelu", eps: float = 1e-5, init: str = "xavier_uniform", rng: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        if not isinstance(d_ff, int) or isinstance(d_ff, bool) or d_ff < 1:
            raise ValueError(f"TransformerEncoderBlock: d_ff must be a positive int, got {d_ff!r}")
        if activation not in ACTIVATIONS or activation == "softmax":
            valid = sorted(k for k in ACTIVATIONS if k != "softmax")
            raise ValueError(f"TransformerEncoderBlock: unknown activation {activation!r}; choose one of: {', '.join(valid)}")
        gen = backend.make_rng(rng)
        self.dtype = backend.resolve_dtype(dtype)
        self.d_model, self.n_heads, self.d_ff = d_model, n_heads, d_ff
        self.dropout, self.causal, self.activation = float(dropout), bool(causal), activation
        self.eps, self.init = float(eps), init
        self.ln1 = self.add_child("ln1", LayerNorm(d_model, eps=eps, dtype=self.dtype))
        attn = MultiHeadSelfAttention(d_model, n_heads, causal=causal, init=init, rng=gen, dtype=self.dtype)
        self.attn = self.add_child("attn", attn)
        self.drop1 = self.add_child("drop1", Dropout(dropout, rng=gen.spawn(1)[0]))
        self.ln2 = self.add_child("ln2", LayerNorm(d_model, eps=eps, dtype=self.dtype))
        self.fc1 = self.add_child("fc1", Linear(d_model, d_ff, init=init, rng=gen, dtype=self.dtype))
        self.act = self.add_child("act", GELU() if activation == "gelu" else ACTIVATIONS[activation]())
        self.fc2 = self.add_child("fc2", Linear(d_ff, d_model, init=init, rng=gen, dtype=self.dtype))
        self.drop2 = self.add_child("drop2", Dropout(dropout, rng=gen.spawn(1)[0]))
        self._name_parameters()
        self._shape: tuple[int, ...] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "n_heads": self.n_heads, "d_ff": self.d_ff, "dropout": self.dropout,
                "causal": self.causal, "activation": self.activation, "eps": self.eps, "init": self.init,
                "dtype": self.dtype.name}

    def set_mask(self, mask: Any) -> None:
        """Use the key padding mask ``mask`` (``(batch, T)``, True = real token) from now on; None clears it."""
        self.attn.set_mask(mask)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        x = as_sequence(self, x, self.d_model, self.dtype)
        a = self.attn.forward(self.ln1.forward(x, training), training, mask=mask)
        h = x + self.drop1.forward(a, training)                        # h = x + MHA(LN_1(x))
        f = self.fc1.forward(self.ln2.forward(h, training), training)
        f = self.fc2.forward(self.act.forward(f, training), training)
        self._shape = tuple(x.shape)
        return h + self.drop2.forward(f, training)                     # y = h + MLP(LN_2(h))

    def backward(self, grad_out: Any) -> Any:
        if self._shape is None:
            raise self._missing_forward()
        if tuple(grad_out.shape) != self._shape:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {self._shape}")
        g = self.fc2.backward(self.drop2.backward(grad_out))
        g = self.ln2.backward(self.fc1.backward(self.act.backward(g)))
        grad_h = g
        grad_h += grad_out                                             # dL/dh: MLP branch + skip
        g = self.ln1.backward(self.attn.backward(self.drop1.backward(grad_h)))
        g += grad_h                                                    # dL/dx: attention branch + skip
        return g

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def _child_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[Module, tuple[int, ...]]]:
        hidden = (*input_shape[:-1], self.d_ff)
        return [(self.attn, input_shape), (self.fc1, input_shape), (self.fc2, hidden)]


def transformer_classifier(d_in: int, n_classes: int, max_len: int, *, d_model: int = 64, n_heads: int = 4,
                           d_ff: int | None = None, n_blocks: int = 2, dropout: float = 0.0,
                           positional: str = "learned", pooling: str = "mean", causal: bool = False,
                           rng: Any = None, dtype: Any = None) -> Sequential:
    """A Transformer encoder for sequences ``(batch, T, d_in)`` that outputs class logits ``(batch, n_classes)``.

    ``Linear(d_in, d_model)`` (token embedding) -> [``ClassToken``] -> positional
    embedding (``"learned"``, ``"sinusoidal"`` or ``"none"``) -> ``n_blocks`` x
    :class:`TransformerEncoderBlock` -> ``LayerNorm`` -> pooling (``"mean"`` over
    positions or ``"cls"``: a class token read back with ``TokenPool(0)``) ->
    ``Linear(d_model, n_classes)``. Pair it with ``SoftmaxCrossEntropy``.
    """
    if positional not in ("learned", "sinusoidal", "none"):
        raise ValueError(f"positional must be 'learned', 'sinusoidal' or 'none', got {positional!r}")
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    gen = backend.make_rng(rng)
    dtype = backend.resolve_dtype(dtype)
    layers: list[Module] = [Linear(d_in, d_model, init="xavier_uniform", rng=gen, dtype=dtype)]
    length = max_len
    if pooling == "cls":
        layers.append(ClassToken(d_model, rng=gen, dtype=dtype))
        length += 1
    if positional == "learned":
        layers.append(PositionalEmbedding(length, d_model, rng=gen, dtype=dtype))
    elif positional == "sinusoidal":
        layers.append(SinusoidalPositionalEncoding(d_model, dtype=dtype))
    for _ in range(n_blocks):
        layers.append(TransformerEncoderBlock(d_model, n_heads, d_ff, dropout=dropout, causal=causal, rng=gen, dtype=dtype))
    layers.append(LayerNorm(d_model, dtype=dtype))
    layers.append(MeanPool() if pooling == "mean" else TokenPool(0))
    layers.append(Linear(d_model, n_classes, init="xavier_uniform", rng=gen, dtype=dtype))
    return Sequential(*layers)
