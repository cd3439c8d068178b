r"""Dropout in one pass: the counter-based mask of :mod:`deltanet.modules.dropout`, computed and applied together.

The reference (:func:`deltanet.modules.dropout.keep_mask`) builds the mask in
NumPy -- an index array, six whole-array integer operations, a comparison --
and the module then multiplies by it and keeps it for the backward pass. Here
each element's hash is computed in registers next to its multiplication, on
every core, and the backward pass computes the same mask again instead of
reading a stored one: one read and one write of the activations each way
(measured: ``benchmarks/results/measurements.md``, "Dropout").

``out[e] = x[e] * (scale if keep(key, i(e)) else 0)`` where ``i(e)`` is the
element's row-major index in the array's shape, whatever its memory order --
the numbers of the reference, bit for bit (the same products ``x * (m / p)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from ...modules.dropout import GAMMA, MIX1, MIX2
from . import compiled


@compiled.inline
def _apply_row(a, x, out, key, threshold, scale, stride_a, stride_b):               # pragma: no cover - compiled
    """Row ``a`` of ``out = x * mask`` (C-contiguous 2-D views); element ``(a, b)`` has row-major index ``a sa + b sb``."""
    gamma, mix1, mix2 = np.uint64(GAMMA), np.uint64(MIX1), np.uint64(MIX2)
    zero = scale * 0
    base = np.uint64(a) * np.uint64(stride_a) + np.uint64(1)
    for b in range(x.shape[1]):
        z = (base + np.uint64(b) * np.uint64(stride_b)) * gamma + key              # key + (i + 1) gamma
        z = (z ^ (z >> np.uint64(30))) * mix1
        z = (z ^ (z >> np.uint64(27))) * mix2
        z = z ^ (z >> np.uint64(31))
        keep = (z >> np.uint64(40)) >= threshold
        out[a, b] = x[a, b] * (scale if keep else zero)


# the same row code driven by a parallel and by a serial loop (two functions: one cache entry each)
@compiled.parallel
def _apply_parallel(x, out, key, threshold, scale, stride_a, stride_b):            # pragma: no cover - compiled
    for a in prange(x.shape[0]):
        _apply_row(a, x, out, key, threshold, scale, stride_a, stride_b)


@compiled.serial
def _apply_serial(x, out, key, threshold, scale, stride_a, stride_b):              # pragma: no cover - compiled
    for a in range(x.shape[0]):
        _apply_row(a, x, out, key, threshold, scale, stride_a, stride_b)


def _plain_2d(x: Any) -> tuple[Any, int, int] | None:
    """``x`` as a C-contiguous 2-D view with the row-major index strides of its elements, or None."""
    if x.ndim == 0 or x.size == 0:
        return None
    if x.flags.c_contiguous:
        last = x.shape[-1]
        return x.reshape(-1, last), last, 1
    if x.ndim == 2 and x.flags.f_contiguous:                  # a Linear's column-major output: (d, n) in memory
        return x.T, 1, x.shape[1]
    return None


def takes(x: Any) -> bool:
    """Whether :func:`dropout` can take ``x`` (C-contiguous, or 2-D column-major); else the reference runs."""
    return _plain_2d(x) is not None


def dropout(x: Any, key: int, threshold: int, scale: Any) -> Any:
    """``x * (keep_mask(key, x.shape, rate) / p)`` in one pass, in a new array of ``x``'s memory order.

    ``threshold`` is :func:`~deltanet.modules.dropout.keep_threshold` of the rate and ``scale`` is ``1 / p`` in
    ``x``'s dtype. ``x`` must pass :func:`takes`.
    """
    view = _plain_2d(x)
    if view is None:
        raise ValueError("dropout kernel: x must be C-contiguous or a column-major matrix (see takes())")
    flat, stride_a, stride_b = view
    out = np.empty_like(x)
    out_flat = out.reshape(flat.shape) if x.flags.c_contiguous else out.T
    args = (flat, out_flat, np.uint64(key), np.uint64(threshold), x.dtype.type(scale), stride_a, stride_b)
    if x.size >= compiled.PARALLEL_MIN_SIZE:
        with compiled.LOCK:
            _apply_parallel(*args)
    else:
        _apply_serial(*args)
    return out


__all__ = ["dropout", "takes"]
