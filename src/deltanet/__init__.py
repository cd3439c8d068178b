"""deltanet: multi-layer perceptrons trained by explicit, layer-wise backpropagation, on NumPy.

>>> import deltanet as dn
>>> net = dn.Sequential(dn.Linear(4, 16, init="he"), dn.ReLU(), dn.Linear(16, 3))
>>> loss_fn = dn.SoftmaxCrossEntropy()
"""

from __future__ import annotations

from . import backend, init
from .architecture import count_flops, geometric_hidden_sizes, mlp
from .backend import get_default_dtype, set_default_dtype
from .errors import GradcheckError, NonFiniteError
from .gradcheck import GradcheckResult, gradcheck
from .io import load, load_model_file, save
from .losses import BinaryCrossEntropyWithLogits, Loss, MeanSquaredError, SoftmaxCrossEntropy, get_loss
from .modules import (
    BatchNorm,
    Dropout,
    Identity,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    build,
)
from .modules.attention import MultiHeadSelfAttention, ScaledDotProductAttention, set_mask
from .modules.dense import DenseBlock, dense_block
from .modules.gelu import GELU
from .modules.layernorm import LayerNorm
from .modules.pooling import ClassToken, MeanPool, TokenPool
from .modules.positional import PositionalEmbedding, SinusoidalPositionalEncoding
from .modules.transformer import TransformerEncoderBlock, transformer_classifier
from .parameter import Parameter
from .training import (
    Callback,
    EarlyStopping,
    GradNormThreshold,
    History,
    LossThreshold,
    ModelCheckpoint,
    ProgressBar,
    Trainer,
)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm", "BinaryCrossEntropyWithLogits", "Dropout", "GradcheckError", "GradcheckResult", "Identity",
    "LeakyReLU", "Linear", "Loss", "MeanSquaredError", "Module", "NonFiniteError", "Parameter", "ReLU", "Residual",
    "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "Tanh", "backend", "build", "count_flops",
    "get_default_dtype", "get_loss", "geometric_hidden_sizes", "gradcheck", "init", "mlp", "set_default_dtype",
]
__all__ += [
    "ClassToken", "DenseBlock", "GELU", "LayerNorm", "MeanPool", "MultiHeadSelfAttention", "PositionalEmbedding",
    "ScaledDotProductAttention", "SinusoidalPositionalEncoding", "TokenPool", "TransformerEncoderBlock", "dense_block",
    "set_mask", "transformer_classifier",
]
__all__ += ["load", "load_model_file", "save"]
__all__ += ["Callback", "EarlyStopping", "GradNormThreshold", "History", "LossThreshold", "ModelCheckpoint",
            "ProgressBar", "Trainer"]
