"""deltanet: multi-layer perceptrons trained by explicit, layer-wise backpropagation, on NumPy.

>>> import deltanet as dn
>>> net = dn.Sequential(dn.Linear(4, 16, init="he"), dn.ReLU(), dn.Linear(16, 3))
>>> loss_fn = dn.SoftmaxCrossEntropy()

Subpackages: :mod:`deltanet.optim` (optimizers, schedules, clipping),
:mod:`deltanet.training` (the Trainer), :mod:`deltanet.data` (datasets),
:mod:`deltanet.sklearn` (scikit-learn estimators, needs the ``sklearn`` extra),
:mod:`deltanet.export` (ONNX export, needs the ``onnx`` extra).
"""

from __future__ import annotations

from . import backend, data, init, optim, training
from .architecture import count_flops, geometric_hidden_sizes, mlp
from .backend import get_default_dtype, set_default_dtype
from .errors import ExportError, GradcheckError, NonFiniteError
from .export import export_onnx
from .gradcheck import GradcheckResult, gradcheck
from .inference import predict
from .io import load, load_model_file, save
from .losses import BinaryCrossEntropyWithLogits, Loss, MeanSquaredError, SoftmaxCrossEntropy, get_loss
from .modules import (
    GELU,
    BatchNorm,
    ClassToken,
    DenseBlock,
    Dropout,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    MeanPool,
    Module,
    MultiHeadSelfAttention,
    PositionalEmbedding,
    ReLU,
    Reshape,
    Residual,
    ScaledDotProductAttention,
    Sequential,
    Sigmoid,
    SinusoidalPositionalEncoding,
    Softmax,
    Tanh,
    TokenPool,
    TransformerEncoderBlock,
    build,
    dense_block,
    set_mask,
    transformer_classifier,
)
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
    "GELU", "BatchNorm", "BinaryCrossEntropyWithLogits", "Callback", "ClassToken", "DenseBlock", "Dropout",
    "EarlyStopping", "ExportError", "GradNormThreshold", "GradcheckError", "GradcheckResult", "History", "Identity", "LayerNorm",
    "LeakyReLU", "Linear", "Loss", "LossThreshold", "MeanPool", "MeanSquaredError", "ModelCheckpoint", "Module",
    "MultiHeadSelfAttention", "NonFiniteError", "Parameter", "PositionalEmbedding", "ProgressBar", "ReLU", "Reshape", "Residual",
    "ScaledDotProductAttention", "Sequential", "Sigmoid", "SinusoidalPositionalEncoding", "Softmax",
    "SoftmaxCrossEntropy", "Tanh", "TokenPool", "Trainer", "TransformerEncoderBlock", "backend", "build",
    "count_flops", "data", "dense_block", "export_onnx", "geometric_hidden_sizes", "get_default_dtype", "get_loss", "gradcheck",
    "init", "load", "load_model_file", "mlp", "optim", "predict", "save", "set_default_dtype", "set_mask", "training",
    "transformer_classifier",
]
