"""Compiled kernels (Numba): fused loops that replace several NumPy passes over memory with one.

Why: the matrix products of a training step run on every core at the speed of
the BLAS, but each elementwise NumPy operation is one more single-threaded pass
over memory. Adam makes 7-9 such passes per step; one parallel pass that
reads ``w, g, m, v`` and writes ``w, m, v`` takes a fraction of their time
(measured: ``benchmarks/results/measurements.md``).

Each kernel module keeps the compiled loop beside the NumPy reference it must
equal (``deltanet.optim.rules`` for the optimizers), and the tests compare the
two (float32 to rounding, float64 to 1e-12). Numba is imported, and a kernel
compiled, only when first used; compiled code is cached on disk (``cache=True``:
next to the package when it is writable, else in the user's cache directory,
or in ``NUMBA_CACHE_DIR``).

:func:`enabled` says whether kernels run in this process; :func:`takes` whether
a kernel can take given arrays (NumPy arrays of float32 or float64).

**Two families, one set of names.** The Numba kernels take NumPy arrays; their
CUDA counterparts (:mod:`deltanet.accel.kernels.cuda`, CuPy ``ElementwiseKernel``
and ``ReductionKernel`` objects with the same functions and numbers) take CuPy
arrays. :func:`family` decides from the arrays' type which family a call gets
(``"numba"``, ``"cuda"`` or none), and :func:`load` hands out the module of that
family under the same name, or None where the family has no such kernel: the
caller then runs its reference (through CuPy on a GPU). The callers -- the
:func:`deltanet.accel.kernel` hook and the fused step -- never ask which device
they run on.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy

from .. import fast_enabled

_ENABLED: bool | None = None
DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def enabled() -> bool:
    """Whether compiled kernels run: Numba is installed, and neither ``DELTANET_KERNELS=numpy`` nor
    ``DELTANET_FAST=0`` is set (read once)."""
    global _ENABLED
    if _ENABLED is None:
        wanted = os.environ.get("DELTANET_KERNELS", "numba").strip().lower() != "numpy" and fast_enabled()
        _ENABLED = wanted and importlib.util.find_spec("numba") is not None
    return _ENABLED


def set_enabled(on: bool | None) -> bool:
    """Force kernels on or off in this process (None: decide from the environment again); return :func:`enabled`.

    For tests and benchmarks; the Numba kernels stay off where Numba is not installed, the CUDA kernels where
    CuPy is not."""
    global _ENABLED, _CUDA
    _ENABLED = None if on is None else bool(on) and importlib.util.find_spec("numba") is not None
    _CUDA = None if on is None else bool(on) and importlib.util.find_spec("cupy") is not None
    return enabled()


def takes(*arrays: Any) -> bool:
    """Whether the kernels can take these arrays: NumPy arrays, all of one dtype float32 or float64."""
    first = arrays[0]
    return (type(first) is numpy.ndarray and first.dtype in DTYPES
            and all(type(a) is numpy.ndarray and a.dtype == first.dtype for a in arrays))


_CUDA: bool | None = None


def cuda_enabled() -> bool:
    """Whether the CUDA kernels run for CuPy arrays: CuPy is installed, and neither ``DELTANET_KERNELS=numpy`` nor
    ``DELTANET_FAST=0`` is set (read once; :func:`set_enabled` resets it)."""
    global _CUDA
    if _CUDA is None:
        wanted = os.environ.get("DELTANET_KERNELS", "numba").strip().lower() != "numpy" and fast_enabled()
        _CUDA = wanted and importlib.util.find_spec("cupy") is not None
    return _CUDA


def is_cupy_array(a: Any) -> bool:
    """Whether ``a`` is a CuPy array (by its type's name and module: CuPy is not imported for the question)."""
    t = type(a)
    return t.__name__ == "ndarray" and t.__module__.split(".")[0] == "cupy"


def family(*arrays: Any) -> str | None:
    """The kernel family that takes these arrays, all of one type and of one dtype float32 or float64:
    ``"numba"`` for NumPy arrays (when :func:`enabled`), ``"cuda"`` for CuPy arrays (when :func:`cuda_enabled`),
    else None (another array type -- the guard namespace's, say --, dtype, or kernels off)."""
    first = arrays[0]
    kind = type(first)
    if getattr(first, "dtype", None) not in DTYPES or not all(type(a) is kind and a.dtype == first.dtype
                                                              for a in arrays):
        return None
    if kind is numpy.ndarray:
        return "numba" if enabled() else None
    if is_cupy_array(first):
        return "cuda" if cuda_enabled() else None
    return None


#: Where each family's kernel modules live (``load(name, family)`` imports ``<package>.<name>``).
PACKAGES = {"numba": __name__, "cuda": f"{__name__}.cuda"}

_LOADED: dict[tuple[str, str], Any] = {}


def numba_loaded() -> bool:
    """Whether a Numba kernel module has been loaded in this process (Numba imported; see :func:`load`)."""
    return _NUMBA_LOADED


_NUMBA_LOADED = False


def load(name: str, family: str = "numba") -> Any:
    """The kernel module ``name`` of ``family``: ``deltanet.accel.kernels.<name>`` (Numba, imported at its first
    use) or ``deltanet.accel.kernels.cuda.<name>`` (CuPy, imported at its first call); None when that family has
    no module of that name (its callers then run the reference)."""
    global _NUMBA_LOADED
    key = (name, family)
    if key not in _LOADED:
        path = f"{PACKAGES[family]}.{name}"
        _LOADED[key] = importlib.import_module(path) if importlib.util.find_spec(path) is not None else None
        _NUMBA_LOADED = _NUMBA_LOADED or (family == "numba" and _LOADED[key] is not None)
    return _LOADED[key]


__all__ = ["DTYPES", "PACKAGES", "cuda_enabled", "enabled", "family", "is_cupy_array", "load", "numba_loaded", "set_enabled", "takes"]
