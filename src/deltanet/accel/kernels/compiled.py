"""How every kernel is compiled and run: Numba's settings in one place.

- ``parallel``: ``numba.njit(parallel=True, cache=True)``; its ``prange`` loops
  run on every core. Launching one costs more than a small array's whole pass,
  so each elementwise kernel also has a ``serial`` build of the same code for
  arrays under :data:`PARALLEL_MIN_SIZE` elements.
- The threading layer is Numba's own work queue, not OpenMP: OpenMP's threads
  spin after a kernel and slow the BLAS threads of the next matrix product
  (``benchmarks/results/measurements.md``). The work queue takes one caller at
  a time, so :data:`LOCK` serializes the parallel kernels.
- ``reduce_serial``: the serial build for kernels whose loops end in a sum, with LLVM allowed to
  reassociate floating-point additions (``fastmath={"reassoc"}``) so that the sum is split into vector lanes; a
  strict left-to-right sum is one addition per cycle, several times slower than the pass that feeds it. The
  results differ from a strict sum by float rounding (a sum in lanes is closer to NumPy's pairwise one).
- ``cache=True``: compiled code is kept on disk (next to the package when it is
  writable, else in the user's cache directory, or in ``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import os
import threading

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

#: Serializes calls of the parallel kernels (the work queue takes one caller at a time).
LOCK = threading.Lock()
#: Elementwise kernels take their parallel build from this many elements on: a parallel launch costs about as
#: much as a serial pass over 200,000 float32 here (benchmarks/results/kernels.md).
PARALLEL_MIN_SIZE = 1 << 20

parallel = numba.njit(parallel=True, cache=True)
serial = numba.njit(cache=True)
reduce_serial = numba.njit(cache=True, fastmath={"reassoc"})
inline = numba.njit(inline="always")

__all__ = ["LOCK", "PARALLEL_MIN_SIZE", "inline", "parallel", "reduce_serial", "serial"]
