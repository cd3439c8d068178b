"""Layers, activations, normalization, dropout and containers."""

from .activations import ACTIVATIONS, Activation, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, log_softmax, softmax
from .attention import (
    MultiHeadSelfAttention,
    ScaledDotProductAttention,
    attention_backward,
    attention_forward,
    causal_mask,
    set_mask,
)
from .base import Module, build, check_finite, registered_types
from .containers import Residual, Sequential, input_layer
from .dense import DenseBlock, dense_block
from .dropout import Dropout
from .gelu import GELU
from .layernorm import LayerNorm
from .linear import Linear
from .normalization import BatchNorm
from .pooling import ClassToken, MeanPool, TokenPool
from .positional import PositionalEmbedding, SinusoidalPositionalEncoding
from .reshape import Reshape
from .transformer import TransformerEncoderBlock, transformer_classifier

__all__ = [
    "ClassToken", "DenseBlock", "GELU", "LayerNorm", "MeanPool", "MultiHeadSelfAttention", "PositionalEmbedding",
    "Reshape", "ScaledDotProductAttention", "SinusoidalPositionalEncoding", "TokenPool", "TransformerEncoderBlock", "attention_backward",
    "attention_forward", "causal_mask", "dense_block", "input_layer", "set_mask", "transformer_classifier",
    "ACTIVATIONS", "Activation", "BatchNorm", "Dropout", "Identity", "LeakyReLU", "Linear", "Module", "ReLU",
    "Residual", "Sequential", "Sigmoid", "Softmax", "Tanh", "build", "check_finite", "log_softmax",
    "registered_types", "softmax",
]
