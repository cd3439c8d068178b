"""The ONNX graph under construction: named values, initializers and nodes, made with the ``onnx`` package's helpers.

Every converter (:mod:`.layers`, :mod:`.sequence`, :mod:`.preprocessing`)
receives a :class:`Graph` and the :class:`Value` that enters its module, adds
nodes with :meth:`Graph.op` and returns the :class:`Value` that leaves it.
:func:`convert` picks the converter by the module's exact type: a subclass
may compute something else, so it is refused like any module without one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy
from onnx import helper, numpy_helper

from .. import backend
from ..errors import ExportError
from ..modules.base import Module

#: A dimension as far as the exporter knows it: a size, a named dynamic axis ("batch"), or unknown.
Dim = int | str | None


@dataclass(frozen=True)
class Value:
    """A tensor of the graph: its name and what is known of its shape."""

    name: str
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)


Converter = Callable[["Graph", Any, Value, str], Value]

#: Exact module type -> its converter (filled by the ``@converts`` decorators of .layers and .sequence).
CONVERTERS: dict[type[Module], Converter] = {}


def converts(*types: type[Module]) -> Callable[[Converter], Converter]:
    """Register the decorated function as the converter of ``types``."""
    def register(fn: Converter) -> Converter:
        for t in types:
            CONVERTERS[t] = fn
        return fn
    return register


def describe(path: str, module: Module) -> str:
    """``module '2.block.0' (Linear)``, or ``the model (Linear)`` for the root."""
    return f"module {path!r} ({type(module).__name__})" if path else f"the model ({type(module).__name__})"


def join(path: str, name: str) -> str:
    """The path of a child: ``join("2", "block")`` is ``"2.block"``, ``join("", "0")`` is ``"0"``."""
    return f"{path}.{name}" if path else name


def convert(g: Graph, module: Module, x: Value, path: str) -> Value:
    """The nodes computing ``module`` (eval mode) on ``x``; raises :class:`ExportError` naming the module if it has no converter."""
    fn = CONVERTERS.get(type(module))
    if fn is None:
        known = ", ".join(sorted(t.__name__ for t in CONVERTERS))
        raise ExportError(f"cannot export to ONNX: {describe(path, module)} has no ONNX counterpart in deltanet.export "
                          f"(exportable modules: {known})")
    return fn(g, module, x, path)


def expect_width(x: Value, width: int, path: str, module: Module) -> None:
    """Refuse an input whose last axis is known and is not ``width``."""
    last = x.shape[-1] if x.shape else None
    if isinstance(last, int) and last != width:
        raise ExportError(f"cannot export to ONNX: {describe(path, module)} takes {width} features on the last axis, "
                          f"its input has {last} (input shape {format_shape(x.shape)})")


def expect_rank(x: Value, rank: int, what: str, path: str, module: Module) -> None:
    if x.rank != rank:
        raise ExportError(f"cannot export to ONNX: {describe(path, module)} takes {what}, its input has shape "
                          f"{format_shape(x.shape)}; give export_onnx the input_shape the model is used with")


def format_shape(shape: Sequence[Dim]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


class Graph:
    """Nodes and initializers of one graph computing in ``dtype`` (float32 or float64) for ``opset``."""

    def __init__(self, dtype: Any, opset: int) -> None:
        self.dtype = numpy.dtype(dtype)
        self.elem_type = helper.np_dtype_to_tensor_dtype(self.dtype)
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._taken: set[str] = set()
        self._cache: dict[Any, str] = {}

    # -- names and tensors ------------------------------------------------------
    def name(self, hint: str) -> str:
        """A name not used yet in the graph: ``hint``, else ``hint_2``, ``hint_3``, ..."""
        candidate, i = hint, 1
        while candidate in self._taken:
            i += 1
            candidate = f"{hint}_{i}"
        self._taken.add(candidate)
        return candidate

    def tensor(self, array: Any, hint: str, key: Any = None) -> str:
        """An initializer holding ``array`` with its own dtype; a second call with the same ``key`` reuses it."""
        if key is not None and key in self._cache:
            return self._cache[key]
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(numpy.asarray(array, order="C"), name))   # 0-d stays 0-d
        if key is not None:
            self._cache[key] = name
        return name

    def weight(self, array: Any, name: str, tag: str = "", fn: Callable[[numpy.ndarray], numpy.ndarray] | None = None) -> str:
        """A parameter or buffer of the model as an initializer in the graph's dtype.

        ``fn`` (a transpose, a reshape, folding a constant in) is applied after the
        conversion to the graph's dtype, as a float64 copy of the model would
        compute it. A module used twice gets one initializer per ``(array, tag)``.
        """
        key = ("weight", id(array), tag)
        if key in self._cache:
            return self._cache[key]
        a = numpy.asarray(backend.to_numpy(array), dtype=self.dtype)
        if fn is not None:
            a = numpy.asarray(fn(a), dtype=self.dtype)
        if not numpy.isfinite(a).all():
            raise ExportError(f"cannot export to ONNX: {name!r} holds NaN or infinity (training diverged; export the last good weights)")
        return self.tensor(a, name, key)

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A constant in the graph's dtype (or ``dtype``); equal constants share one initializer."""
        a = numpy.asarray(value, dtype=self.dtype if dtype is None else dtype)
        return self.tensor(a, hint, ("const", a.dtype.str, a.shape, a.tobytes()))

    def ints(self, values: Any, hint: str = "const") -> str:
        """An int64 constant (shapes, axes, indices)."""
        return self.const(values, hint, numpy.int64)

    # -- nodes --------------------------------------------------------------------
    def op(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        """Add one node with one output (named after ``hint`` and the operator); return the output's name."""
        out = self.name(f"{hint}/{op_type}" if hint else op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def cast(self, x: str, to: Any, hint: str) -> str:
        """``x`` converted to the NumPy dtype ``to``."""
        return self.op("Cast", [x], hint, to=helper.np_dtype_to_tensor_dtype(numpy.dtype(to)))

    def reduce_mean(self, x: str, axes: list[int], keepdims: bool, hint: str) -> str:
        """ReduceMean: the axes are an input from opset 18 on, an attribute before."""
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.ints(axes, "axes")], hint, keepdims=int(keepdims))
        return self.op("ReduceMean", [x], hint, axes=axes, keepdims=int(keepdims))

    def dim(self, x: str, axis: int, hint: str) -> str:
        """The size of ``x`` along ``axis`` at run time, as a 1-D int64 tensor ``[n]``."""
        end = axis + 1
        if self.opset >= 15:
            return self.op("Shape", [x], hint, start=axis, **({"end": end} if end != 0 else {}))
        shape = self.op("Shape", [x], hint)
        ends = self.ints([end if end != 0 else numpy.iinfo(numpy.int64).max], "ends")
        return self.op("Slice", [shape, self.ints([axis], "starts"), ends], hint)

    def dim_scalar(self, x: str, axis: int, hint: str) -> str:
        """The size of ``x`` along ``axis`` at run time, as an int64 scalar."""
        return self.op("Gather", [self.op("Shape", [x], hint), self.ints(axis, "axis")], hint, axis=0)

    # -- the model ------------------------------------------------------------------
    def value_info(self, value: Value, name: str | None = None) -> Any:
        return helper.make_tensor_value_info(name or value.name, self.elem_type, list(value.shape))

