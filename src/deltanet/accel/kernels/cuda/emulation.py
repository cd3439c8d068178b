"""The CUDA kernels of :mod:`deltanet.accel.kernels.cuda`, compiled as C++ for the CPU: their sources checked without a GPU.

A CuPy ``ElementwiseKernel`` is a loop body in CUDA C++ (``i`` the element's
index, input parameters values, output parameters references); a
``ReductionKernel`` a map expression, a reduce expression and a post-map
expression. This module puts the same text into a C++ loop -- ``__device__``
defined away, ``T`` the dtype's C type, ``sqrt``/``fabs`` the ``<cmath>``
overloads, compiled with ``-ffp-contract=off`` as the GPU build uses
``--fmad=false`` -- and calls it with ctypes on NumPy arrays, with CuPy's
calling convention (inputs, then the outputs; arrays and scalars broadcast
against each other; a reduction along ``axis=0`` of a matrix). Inside :func:`emulated` every
kernel object of the CUDA modules runs so, and their Python wrappers
(``deltanet.accel.kernels.cuda.optim.adam`` and the others) take NumPy arrays.

What it proves: the kernels' source compiles and computes the reference's
numbers (``tests/test_kernels_cuda.py``). What it cannot: NVRTC's own
compilation, CuPy's argument handling and the GPU's arithmetic, which
``benchmarks/gpu_check.py`` checks on a GPU (its ``--dry-run`` uses this module
in their place). A tool of the tests and of that check, inside the fast path's
package like the kernels it compiles. Needs a C++ compiler (``c++``,
``g++`` or ``clang++``, or ``CXX``); :func:`available` says whether one is there.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import os
import pkgutil
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy

from ....io import atomic_write

_C_TYPES = {"float32": "float", "float64": "double", "int64": "long long", "uint64": "unsigned long long",
            "int32": "int", "bool": "bool"}
_DTYPES = {"float": numpy.float32, "double": numpy.float64, "long long": numpy.int64,
           "unsigned long long": numpy.uint64, "int": numpy.int32, "bool": numpy.bool_}


def compiler() -> str | None:
    """The C++ compiler to use (``CXX``, else ``c++``, ``g++`` or ``clang++`` on the path), or None."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def available() -> bool:
    """Whether a C++ compiler is there to emulate the kernels."""
    return compiler() is not None


def kernels() -> dict[str, Any]:
    """Every kernel object of :mod:`deltanet.accel.kernels.cuda` (all its modules imported), by name."""
    cuda = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(cuda.__path__):
        importlib.import_module(f"{__package__}.{info.name}")
    return cuda.ALL


def _params(spec: str) -> list[tuple[str, str]]:
    """``"T x, uint64 key"`` -> ``[("T", "x"), ("uint64", "key")]``."""
    out = []
    for part in spec.split(","):
        words = part.split()
        if len(words) != 2:
            raise ValueError(f"kernel parameter {part.strip()!r}: only 'type name' is emulated (no raw arrays)")
        out.append((words[0], words[1]))
    return out


def _c_type(t: str) -> str:
    return "T" if t == "T" else _C_TYPES[t]


def _elementwise_source(k: Any) -> str:
    ins, outs = _params(k.in_params), _params(k.out_params)
    args, binds = ["long long n_"], []
    for t, name in ins:
        args.append(f"const {_c_type(t)}* in_{name}")
    for t, name in outs:
        args.append(f"{_c_type(t)}* out_{name}")
    for t, name in ins:
        binds.append(f"const {_c_type(t)} {name} = in_{name}[i];")
    for t, name in outs:
        binds.append(f"{_c_type(t)}& {name} = out_{name}[i];")
    return (f'extern "C" void run_{k.name}({", ".join(args)}) {{\n'
            f"  for (ptrdiff_t i = 0; i < n_; ++i) {{\n    {' '.join(binds)}\n{k.operation}\n  }}\n}}\n")


def _reduction_source(k: Any) -> str:
    ins, outs = _params(k.in_params), _params(k.out_params)
    if len(outs) != 1:
        raise ValueError(f"{k.name}: one output is emulated")
    (ot, oname), = outs
    args = ["long long rows_", "long long cols_"] + [f"const {_c_type(t)}* in_{name}" for t, name in ins]
    args.append(f"{_c_type(ot)}* out_{oname}")
    binds = " ".join(f"const {_c_type(t)} {name} = in_{name}[i];" for t, name in ins)
    rt = k.reduce_type
    return (f'extern "C" void run_{k.name}({", ".join(args)}) {{\n'
            f"  for (long long j_ = 0; j_ < cols_; ++j_) {{\n"
            f"    {rt} a = {k.identity};\n"
            f"    for (long long r_ = 0; r_ < rows_; ++r_) {{\n"
            f"      ptrdiff_t i = r_ * cols_ + j_; {binds}\n"
            f"      {rt} b = ({rt})({k.map_expr});\n"
            f"      a = {k.reduce_expr};\n"
            f"    }}\n"
            f"    {_c_type(ot)}& {oname} = out_{oname}[j_];\n"
            f"    {k.post_map_expr};\n"
            f"  }}\n}}\n")


def source(dtype: Any) -> str:
    """The C++ translation unit of every kernel with ``T`` the C type of ``dtype``."""
    from . import PREAMBLE

    parts = ["#include <cmath>", "#include <cstddef>", "using std::sqrt; using std::fabs;", "#define __device__",
             f"typedef {_C_TYPES[numpy.dtype(dtype).name]} T;", PREAMBLE]
    for k in kernels().values():
        parts.append(_elementwise_source(k) if k.kind == "elementwise" else _reduction_source(k))
    return "\n".join(parts)


_LIBRARIES: dict[str, Any] = {}


def library(dtype: Any) -> Any:
    """The compiled kernels for ``dtype`` (built once per source text; kept in the temporary directory)."""
    text = source(dtype)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    lib = _LIBRARIES.get(digest)
    if lib is None:
        cxx = compiler()
        if cxx is None:
            raise RuntimeError("no C++ compiler (c++, g++, clang++ or CXX) to emulate the CUDA kernels")
        folder = Path(tempfile.gettempdir()) / "deltanet_cuda_emulation"
        folder.mkdir(exist_ok=True)
        so = folder / f"kernels_{digest}.so"
        if not so.exists():                  # built under a name of this process, published whole (atomic_write)
            cpp = folder / f"kernels_{digest}.{os.getpid()}.cpp"
            built = folder / f"kernels_{digest}.{os.getpid()}.so"
            with atomic_write(cpp, "w", encoding="utf-8") as f:
                f.write(text)
            try:
                subprocess.run([cxx, "-std=c++14", "-O1", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC",
                                "-o", str(built), str(cpp)], check=True, capture_output=True, text=True)
                with atomic_write(so) as f:
                    f.write(built.read_bytes())
            finally:
                for leftover in (cpp, built):
                    leftover.unlink(missing_ok=True)
        lib = _LIBRARIES[digest] = ctypes.CDLL(str(so))
    return lib


class Emulated:
    """One kernel object of the CUDA modules run on NumPy arrays through :func:`library`, called as CuPy calls it."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel

    def _dtype_of_t(self, params: list[tuple[str, str]], args: tuple[Any, ...]) -> Any:
        for (t, _), a in zip(params, args, strict=False):
            if t == "T" and isinstance(a, numpy.ndarray):
                return a.dtype
        raise TypeError(f"{self.kernel.name}: no array binds T")

    def __call__(self, *args: Any, axis: int | None = None) -> Any:
        k = self.kernel
        kind = next((type(a) for a in args if isinstance(a, numpy.ndarray)), numpy.ndarray)
        args = tuple(a.view(numpy.ndarray) if isinstance(a, numpy.ndarray) else a for a in args)  # plain views
        ins = _params(k.in_params)
        outs = _params(k.out_params)
        t_dtype = self._dtype_of_t(ins + outs, args)

        def dtype_of(t: str) -> Any:
            return t_dtype if t == "T" else numpy.dtype(_DTYPES[_C_TYPES[t]])

        fn = getattr(library(t_dtype), f"run_{k.name}")
        fn.restype = None
        if k.kind == "reduction":
            if axis != 0 or len(args) != len(ins):
                raise ValueError(f"{k.name}: the emulation reduces along axis=0 and allocates its output")
            shape = numpy.broadcast_shapes(*(numpy.shape(a) for a in args))
            if len(shape) != 2:
                raise ValueError(f"{k.name}: the emulation reduces matrices")
            keep = [numpy.ascontiguousarray(numpy.broadcast_to(numpy.asarray(a, dtype_of(t)), shape))
                    for (t, _), a in zip(ins, args, strict=True)]
            out = numpy.empty(shape[1], dtype_of(outs[0][0]))
            fn(ctypes.c_longlong(shape[0]), ctypes.c_longlong(shape[1]),
               *(a.ctypes.data_as(ctypes.c_void_p) for a in keep), out.ctypes.data_as(ctypes.c_void_p))
            return out.view(kind)                                   # the array type of the arguments
        if len(args) != len(ins) + len(outs):
            raise ValueError(f"{k.name}: pass the outputs too (the emulation allocates none)")
        shape = numpy.broadcast_shapes(*(numpy.shape(a) for a in args))
        c_args: list[Any] = [ctypes.c_longlong(int(numpy.prod(shape)))]
        keep, write_back = [], []
        for (t, _name), a in zip(ins, args[:len(ins)], strict=True):     # scalars too: broadcast to the shape
            buf = numpy.ascontiguousarray(numpy.broadcast_to(numpy.asarray(a).astype(dtype_of(t)), shape))
            keep.append(buf)
            c_args.append(buf.ctypes.data_as(ctypes.c_void_p))
        for (t, name), a in zip(outs, args[len(ins):], strict=True):
            if a.shape != shape or a.dtype != dtype_of(t):
                raise ValueError(f"{k.name}: output {name} must have shape {shape} and dtype {dtype_of(t)}")
            buf = numpy.ascontiguousarray(a)
            keep.append(buf)
            if not numpy.shares_memory(buf, a):
                write_back.append((a, buf))
            c_args.append(buf.ctypes.data_as(ctypes.c_void_p))
        fn(*c_args)
        for a, buf in write_back:
            a[...] = buf
        return args[len(ins):] if len(outs) > 1 else args[-1]


@contextlib.contextmanager
def emulated() -> Iterator[dict[str, Any]]:
    """Every kernel object of :mod:`deltanet.accel.kernels.cuda` runs on the CPU (C++) inside this block."""
    table = kernels()
    saved = {name: k._kernel for name, k in table.items()}
    try:
        for k in table.values():
            k._kernel = Emulated(k)
        yield table
    finally:
        for name, k in table.items():
            k._kernel = saved[name]


__all__ = ["Emulated", "available", "compiler", "emulated", "kernels", "library", "source"]
