"""Building plain MLPs, and the reference's hidden-width heuristic."""

from __future__ import annotations

from typing import Any

from . import backend
from .constraints import check
from .modules.activations import ACTIVATIONS, LeakyReLU, ReLU
from .modules.base import Module
from .modules.containers import Sequential
from .modules.dropout import Dropout
from .modules.linear import Linear
from .modules.normalization import BatchNorm


def geometric_hidden_sizes(d_in: int, d_out: int, n_hidden: int) -> list[int]:
    """Hidden widths from the reference's heuristic d_l = sqrt(d_{l-1} d_{l+1}).

    A width that is the geometric mean of its neighbours at every layer is a
    geometric progression from d_0 = d_in to d_L = d_out (L = n_hidden + 1):
    d_l = d_in (d_out / d_in)^(l / L), rounded, at least 1.

    >>> geometric_hidden_sizes(784, 10, 2)
    [183, 43]
    """
    if n_hidden < 0:
        raise ValueError(f"n_hidden must be >= 0, got {n_hidden}")
    if d_in < 1 or d_out < 1:
        raise ValueError(f"widths must be positive, got d_in={d_in}, d_out={d_out}")
    n_layers = n_hidden + 1
    return [max(1, round(d_in * (d_out / d_in) ** (l / n_layers))) for l in range(1, n_layers)]


def default_init(activation: str) -> str:
    """He initialization for the ReLU family, Xavier for the saturating activations."""
    return "he_normal" if activation in ("relu", "leaky_relu") else "xavier_normal"


def mlp(sizes: list[int], activation: str = "relu", *, dropout: float = 0.0, batch_norm: bool = False,
        init: str | None = None, output_init: str = "xavier_normal", leaky_alpha: float = 0.01,
        rng: Any = None, dtype: Any = None, input_dropout: float = 0.0, device: str | None = None) -> Sequential:
    """A plain MLP: ``[Dropout] ->`` then ``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden
    layer, then a final ``Linear`` producing logits (pair it with a fused loss such as
    :class:`~deltanet.losses.SoftmaxCrossEntropy`).

    Parameters
    ----------
    sizes : list of int
        ``[d_0, d_1, ..., d_L]``: input width, hidden widths, output width.
    activation : str
        One of ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid`` (``logistic``), ``identity``.
    dropout : float
        Dropout rate after each hidden activation (0 disables).
    input_dropout : float
        Dropout rate of the input features, before the first layer (0 disables; Srivastava et al.,
        2014, drop 20% of an image's pixels and half of the hidden units).
    device : ``"cpu"``, ``"cuda"`` or None
        Move the network there (:meth:`Module.to`; ``"cuda"`` needs CuPy and an NVIDIA GPU). None: the
        active namespace.
    batch_norm : bool
        Batch normalization between each hidden ``Linear`` and its activation.
    init : str, optional
        Hidden-layer initializer; default :func:`default_init` of the activation.
    output_init : str
        Initializer of the output layer.
    rng : int or Generator
        Seed for weights and dropout masks.
    """
    if len(sizes) < 2:
        raise ValueError(f"mlp needs at least [d_in, d_out], got {sizes}")
    if activation not in ACTIVATIONS or activation == "softmax":
        valid = sorted(k for k in ACTIVATIONS if k != "softmax")
        raise ValueError(f"unknown hidden activation {activation!r}; choose one of: {', '.join(valid)}")
    dropout = check("dropout", dropout)
    input_dropout = check("dropout", input_dropout, "input_dropout")
    batch_norm = check("batch_norm", batch_norm)
    gen = backend.make_rng(rng)
    dtype = backend.resolve_dtype(dtype)
    init = init or default_init(activation)
    layers: list[Module] = []
    if input_dropout > 0:
        layers.append(Dropout(input_dropout, rng=gen.spawn(1)[0]))
    for d_prev, d in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers.append(Linear(d_prev, d, bias=not batch_norm, init=init, rng=gen, dtype=dtype))
        if batch_norm:
            layers.append(BatchNorm(d, dtype=dtype))
        if activation == "leaky_relu":
            layers.append(LeakyReLU(leaky_alpha))
        elif activation == "relu":
            layers.append(ReLU())
        else:
            layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout, rng=gen.spawn(1)[0]))
    layers.append(Linear(sizes[-2], sizes[-1], init=output_init, rng=gen, dtype=dtype))
    net = Sequential(*layers)
    return net.to(device) if device is not None else net


def count_flops(module: Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations (2 x multiply-adds of the matrix products) of one forward pass per sample."""
    return module.flops(input_shape)


__all__ = ["count_flops", "default_init", "geometric_hidden_sizes", "mlp"]
