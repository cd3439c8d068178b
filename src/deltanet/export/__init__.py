"""Export to ONNX: a deltanet model as a graph that onnxruntime (and any ONNX runtime) evaluates.

>>> dn.export_onnx(net, "model.onnx")                          # doctest: +SKIP
>>> dn.export_onnx("runs/r/model.safetensors", "model.onnx")   # with the file's preprocessing  # doctest: +SKIP

The graph computes what :func:`deltanet.predict` computes (eval mode: dropout
off, batch norm on its running statistics), in float32 or float64, for any
batch size: one input ``"input"`` of shape ``(batch, ...)`` and one output
``"output"`` (the logits, for networks trained with the fused losses). It is
built with the ``onnx`` package's helpers (``onnx.helper``,
``onnx.numpy_helper``), an optional dependency: ``pip install 'deltanet[onnx]'``.

Modules: :mod:`.graph` (the graph under construction, the converter registry),
:mod:`.layers` (Linear, activations, normalization, dropout, reshape,
containers), :mod:`.sequence` (attention, the Transformer block, positional
information, pooling), :mod:`.preprocessing` (a model file's standardization).
Every module type of deltanet has a converter; anything else (a module class
of your own, a padding mask set on an attention layer) raises
:class:`~deltanet.errors.ExportError` naming the module by its path in the
model (``"2.block.0"``).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ..errors import ExportError

#: The default operator set: the first with LayerNormalization; onnxruntime runs it since version 1.14.
DEFAULT_OPSET = 17
#: The oldest operator set supported (Softmax over one axis, Unsqueeze with its axes as an input).
MIN_OPSET = 13

INPUT, OUTPUT = "input", "output"

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportError", "export_onnx", "to_onnx"]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package, an optional extra: pip install 'deltanet[onnx]'") from None
    return onnx


def to_onnx(model: Any, *, opset: int = DEFAULT_OPSET, dtype: Any = None, input_shape: Any = None,
            preprocessing: dict[str, Any] | None = None) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) of ``model``, without writing it; see :func:`export_onnx`."""
    onnx = _onnx()
    from .. import __version__, backend
    from ..inference import model_dtype
    from ..io import ModelFile, load_model_file
    from ..modules.base import Module
    from . import layers, sequence  # noqa: F401  (registers the converters)
    from . import preprocessing as prep
    from .graph import Graph, Value, convert

    mf = None
    if isinstance(model, (str, os.PathLike)):
        mf = load_model_file(model)
    elif isinstance(model, ModelFile):
        mf = model
    elif not isinstance(model, Module):
        raise TypeError(f"export_onnx expects a deltanet Module, a ModelFile or the path of a model file, got {type(model).__name__}")
    net = mf.model if mf is not None else model
    if preprocessing is None:
        preprocessing = dict(mf.preprocessing or {}) if mf is not None else {}
    if not isinstance(preprocessing, dict):
        raise TypeError(f"preprocessing must be a dict (a model file's preprocessing), got {type(preprocessing).__name__}")
    prep.check(preprocessing)
    max_opset = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= max_opset:
        raise ValueError(f"opset must be an int from {MIN_OPSET} to {max_opset} (the newest this onnx package knows), got {opset!r}")
    g = Graph(backend.resolve_dtype(dtype) if dtype is not None else model_dtype(net), opset)
    g.name(INPUT)
    g.name(OUTPUT)

    shape = _input_shape(net, input_shape, preprocessing)
    x = Value(INPUT, shape)
    if preprocessing.get("standardizer"):
        x = prep.standardize(g, x, preprocessing["standardizer"])
    y = convert(g, net, x, "")
    if y.name == INPUT:      # the model changes nothing (Identity, Dropout): the output is a copy of the input
        y = Value(g.op("Identity", [INPUT], "output"), y.shape)
    for node in g.nodes:     # the last value is the graph's output, under its public name
        node.input[:] = [OUTPUT if n == y.name else n for n in node.input]
        node.output[:] = [OUTPUT if n == y.name else n for n in node.output]

    helper = onnx.helper
    doc = (f"deltanet {type(net).__name__} in eval mode (dropout off, batch norm on its running statistics), "
           f"{g.dtype.name}; input {INPUT!r}: {'raw features (standardized in the graph)' if preprocessing.get('standardizer') else 'the network input'}; "
           f"output {OUTPUT!r}: the network output (logits for classifiers)")
    graph = helper.make_graph(g.nodes, "deltanet", [g.value_info(Value(INPUT, shape))], [g.value_info(y, OUTPUT)],
                              initializer=g.initializers, doc_string=doc)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="deltanet", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets), doc_string=doc)
    props = {"deltanet.model": json.dumps(net.config(), separators=(",", ":")), **prep.metadata(preprocessing)}
    meta = (mf.metadata or {}) if mf is not None else {}
    names = meta.get("feature_names") or (meta.get("sklearn") or {}).get("feature_names_in_")
    if isinstance(names, list):
        props["feature_names"] = json.dumps([str(n) for n in names])
    if isinstance(meta.get("task"), str):
        props["task"] = meta["task"]
    helper.set_model_props(proto, props)
    size = proto.ByteSize()
    if size >= 2**31:
        raise ExportError(f"cannot export to ONNX: the model takes {size / 2**30:.1f} GiB, more than the 2 GiB one ONNX "
                          "file (a protobuf message) can hold")
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET, dtype: Any = None,
                input_shape: Any = None, preprocessing: dict[str, Any] | None = None) -> Any:
    """Write ``model`` as an ONNX file that computes :func:`deltanet.predict`'s outputs.

    Parameters
    ----------
    model : Module, ModelFile or path
        A network; or a model file (its path, or :func:`deltanet.load_model_file`'s
        result), whose preprocessing (standardization) goes into the graph
        and whose class and feature names go into the ONNX metadata
        (``metadata_props``: ``class_names``, ``feature_names``, JSON lists).
    path : str or path-like
        The ``.onnx`` file, written atomically (:func:`deltanet.io.atomic_write`).
    opset : int
        ONNX operator set, from 13 to the newest the installed ``onnx`` knows
        (default 17). From 17 on LayerNorm is one LayerNormalization node, from
        20 on GELU is one Gelu node; before, their formulas in elementary nodes.
    dtype : float32, float64 or None
        The graph's dtype, of its input, weights and output (default: the
        model's). A float32 network exported in float64 computes what its
        float64 copy computes (as the scikit-learn estimators predict).
    input_shape : sequence, optional
        The input's shape, ``None`` (or a name) for a dynamic axis. The default
        is read from the model: ``(batch, in_features)`` for a network that
        starts with a Linear layer, ``(batch, sequence, d)`` for one whose
        first layers lead to a sequence module, ``(3, batch, sequence, d_k)``
        for ``ScaledDotProductAttention`` (q, k, v stacked).
    preprocessing : dict, optional
        Overrides the model file's (``{}``: export the network alone). Known
        entries: ``standardizer`` (in the graph), ``class_names`` (metadata).

    Returns
    -------
    onnx.ModelProto : what was written.

    Raises
    ------
    ExportError
        A module has no ONNX counterpart (the message names it by its path in
        the model), holds a padding mask, does not fit the input shape, or
        the preprocessing has an entry the graph cannot compute.
    ImportError
        The ``onnx`` package is not installed.
    """
    from ..io import atomic_write

    proto = to_onnx(model, opset=opset, dtype=dtype, input_shape=input_shape, preprocessing=preprocessing)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return proto


def _input_shape(net: Any, given: Any, preprocessing: dict[str, Any]) -> tuple[Any, ...]:
    """The graph input's shape: ``given`` (None -> a named dynamic axis), or the one the model implies."""
    if given is not None:
        dims = list(given)
        if not dims:
            raise ValueError("input_shape must have at least one axis")
        shape = []
        for i, d in enumerate(dims):
            if d is None:
                d = "batch" if i == 0 else f"dim_{i}"
            elif not isinstance(d, str) and not (isinstance(d, int) and not isinstance(d, bool) and d >= 1):
                raise ValueError(f"input_shape entries are positive ints, None or names of dynamic axes, got {d!r}")
            shape.append(d)
        return tuple(shape)
    std = preprocessing.get("standardizer")
    if isinstance(std, dict) and isinstance(std.get("mean"), list):
        return ("batch", len(std["mean"]))
    return _implied_shape(net)


def _implied_shape(net: Any) -> tuple[Any, ...]:
    """Rank and width of the input from the modules the input meets first (see :func:`export_onnx`)."""
    from ..modules.attention import MultiHeadSelfAttention, ScaledDotProductAttention
    from ..modules.containers import Residual, Sequential
    from ..modules.dense import DenseBlock
    from ..modules.layernorm import LayerNorm
    from ..modules.linear import Linear
    from ..modules.normalization import BatchNorm
    from ..modules.pooling import ClassToken, MeanPool, TokenPool
    from ..modules.positional import PositionalEmbedding, SinusoidalPositionalEncoding
    from ..modules.reshape import Reshape
    from ..modules.transformer import TransformerEncoderBlock

    sequence_types = (MultiHeadSelfAttention, TransformerEncoderBlock, ClassToken, PositionalEmbedding,
                      SinusoidalPositionalEncoding, MeanPool, TokenPool)

    def first_path(m: Any) -> Any:       # the modules the input goes through, in order, up to the end of the model
        if type(m) is Sequential:
            for child in m.children():
                yield from first_path(child)
        elif type(m) is Residual:
            yield from first_path(m.block)
        elif type(m) is DenseBlock:
            yield from first_path(m.children()[0])
        else:
            yield m

    width: Any = None
    for m in first_path(net):
        if width is None:
            if type(m) is Linear:
                width = m.in_features
            elif type(m) is BatchNorm:
                width = m.num_features
            elif type(m) is LayerNorm:
                width = m.d
            elif isinstance(m, sequence_types) and hasattr(m, "d_model"):
                width = m.d_model
        if type(m) is ScaledDotProductAttention and width is None:
            return (3, "batch", "sequence", "d_k")
        if type(m) is Reshape:
            if width is None and -1 not in m.shape:
                width = math.prod(m.shape)
            break                    # a table of flat features turned into what follows
        if isinstance(m, sequence_types):
            return ("batch", "sequence", width if width is not None else "features")
    return ("batch", width if width is not None else "features")
