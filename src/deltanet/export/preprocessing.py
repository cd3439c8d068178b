"""The preprocessing stored in a model file, in front of the network's nodes.

A model file's ``preprocessing`` (see :mod:`deltanet.io`) holds

- ``"standardizer"``: a fitted :class:`~deltanet.data.Standardizer`,
  z = (x - mean) / scale, which ``deltanet predict`` applies to the raw
  features in float64 before the network (in the model's dtype). The graph does
  the same: Cast to float64, Sub, Div, Cast back; its input is the raw
  features;
- ``"class_names"``: the labels of the outputs, which change no number; they go
  into the ONNX model's metadata (``class_names``, a JSON list).

Any other entry might change the inputs in a way the graph would not: it is
refused rather than left out.
"""

from __future__ import annotations

import json
from typing import Any

import numpy

from ..errors import ExportError
from .graph import Graph, Value, format_shape

#: The entries this module knows: those that change the inputs, and those that only label the outputs.
KNOWN = ("standardizer", "class_names")


def check(preprocessing: dict[str, Any]) -> None:
    unknown = sorted(set(preprocessing) - set(KNOWN))
    if unknown:
        raise ExportError(f"cannot export to ONNX: the preprocessing entries {unknown} have no ONNX counterpart "
                          f"(known: {', '.join(KNOWN)}); pass preprocessing={{}} to export the network alone")


def standardize(g: Graph, x: Value, spec: dict[str, Any]) -> Value:
    """z = (x - mean) / scale in float64, as ``deltanet predict`` computes it, then in the graph's dtype."""
    from ..data import Standardizer

    try:
        scaler = Standardizer.from_dict(spec)
    except (ValueError, TypeError) as exc:
        raise ExportError(f"cannot export to ONNX: the stored standardizer is damaged: {exc}") from None
    assert scaler.mean_ is not None and scaler.scale_ is not None
    n = int(scaler.n_features_in_ or len(scaler.mean_))
    if x.rank != 2 or (isinstance(x.shape[-1], int) and x.shape[-1] != n):
        raise ExportError(f"cannot export to ONNX: the stored standardizer takes (batch, {n}) features, the model's "
                          f"input has shape {format_shape(x.shape)}")
    z = g.cast(x.name, numpy.float64, "standardize") if g.dtype != numpy.float64 else x.name
    z = g.op("Sub", [z, g.const(scaler.mean_, "standardize.mean", numpy.float64)], "standardize")
    z = g.op("Div", [z, g.const(scaler.scale_, "standardize.scale", numpy.float64)], "standardize")
    if g.dtype != numpy.float64:
        z = g.cast(z, g.dtype, "standardize")
    return Value(z, (x.shape[0], n))


def metadata(preprocessing: dict[str, Any]) -> dict[str, str]:
    """What goes into the ONNX model's metadata_props (strings)."""
    props = {}
    names = preprocessing.get("class_names")
    if isinstance(names, list):
        props["class_names"] = json.dumps([str(n) for n in names])
    if preprocessing.get("standardizer"):
        props["preprocessing"] = "standardize: (x - mean) / scale in float64, in the graph"
    return props
