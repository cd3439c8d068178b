"""Dense (DenseNet-style) connections: every layer sees everything before it."""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from .activations import ACTIVATIONS
from .base import Module, build
from .containers import Sequential
from .linear import Linear


class DenseBlock(Module):
    r"""DenseNet-style block: layer i reads the concatenation of the block input and all earlier outputs.

    Parameters
    ----------
    layers : list of Module
        f_1, ..., f_L. Layer i maps width d_0 + k_1 + ... + k_{i-1} to its own
        width k_i (for an MLP, ``Sequential(Linear(d_0 + sum k, k_i), ReLU())``;
        :func:`dense_block` builds that with a fixed growth rate k).
    include_input : bool
        Whether the output starts with the block input (DenseNet's choice,
        the default) or holds only the L layers' outputs.

    Notes
    -----
    Huang et al. 2017, "Densely Connected Convolutional Networks"
    (https://arxiv.org/abs/1608.06993), for vectors; ``[a, b]`` is
    concatenation along the last (feature) axis:

        h_0 = x
        h_i = f_i([h_0, h_1, ..., h_{i-1}])           i = 1..L
        y   = [h_0, h_1, ..., h_L]    (or [h_1, ..., h_L] without the input)

    Shapes: x ``(..., d_0)`` -> y ``(..., d_0 + k_1 + ... + k_L)``.

    Backward: h_j feeds the output and every later layer, so its gradient is
    the sum of those contributions. Going from i = L down to 1, with G the
    gradient of the whole concatenation [h_0, ..., h_L] (started at dL/dy):

        G[:, h_0..h_{i-1}] += f_i.backward(G[:, h_i])

    and dL/dx = G[:, h_0] at the end -- one buffer, one slice-add per layer.

    Config: ``{"type": "DenseBlock", "layers": [...], "include_input": true}``.
    """

    def __init__(self, layers: list[Module] | tuple[Module, ...], include_input: bool = True) -> None:
        super().__init__()
        if isinstance(layers, Module) or not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"DenseBlock: layers must be a non-empty list of Modules, got {layers!r}")
        for i, m in enumerate(layers):
            self.add_child(str(i), m)
        self.include_input = bool(include_input)
        self._name_parameters()
        self._widths: list[int] | None = None
        self._lead: tuple[int, ...] = ()
        self._dtype: Any = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        extra = set(config) - {"layers", "include_input"}
        if extra or "layers" not in config:
            raise ValueError(f"DenseBlock: expected keys 'layers' and optional 'include_input', got {sorted(config)}")
        return cls([build(c) for c in config["layers"]], include_input=config.get("include_input", True))

    def get_config(self) -> dict[str, Any]:
        return {"layers": [m.config() for m in self.children()], "include_input": self.include_input}

    def __len__(self) -> int:
        return len(self._children)

    def forward(self, x: Any, training: bool = False) -> Any:
        xp = backend.xp
        if not hasattr(x, "dtype"):
            x = numpy.asarray(x, dtype=backend.get_default_dtype())
        if x.ndim < 2:
            raise ValueError(f"{self._label()}: expected input of shape (batch, features), got {tuple(x.shape)}")
        pieces = [x]
        features = x
        for i, (_, layer) in enumerate(self._children):
            h = layer.forward(features, training=training)
            if h.shape[:-1] != x.shape[:-1]:
                raise ValueError(f"{self._label()}: layer {i} changed the leading axes {tuple(x.shape[:-1])} "
                                 f"to {tuple(h.shape[:-1])}")
            if i == 0 and h.dtype != x.dtype:
                pieces[0] = x = x.astype(h.dtype)      # one dtype for the concatenation (the layers')
            pieces.append(h)
            features = xp.concatenate(pieces, axis=-1)  # [h_0, ..., h_i]
        self._widths = [p.shape[-1] for p in pieces]
        self._lead = tuple(x.shape[:-1])
        self._dtype = features.dtype
        return features if self.include_input else features[..., x.shape[-1]:]

    def backward(self, grad_out: Any) -> Any:
        if self._widths is None:
            raise self._missing_forward()
        widths = self._widths
        total = sum(widths)
        first = 0 if self.include_input else widths[0]
        expected = (*self._lead, total - first)
        if tuple(grad_out.shape) != expected:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {expected}")
        xp = backend.xp
        alloc = xp.zeros if first else xp.empty        # without the input in the output, dL/dx starts at 0
        grad = alloc((*self._lead, total), dtype=grad_out.dtype)
        grad[..., first:] = grad_out
        offsets = numpy.cumsum([0, *widths])
        for i in range(len(self._children) - 1, -1, -1):
            start, stop = int(offsets[i + 1]), int(offsets[i + 2])
            layer = self._children[i][1]
            grad[..., :start] += layer.backward(xp.ascontiguousarray(grad[..., start:stop]))   # to h_0..h_{i}
        return xp.ascontiguousarray(grad[..., : widths[0]])

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        total = 0 if not self.include_input else shape[-1]
        for layer in self.children():
            k = layer.output_shape(shape)[-1]
            total += k
            shape = (*shape[:-1], shape[-1] + k)
        return (*input_shape[:-1], total)

    def _child_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[Module, tuple[int, ...]]]:
        out, shape = [], tuple(input_shape)
        for layer in self.children():
            out.append((layer, shape))
            shape = (*shape[:-1], shape[-1] + layer.output_shape(shape)[-1])
        return out

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {m!r}".replace("\n", "\n  ") for i, m in enumerate(self.children()))
        return f"DenseBlock(include_input={self.include_input},\n{inner}\n)"


def dense_block(d_in: int, growth_rate: int, n_layers: int, activation: str = "relu", *, include_input: bool = True,
                init: str | None = None, rng: Any = None, dtype: Any = None) -> DenseBlock:
    """A :class:`DenseBlock` of ``n_layers`` x ``Sequential(Linear(d_in + i k, k), activation)``, k = ``growth_rate``.

    The output width is d_in + n_layers k (or n_layers k without the input).
    """
    if activation not in ACTIVATIONS or activation == "softmax":
        raise ValueError(f"dense_block: unknown activation {activation!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}")
    for name, v in (("d_in", d_in), ("growth_rate", growth_rate), ("n_layers", n_layers)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"dense_block: {name} must be a positive int, got {v!r}")
    gen = backend.make_rng(rng)
    init = init or ("he_normal" if activation in ("relu", "leaky_relu") else "xavier_normal")
    layers = [Sequential(Linear(d_in + i * growth_rate, growth_rate, init=init, rng=gen, dtype=dtype), ACTIVATIONS[activation]())
              for i in range(n_layers)]
    return DenseBlock(layers, include_input=include_input)
