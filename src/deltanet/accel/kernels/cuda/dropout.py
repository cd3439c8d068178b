r"""Dropout in one CUDA kernel: the counter-based mask of :mod:`deltanet.modules.dropout`, computed and applied together.

The counterpart of :mod:`deltanet.accel.kernels.dropout` (same functions, same
numbers). The reference (:func:`deltanet.modules.dropout.keep_mask`) makes
eight whole-array passes on the device (the counters, six integer operations, a
comparison) and the module two more to scale and apply the mask; here one
thread per element hashes its index in registers and multiplies:

    z_e = SplitMix64(key + (i(e) + 1) gamma)  (mod 2^64),   out_e = x_e * (scale if floor(z_e / 2^40) >= T else 0)

where ``i(e)`` is the element's row-major index in ``x``'s shape. The kernel runs
over ``x``'s memory in order, as a C-contiguous ``(rows, cols)`` view (``x``
itself, or ``x.T`` for a column-major matrix), and element ``(r, c)`` of that
view has the row-major index ``r s_r + c s_c`` -- ``(cols, 1)`` for a row-major
``x``, ``(1, x.shape[1])`` for a column-major one. The same mask as the CPU for
the same key, bit for bit, so a seeded run drops the same units on either
device; the backward pass computes it again from the key instead of storing it.
"""

from __future__ import annotations

from typing import Any

import numpy

from .... import backend
from ....modules.dropout import GAMMA, MIX1, MIX2
from . import Elementwise

APPLY = Elementwise(
    "deltanet_dropout",
    "T x, uint64 key, uint64 threshold, T scale, int64 cols, uint64 s_r, uint64 s_c",
    "T y",
    f"""
    unsigned long long r = (unsigned long long)(i / cols), c = (unsigned long long)(i % cols);
    unsigned long long z = (r * s_r + c * s_c + 1ull) * {GAMMA:#x}ull + key;   // key + (i + 1) gamma
    z = (z ^ (z >> 30)) * {MIX1:#x}ull;
    z = (z ^ (z >> 27)) * {MIX2:#x}ull;
    z = z ^ (z >> 31);
    y = x * ((z >> 40) >= threshold ? scale : T(0));                         // x m / p
    """)


def _memory_view(x: Any) -> tuple[Any, int, int, int] | None:
    """``(flat, cols, s_r, s_c)``: ``x`` as a 1-D view in memory order with the index map of the module's notes,
    or None when ``x`` is neither C-contiguous nor a column-major matrix."""
    if x.ndim == 0 or x.size == 0:
        return None
    if x.flags.c_contiguous:
        last = x.shape[-1]
        return x.reshape(-1), last, last, 1
    if x.ndim == 2 and x.flags.f_contiguous:                  # a Linear's column-major output: (d, n) in memory
        return x.T.reshape(-1), x.shape[0], 1, x.shape[1]
    return None


def takes(x: Any) -> bool:
    """Whether :func:`dropout` can take ``x`` (C-contiguous, or 2-D column-major); else the reference runs."""
    return _memory_view(x) is not None


def dropout(x: Any, key: int, threshold: int, scale: Any) -> Any:
    """``x * (keep_mask(key, x.shape, rate) / p)`` in one kernel, in a new array of ``x``'s memory order.

    ``threshold`` is :func:`~deltanet.modules.dropout.keep_threshold` of the rate and ``scale`` is ``1 / p`` in
    ``x``'s dtype (the arguments of :func:`deltanet.accel.kernels.dropout.dropout`).
    """
    view = _memory_view(x)
    if view is None:
        raise ValueError("dropout kernel: x must be C-contiguous or a column-major matrix (see takes())")
    flat, cols, s_r, s_c = view
    out = backend.xp.empty_like(x)           # x's memory order
    out_flat = out.reshape(-1) if x.flags.c_contiguous else out.T.reshape(-1)
    APPLY(flat, numpy.uint64(key), numpy.uint64(threshold), x.dtype.type(scale), numpy.int64(cols),
          numpy.uint64(s_r), numpy.uint64(s_c), out_flat)
    return out


__all__ = ["APPLY", "dropout", "takes"]
