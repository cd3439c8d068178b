r"""Scaled dot-product attention and multi-head self-attention.

The reference's Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, with an
explicit backward pass vectorized over every leading axis (batch, heads): all
products are batched ``xp.matmul`` calls on ``(batch, heads, T, d)`` arrays,
and the softmax backward is y * (g - sum(g * y)), never a Jacobian.

Masks
-----
A mask is boolean and says where attention is *allowed*: ``True`` = this query
may look at this key, ``False`` = it may not (integer 0/1 arrays are accepted;
float masks are refused so that an additive mask is not misread). Masked scores
are replaced by a large negative number (not -inf), and a query row whose every
key is masked gets all-zero weights and a zero output (never NaN).

How a mask reaches a module, within the ``forward(x, training)`` contract:

- causal (autoregressive) masking is a constructor flag, ``causal=True``:
  query i sees keys j <= i;
- a padding mask goes either as a keyword, ``forward(x, training, mask=m)``
  (that call only), or is set beforehand with ``module.set_mask(m)`` (kept for
  every later call until ``set_mask(None)``) -- the way to use it inside a
  :class:`~deltanet.modules.containers.Sequential`, whose forward passes no
  mask; :func:`set_mask` sets it on every mask-aware module of a model at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .. import backend
from .activations import softmax
from .base import Module
from .linear import Linear

#: Score given to masked positions: exp(_MASKED - max) underflows to exactly 0,
#: and unlike -inf a fully masked row stays finite (-1e30 - (-1e30) = 0).
_MASKED = -1e30


def _swap(a: Any) -> Any:
    return a.swapaxes(-1, -2)


def as_mask(mask: Any, who: str) -> Any:
    """Validate a boolean attention mask (True = may attend) and return it as a backend array."""
    if not hasattr(mask, "dtype"):
        mask = numpy.asarray(mask)
    if mask.dtype.kind in "iu":
        mask = mask != 0
    elif mask.dtype.kind != "b":
        raise TypeError(f"{who}: a mask must be boolean (True where attention is allowed), got dtype {mask.dtype}")
    return backend.xp.asarray(mask)


def as_sequence(module: Module, x: Any, d_model: int | None = None, dtype: Any = None) -> Any:
    """Validate a batch of sequences ``(batch, T, d_model)`` for ``module`` (rank, width, finiteness; one dtype conversion)."""
    if not hasattr(x, "dtype"):
        x = numpy.asarray(x)
    if x.ndim != 3:
        width = "d" if d_model is None else str(d_model)
        raise ValueError(f"{module._label()}: expected input of shape (batch, T, {width}), got {tuple(x.shape)} (rank {x.ndim}); "
                         "a single sequence is x[None]")
    return module._as_input(x, d_model, min_ndim=3, dtype=dtype)


def causal_mask(t_q: int, t_k: int | None = None) -> Any:
    """Boolean ``(t_q, t_k)`` mask, True on and below the diagonal: query i sees keys j <= i."""
    xp = backend.xp
    t_k = t_q if t_k is None else t_k
    return xp.tril(xp.ones((t_q, t_k), dtype=bool))


def attention_forward(q: Any, k: Any, v: Any, mask: Any = None) -> tuple[Any, Any]:
    r"""O = softmax(Q K^T / sqrt(d_k)) V over the last two axes; returns ``(O, A)``.

    $$A = \mathrm{softmax}\Bigl(\frac{Q K^\top}{\sqrt{d_k}}\Bigr), \qquad O = A V$$

    Parameters
    ----------
    q : array ``(..., T_q, d_k)``
    k : array ``(..., T_k, d_k)``
    v : array ``(..., T_k, d_v)``
    mask : bool array broadcastable to ``(..., T_q, T_k)`` or None
        True where query i may attend to key j.

    Returns
    -------
    out : array ``(..., T_q, d_v)``
    weights : array ``(..., T_q, T_k)`` -- A, the attention weights; each row
        sums to 1, or is all zero when every key of that row is masked.

    Notes
    -----
        S = Q K^T / sqrt(d_k)                      (..., T_q, T_k)
        S_ij <- -1e30 where mask_ij is False
        A = softmax_j(S)  (rows with no allowed key: A = 0)
        O = A V                                    (..., T_q, d_v)
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q * scale) @ _swap(k)                # S = Q K^T / sqrt(d_k)
    if mask is None:
        weights = softmax(scores, axis=-1)
    else:
        scores = backend.xp.where(mask, scores, _MASKED).astype(q.dtype, copy=False)
        weights = softmax(scores, axis=-1)
        alive = mask.any(axis=-1, keepdims=True)   # rows with at least one allowed key
        if not bool(alive.all()):
            weights *= alive                       # a fully masked row: uniform -> 0
    return weights @ v, weights                    # O = A V


def attention_backward(grad_out: Any, q: Any, k: Any, v: Any, weights: Any) -> tuple[Any, Any, Any]:
    r"""Gradients of :func:`attention_forward` with respect to Q, K and V.

    Notes
    -----
    With G = dL/dO of shape ``(..., T_q, d_v)`` and A the forward's weights:

        dL/dV = A^T G                               (..., T_k, d_v)
        dL/dA = G V^T                               (..., T_q, T_k)
        dL/dS = A * (dL/dA - sum_j (dL/dA * A))     (softmax backward, row-wise)
        dL/dQ = dL/dS K / sqrt(d_k)
        dL/dK = (dL/dS)^T Q / sqrt(d_k)

    Masked entries have A = 0, hence dL/dS = 0 there: the constant -1e30 that
    replaced them passes no gradient, and a fully masked row passes none at all.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    grad_v = _swap(weights) @ grad_out              # dV = A^T G
    ds = grad_out @ _swap(v)                        # dA = G V^T
    ds -= (ds * weights).sum(axis=-1, keepdims=True)
    ds *= weights                                   # dS = A * (dA - sum(dA * A))
    grad_q = ds @ k
    grad_q *= scale                                 # dQ = dS K / sqrt(d_k)
    grad_k = _swap(ds) @ q
    grad_k *= scale                                 # dK = dS^T Q / sqrt(d_k)
    return grad_q, grad_k, grad_v


class ScaledDotProductAttention(Module):
    r"""Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, a module without parameters.

    $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Bigl(\frac{Q K^\top}{\sqrt{d_k}}\Bigr) V$$

    Parameters
    ----------
    causal : bool
        Mask every key after the query's position (needs T_q <= T_k; query i
        sees keys j <= i).

    Notes
    -----
    Input: either a tuple ``(q, k, v)`` of arrays of shapes ``(..., T_q, d_k)``,
    ``(..., T_k, d_k)``, ``(..., T_k, d_v)`` -- backward then returns the tuple
    ``(dq, dk, dv)`` -- or one stacked array of shape ``(3, ..., T, d)`` holding
    q, k and v (self-attention shapes; backward returns the stacked gradient,
    which is what :func:`~deltanet.gradcheck.gradcheck` needs). Output:
    ``(..., T_q, d_v)``.

    A padding or other mask (see the module docstring) is a boolean array
    broadcastable to ``(..., T_q, T_k)``, given as ``forward(x, mask=m)`` or
    with :meth:`set_mask`; it is combined (logical and) with the causal mask.
    Forward and backward equations: :func:`attention_forward`,
    :func:`attention_backward`. The last weights are kept in :attr:`weights`.
    """

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.causal = bool(causal)
        self._mask: Any = None
        self._cache: tuple[Any, Any, Any, bool] | None = None
        self.weights: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"causal": self.causal}

    def set_mask(self, mask: Any) -> None:
        """Use ``mask`` (broadcastable to ``(..., T_q, T_k)``, True = may attend) from now on; None clears it."""
        self._mask = None if mask is None else as_mask(mask, self._label())

    def _split(self, x: Any) -> tuple[Any, Any, Any, bool]:
        if isinstance(x, (tuple, list)):
            if len(x) != 3:
                raise ValueError(f"{self._label()}: expected (q, k, v), got a sequence of {len(x)} arrays")
            q, k, v = (self._as_input(a) for a in x)
            stacked = False
        else:
            x = self._as_input(x, min_ndim=3)
            if x.shape[0] != 3:
                raise ValueError(f"{self._label()}: a stacked input has shape (3, ..., T, d) (q, k, v), got {tuple(x.shape)}")
            q, k, v = x[0], x[1], x[2]
            stacked = True
        if not (q.dtype == k.dtype == v.dtype):
            raise TypeError(f"{self._label()}: q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
        if q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1] or q.shape[:-2] != k.shape[:-2]:
            raise ValueError(f"{self._label()}: expected q (..., T_q, d_k), k (..., T_k, d_k), v (..., T_k, d_v) "
                             f"with the same leading axes, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
        return q, k, v, stacked

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        q, k, v, stacked = self._split(x)
        t_q, t_k = q.shape[-2], k.shape[-2]
        m = self._mask if mask is None else as_mask(mask, self._label())
        if m is not None:
            try:
                numpy.broadcast_shapes(tuple(m.shape), (*q.shape[:-1], t_k))
            except ValueError:
                raise ValueError(f"{self._label()}: mask of shape {tuple(m.shape)} does not broadcast to the "
                                 f"scores' shape {(*q.shape[:-1], t_k)} (..., T_q, T_k)") from None
        if self.causal:
            c = causal_mask(t_q, t_k)
            m = c if m is None else m & c
        out, weights = attention_forward(q, k, v, m)
        self.weights = weights
        self._cache = (q, k, v, stacked)
        return out

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise self._missing_forward()
        q, k, v, stacked = self._cache
        expected = (*q.shape[:-1], v.shape[-1])
        if tuple(grad_out.shape) != expected:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {expected}")
        grads = attention_backward(grad_out, q, k, v, self.weights)
        return backend.xp.stack(grads) if stacked else grads

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape[1:])           # stacked (3, ..., T, d) -> (..., T, d)


class MultiHeadSelfAttention(Module):
    r"""Multi-head self-attention on sequences of shape ``(batch, T, d_model)``.

    Parameters
    ----------
    d_model : int
        Width d of every position, in and out.
    n_heads : int
        Number of heads H; must divide ``d_model`` (head width d_h = d / H).
    bias : bool
        Biases in the query, value and output projections. The key projection
        has none: a key bias b_K adds q_i . b_K to every score of row i, a
        constant that softmax cancels, so its gradient would always be 0.
    causal : bool
        Causal masking (position t attends to positions <= t).
    init : str
        Initializer of the projections (default ``"xavier_uniform"``).
    rng : int, Generator or None
        Seed of the initial weights.
    dtype : float32 (default) or float64.

    Attributes
    ----------
    q_proj, k_proj, v_proj, out_proj : Linear(d_model, d_model)
        W_Q, W_K, W_V (the H heads side by side) and W_O (k_proj without bias).
    weights : array ``(batch, H, T, T)``, the last forward's attention weights.

    Notes
    -----
    Forward (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762), x of
    shape (B, T, d), heads split by reshaping (B, T, d) -> (B, H, T, d_h):

        Q = x W_Q^T + b_Q,  K = x W_K^T,  V = x W_V^T + b_V
        O_h = softmax(Q_h K_h^T / sqrt(d_h)) V_h    for every head h at once
        y = concat_h(O_h) W_O^T + b_O                (B, T, d)

    Backward: W_O's Linear turns dL/dy into dL/dconcat(O), which is split
    back into heads; :func:`attention_backward` gives dL/dQ, dL/dK, dL/dV,
    whose heads are merged and sent through the three projections' backward;
    x feeds all three, so

        dL/dx = dL/dQ W_Q + dL/dK W_K + dL/dV W_V.

    Masks: ``causal=True`` and/or a key padding mask of shape ``(batch, T)``,
    True for real tokens and False for padding, given as ``forward(x, mask=m)``
    or with :meth:`set_mask` (see :mod:`deltanet.modules.attention`). Padded
    positions still get an output (they attend to the real tokens); pool with
    the same mask (:class:`~deltanet.modules.pooling.MeanPool`) to ignore them.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, causal: bool = False, init: str = "xavier_uniform",
                 rng: Any = None, dtype: Any = None) -> None:
        super().__init__()
        for name, v in (("d_model", d_model), ("n_heads", n_heads)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MultiHeadSelfAttention: {name} must be a positive int, got {v!r}")
        if d_model % n_heads:
            raise ValueError(f"MultiHeadSelfAttention: n_heads must divide d_model, got d_model={d_model}, n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.causal = bool(causal)
        self.init = init
        self.dtype = backend.resolve_dtype(dtype)
        gen = backend.make_rng(rng)
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            # no key bias: it shifts each score row by the constant q . b_K, which softmax ignores (zero gradient)
            has_bias = bias and name != "k_proj"
            layer = Linear(d_model, d_model, bias=has_bias, init=init, rng=gen, dtype=self.dtype)
            setattr(self, name, self.add_child(name, layer))
        self._name_parameters()
        self._mask: Any = None
        self._cache: tuple[Any, Any, Any] | None = None
        self.weights: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"d_model": self.d_model, "n_heads": self.n_heads, "bias": self.q_proj.bias is not None,
                "causal": self.causal, "init": self.init, "dtype": self.dtype.name}

    def set_mask(self, mask: Any) -> None:
        """Use the key padding mask ``mask`` (``(batch, T)``, True = real token) from now on; None clears it."""
        self._mask = None if mask is None else as_mask(mask, self._label())

    def _attention_mask(self, mask: Any, batch: int, t: int) -> Any:
        m = self._mask if mask is None else as_mask(mask, self._label())
        if m is not None:
            if tuple(m.shape) != (batch, t):
                raise ValueError(f"{self._label()}: expected a padding mask of shape (batch, T) = {(batch, t)}, "
                                 f"got {tuple(m.shape)}; "
                                 "call set_mask(None) to clear a mask left from another batch")
            m = m[:, None, None, :]                  # (B, 1, 1, T): masks keys, for every head and query
        if self.causal:
            c = causal_mask(t)
            m = c if m is None else m & c
        return m

    def _split_heads(self, a: Any) -> Any:
        b, t, _ = a.shape
        return a.reshape(b, t, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)     # (B, H, T, d_h)

    def _merge_heads(self, a: Any) -> Any:
        b, _, t, _ = a.shape
        return a.transpose(0, 2, 1, 3).reshape(b, t, self.d_model)                     # (B, T, d)

    def forward(self, x: Any, training: bool = False, mask: Any = None) -> Any:
        x = as_sequence(self, x, self.d_model, self.dtype)
        b, t, _ = x.shape
        m = self._attention_mask(mask, b, t)
        q = self._split_heads(self.q_proj.forward(x))
        k = self._split_heads(self.k_proj.forward(x))
        v = self._split_heads(self.v_proj.forward(x))
        o, self.weights = attention_forward(q, k, v, m)
        self._cache = (q, k, v)
        return self.out_proj.forward(self._merge_heads(o))

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise self._missing_forward()
        q, k, v = self._cache
        g = self._split_heads(self.out_proj.backward(grad_out))
        gq, gk, gv = attention_backward(g, q, k, v, self.weights)
        grad_in = self.q_proj.backward(self._merge_heads(gq))
        grad_in += self.k_proj.backward(self._merge_heads(gk))
        grad_in += self.v_proj.backward(self._merge_heads(gv))
        return grad_in

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        t = input_shape[-2] if len(input_shape) >= 3 else 1
        projections = 4 * 2 * self.d_model * self.d_model * t
        return projections + 2 * 2 * t * t * self.d_model        # Q K^T and A V, all heads


def set_mask(model: Module, mask: Any) -> int:
    """Set ``mask`` on every mask-aware module of ``model`` (those with a ``set_mask`` method).

    Use it before ``forward`` when the attention layers sit in a container
    that passes no mask (``Sequential``); ``set_mask(model, None)`` clears them.
    The mask must describe the sequence as those layers see it (with a
    :class:`~deltanet.modules.pooling.ClassToken` in front, extend it with
    ``ClassToken.extend_mask``). Returns the number of modules updated.
    """
    count = 0
    for m in model.modules():
        setter = getattr(m, "set_mask", None)
        if callable(setter):
            setter(mask)
            count += 1
    return count


__all__ = ["MultiHeadSelfAttention", "ScaledDotProductAttention", "as_mask", "as_sequence", "attention_backward",
           "attention_forward", "causal_mask", "set_mask"]
