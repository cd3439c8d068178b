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

    For tests and benchmarks; kernels stay off where Numba is not installed."""
    global _ENABLED
    _ENABLED = None if on is None else bool(on) and importlib.util.find_spec("numba") is not None
    return enabled()


def takes(*arrays: Any) -> bool:
    """Whether the kernels can take these arrays: NumPy arrays, all of one dtype float32 or float64."""
    first = arrays[0]
    return (type(first) is numpy.ndarray and first.dtype in DTYPES
            and all(type(a) is numpy.ndarray and a.dtype == first.dtype for a in arrays))


_LOADED: dict[str, Any] = {}


def load(name: str) -> Any:
    """The kernel module ``deltanet.accel.kernels.<name>`` (imported, with Numba, at its first use)."""
    module = _LOADED.get(name)
    if module is None:
        module = _LOADED[name] = importlib.import_module(f"{__name__}.{name}")
    return module


__all__ = ["DTYPES", "enabled", "load", "set_enabled", "takes"]
