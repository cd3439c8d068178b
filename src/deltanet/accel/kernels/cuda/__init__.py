r"""The CUDA counterparts of the compiled kernels: CuPy ``ElementwiseKernel`` / ``ReductionKernel`` objects.

Why: on a GPU every NumPy-style operation of the reference path is one kernel
launch and one pass over device memory; Adam's rule makes 7-9 of them per step,
dropout's mask eight, batch normalization about ten each way. One kernel that
reads each operand once and writes each result once does the same work in one
launch. The matrix products stay with cuBLAS (``xp.matmul``/``xp.dot``).

Each module here mirrors a Numba module of :mod:`deltanet.accel.kernels`, with
the same public functions, arguments and results (``dropout``, ``batch_norm``,
``optim``), and :func:`deltanet.accel.kernels.load` hands it out for CuPy
arrays: the modules call the same hook (:func:`deltanet.accel.kernel`) and the
optimizers the same fused step whatever the device -- no module asks which
device it runs on. A Numba kernel without a CUDA module here gets no kernel on a
GPU: its caller runs the NumPy reference through CuPy.

Exactness: the kernels are compiled with ``--fmad=false`` (NVRTC contracts
``a * b + c`` into one fused multiply-add by default, which rounds once instead
of twice), and CUDA's ``sqrt`` and division are correctly rounded by default
(``--prec-sqrt=true``, ``--prec-div=true``, no ``--use_fast_math``): every
per-element operation is the reference's, rounded as NumPy rounds it, in the
same order. Only sums differ in order (the batch norm statistics, summed in
float64 as the Numba kernel does).

Importing these modules needs no CuPy: a kernel object is built, and CuPy
imported, at its first call (NVRTC then compiles it once per device; CuPy keeps
the binary in ``~/.cupy/kernel_cache``). The kernel sources are plain
attributes (``source()``) so that ``tests/test_kernels_cuda.py`` can compile
them as C++ on a CPU and compare them with the NumPy references, and
``benchmarks/gpu_check.py`` runs each on a GPU against its reference.
"""

from __future__ import annotations

import importlib
from typing import Any

#: NVRTC options of every kernel here: no contraction of ``a * b + c`` (see the module's notes).
OPTIONS = ("--fmad=false",)

#: Helpers every kernel may use. ``deltanet_zero_below(x, m)``: x, or 0 where ``|x| < m`` -- a product with the
#: comparison, as the Numba kernels compute it (a NaN stays NaN: NaN * 0 is NaN).
PREAMBLE = r"""
template <typename U> __device__ U deltanet_zero_below(U x, U m) { return x * U(fabs(x) >= m); }
__device__ double deltanet_square(double c) { return c * c; }
"""

#: Every kernel object built here, by name (for the C++ check of the tests and the GPU check).
ALL: dict[str, Any] = {}


def cupy() -> Any:
    """CuPy, imported at the first kernel call."""
    return importlib.import_module("cupy")


class Elementwise:
    """A ``cupy.ElementwiseKernel`` built at its first call. ``in_params``, ``out_params`` and ``operation`` are
    CuPy's (``i`` is the element's index in the loop; output parameters are references)."""

    kind = "elementwise"

    def __init__(self, name: str, in_params: str, out_params: str, operation: str) -> None:
        self.name, self.in_params, self.out_params, self.operation = name, in_params, out_params, operation
        self._kernel: Any = None
        if name in ALL:
            raise ValueError(f"CUDA kernel {name!r} defined twice")
        ALL[name] = self

    def build(self) -> Any:
        if self._kernel is None:
            self._kernel = cupy().ElementwiseKernel(self.in_params, self.out_params, self.operation, self.name,
                                                    preamble=PREAMBLE, options=OPTIONS)
        return self._kernel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.build()(*args, **kwargs)


class Reduction:
    """A ``cupy.ReductionKernel`` built at its first call: ``out = post(reduce_i map(in_i))`` along ``axis``,
    reduced in ``reduce_type`` (``a``, ``b``: two partial results)."""

    kind = "reduction"

    def __init__(self, name: str, in_params: str, out_params: str, map_expr: str, reduce_expr: str,
                 post_map_expr: str, identity: str, reduce_type: str) -> None:
        self.name, self.in_params, self.out_params = name, in_params, out_params
        self.map_expr, self.reduce_expr, self.post_map_expr = map_expr, reduce_expr, post_map_expr
        self.identity, self.reduce_type = identity, reduce_type
        self._kernel: Any = None
        if name in ALL:
            raise ValueError(f"CUDA kernel {name!r} defined twice")
        ALL[name] = self

    def build(self) -> Any:
        if self._kernel is None:
            self._kernel = cupy().ReductionKernel(self.in_params, self.out_params, self.map_expr, self.reduce_expr,
                                                  self.post_map_expr, self.identity, self.name,
                                                  reduce_type=self.reduce_type, preamble=PREAMBLE, options=OPTIONS)
        return self._kernel

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.build()(*args, **kwargs)


__all__ = ["ALL", "OPTIONS", "PREAMBLE", "Elementwise", "Reduction", "cupy"]
