"""The fast path: every speed trick of deltanet, beside the math path it must agree with.

The math path (``deltanet.parameter``, ``deltanet.modules``, ``deltanet.losses``,
``deltanet.optim.rules``, the ``Trainer``'s loop) is the reference and reads as
the course text. This package holds what makes it fast, each part opening with
its measured reason:

- :mod:`deltanet.accel.kernels`: compiled one-pass kernels (Numba), each tested
  equal to its NumPy reference; the optimizers' fused steps call them.

Switches (read once per process, at first use):

``DELTANET_FAST=0``
    Turns the whole fast path off: the reference code runs everywhere.
``DELTANET_KERNELS=numpy``
    Turns only the compiled kernels off (also automatic where Numba is absent,
    or for arrays a kernel cannot take: other dtypes than float32/float64,
    another array library than NumPy).
"""

from __future__ import annotations

import os


def fast_enabled() -> bool:
    """Whether the fast path is on (``DELTANET_FAST`` is not ``0``/``false``/``off``)."""
    return os.environ.get("DELTANET_FAST", "1").strip().lower() not in ("0", "false", "off", "no")


__all__ = ["fast_enabled"]
