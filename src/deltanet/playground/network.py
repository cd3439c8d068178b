"""The network a playground configuration describes, built from deltanet's modules, and the presets.

Hidden layer l is ``Linear -> [BatchNorm] -> activation_l -> [Dropout]``; with
``residual`` on, a hidden layer as wide as the one before it becomes
``Residual(Sequential(Linear, [BatchNorm], activation_l))`` (h_l = f(W h_{l-1} + b) + h_{l-1}),
then its dropout. The output layer is a ``Linear`` producing logits
(classification, paired with :class:`~deltanet.losses.SoftmaxCrossEntropy`) or
the prediction (regression, :class:`~deltanet.losses.MeanSquaredError`).

:class:`Layer` keeps a handle on each layer's modules, so that the session can
read the weights, what the forward pass cached and what the backward pass
computed, layer by layer, from the modules themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..architecture import default_init
from ..modules.activations import ACTIVATIONS
from ..modules.base import Module
from ..modules.containers import Residual, Sequential
from ..modules.dropout import Dropout
from ..modules.linear import Linear
from ..modules.normalization import BatchNorm

#: The hidden activations offered (names of :data:`deltanet.modules.activations.ACTIVATIONS`).
HIDDEN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu", "identity")
ACTIVATION_NAMES = {ACTIVATIONS[a]: a for a in HIDDEN_ACTIVATIONS}
MAX_LAYERS = 10
MAX_UNITS = 12


@dataclass
class Layer:
    """The modules of one layer: ``z = W h + b`` (``linear``), then (hidden layers) ``h = f(z)``.

    ``out`` is the module whose output is the layer's h_l (the activation, the
    dropout after it, or the ``Residual`` around the layer).
    """

    index: int                  # 1-based, as in the course text's W^(l)
    linear: Linear
    activation: Module | None = None
    activation_name: str = "identity"
    norm: BatchNorm | None = None
    dropout: Dropout | None = None
    residual: Residual | None = None
    out: Module | None = None

    @property
    def units(self) -> int:
        return self.linear.out_features

    @property
    def is_output(self) -> bool:
        return self.activation is None


def build_network(config: dict[str, Any], n_inputs: int, n_outputs: int) -> tuple[Sequential, list[Layer]]:
    """The network of ``config`` (hidden widths, per-layer activations, residual, batch norm, dropout, init seed)."""
    seed = int(config.get("init_seed", 0))
    hidden = [int(u) for u in config["hidden"]]
    acts = list(config["activations"])
    modules: list[Module] = []
    layers: list[Layer] = []
    width = n_inputs
    for i, units in enumerate(hidden):
        name = acts[i]
        linear = Linear(width, units, bias=not config["batch_norm"], init=default_init(name), rng=seed + 1000 * i)
        norm = BatchNorm(units) if config["batch_norm"] else None
        act = ACTIVATIONS[name]()
        block: list[Module] = [linear, *([norm] if norm is not None else []), act]
        layer = Layer(i + 1, linear, act, name, norm)
        if config["residual"] and units == width and i > 0:
            layer.residual = Residual(Sequential(*block))
            modules.append(layer.residual)
            layer.out = layer.residual
        else:
            modules.extend(block)
            layer.out = act
        if float(config["dropout"]) > 0:
            layer.dropout = Dropout(float(config["dropout"]), rng=seed + 1000 * i + 7)
            modules.append(layer.dropout)
            layer.out = layer.dropout
        layers.append(layer)
        width = units
    head = Linear(width, n_outputs, init="xavier_normal", rng=seed + 1000 * len(hidden))
    modules.append(head)
    layers.append(Layer(len(hidden) + 1, head, out=head))
    return Sequential(*modules), layers


def layers_of(model: Module) -> list[Layer]:
    """The :class:`Layer` list of a model of the playground's form (one read back from a model file)."""
    if not isinstance(model, Sequential):
        raise ValueError("the playground shows Sequential MLPs; this model file holds a "
                         f"{type(model).__name__}")
    layers: list[Layer] = []
    current: Layer | None = None

    def take(m: Module, residual: Residual | None) -> None:
        nonlocal current
        if isinstance(m, Linear):
            current = Layer(len(layers) + 1, m, out=m, residual=residual)
            layers.append(current)
        elif current is None:
            raise ValueError(f"the model starts with {type(m).__name__}, not a Linear layer")
        elif isinstance(m, BatchNorm):
            current.norm = m
        elif isinstance(m, Dropout):
            current.dropout, current.out = m, m
        elif type(m) in ACTIVATION_NAMES:
            current.activation, current.out = m, (residual or m)
            current.activation_name = ACTIVATION_NAMES[type(m)]
        else:
            raise ValueError(f"the playground cannot show a {type(m).__name__} layer")

    for m in model.children():
        if isinstance(m, Residual):
            inner = m.block.children() if isinstance(m.block, Sequential) else [m.block]
            for sub in inner:
                take(sub, m)
        else:
            take(m, None)
    if not layers or layers[-1].activation is not None:
        raise ValueError("the model must end with a Linear output layer (logits)")
    return layers


def config_of(layers: list[Layer]) -> dict[str, Any]:
    """The network keys of a playground configuration that describe ``layers``."""
    hidden = layers[:-1]
    return {"hidden": [lay.units for lay in hidden], "activations": [lay.activation_name for lay in hidden],
            "batch_norm": any(lay.norm is not None for lay in layers),
            "residual": any(lay.residual is not None for lay in layers),
            "dropout": next((lay.dropout.rate for lay in layers if lay.dropout is not None), 0.0)}


#: Presets: configuration keys they set (the rest stays as it is).
PRESETS: dict[str, dict[str, Any]] = {
    "deep_sigmoid": {"dataset": "circle", "features": ["x1", "x2"], "hidden": [6] * 8, "activations": ["sigmoid"] * 8,
                     "residual": False, "batch_norm": False, "dropout": 0.0, "optimizer": "sgd", "lr": 0.3,
                     "schedule": "constant", "batch_size": 10, "regularization": "none"},
    "deep_relu_residual": {"dataset": "circle", "features": ["x1", "x2"], "hidden": [6] * 8, "activations": ["relu"] * 8,
                           "residual": True, "batch_norm": False, "dropout": 0.0, "optimizer": "sgd", "lr": 0.03,
                           "schedule": "constant", "batch_size": 10, "regularization": "none"},
}

__all__ = ["HIDDEN_ACTIVATIONS", "MAX_LAYERS", "MAX_UNITS", "PRESETS", "Layer", "build_network", "config_of", "layers_of"]
