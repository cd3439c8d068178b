"""Order-free reductions of :mod:`deltanet.backend` against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet import backend


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "vector"])
def test_sum_of_squares_equals_numpy_for_every_layout(layout, dtype):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 53)).astype(dtype)
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":
        a = a[::2, ::3]                              # neither row- nor column-major: flat_view copies
    elif layout == "vector":
        a = a[0]
    expected = float((a.astype("float64") ** 2).sum())
    # float32 accumulation over ~2000 terms: relative error well under 1e-5
    rtol = 1e-5 if dtype == "float32" else 1e-13
    assert backend.sum_of_squares(a) == pytest.approx(expected, rel=rtol)


def test_flat_view_is_a_view_for_both_orders():
    a = np.arange(12.0).reshape(3, 4)
    f = np.asfortranarray(a)
    assert np.shares_memory(backend.flat_view(a), a)
    assert np.shares_memory(backend.flat_view(f), f)
    assert sorted(backend.flat_view(f)) == sorted(a.ravel())
