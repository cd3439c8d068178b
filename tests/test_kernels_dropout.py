"""The dropout kernel equals its NumPy reference bit for bit; the counter-based masks are what dropout needs."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import accel
from deltanet.modules.dropout import GAMMA, MIX1, MIX2, keep_mask, keep_threshold

kernels = pytest.importorskip("deltanet.accel.kernels.dropout")

SHAPES = [(1, 1), (7, 5), (33, 129), (300, 257), (3, 4, 5), (1000,), (2, 1, 6)]


@pytest.fixture(autouse=True)
def kernels_for_small_arrays(monkeypatch):
    """The hook hands out kernels for arrays of every size here (by default from ELEMENTWISE_MIN_SIZE on)."""
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 0)


def splitmix64(state: int) -> int:
    """One SplitMix64 output for the state ``state`` (plain Python integers, as the reference paper writes it)."""
    mask = (1 << 64) - 1
    z = state & mask
    z = ((z ^ (z >> 30)) * MIX1) & mask
    z = ((z ^ (z >> 27)) * MIX2) & mask
    return z ^ (z >> 31)


def test_keep_mask_is_splitmix64_of_key_plus_index_times_gamma():
    key, rate = 0xDEADBEEF12345678, 0.4
    mask = keep_mask(key, (3, 7), rate)
    want = [splitmix64(key + (i + 1) * GAMMA) >> 40 >= keep_threshold(rate) for i in range(21)]
    assert mask.dtype == np.bool_ and mask.ravel().tolist() == want


def test_the_first_splitmix64_outputs_are_the_published_ones():
    # the generator seeded with 1234567 (Vigna's splitmix64.c test vector): its first three outputs
    outputs = [splitmix64(1234567 + k * GAMMA) for k in (1, 2, 3)]
    assert outputs == [6457827717110365317, 3203168211198807973, 9817491932198370423]


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_fraction_is_one_minus_rate_within_five_sigma(rate):
    n = 1_000_000
    kept = keep_mask(987654321, (n,), rate).mean()
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept - (1 - rate)) < 5 * sigma


def test_neighbouring_units_and_consecutive_keys_are_uncorrelated():
    a = keep_mask(1, (200_000,), 0.5).astype(float)
    b = keep_mask(2, (200_000,), 0.5).astype(float)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.02       # adjacent units of one mask
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02                # the same unit under consecutive keys


def test_rate_zero_keeps_everything():
    assert keep_threshold(0.0) == 0 and keep_mask(5, (4, 4), 0.0).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_equals_reference_bit_for_bit(shape, order, dtype):
    x = np.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype, order=order)
    key, rate = 0x0123456789ABCDEF, 0.3
    scale = dtype(1.0 / (1.0 - rate))
    want = x * (keep_mask(key, shape, rate) * scale).astype(dtype)
    if not kernels.takes(x):                                # N-D column-major arrays go to the reference
        assert order == "F" and x.ndim > 2 and not x.flags.c_contiguous
        return
    got = kernels.dropout(x, key, keep_threshold(rate), scale)
    assert got.dtype == dtype and got.shape == x.shape
    assert got.flags.f_contiguous == x.flags.f_contiguous and got.flags.c_contiguous == x.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_parallel_and_serial_builds_agree_above_and_below_the_threshold():
    from deltanet.accel.kernels import compiled

    n = compiled.PARALLEL_MIN_SIZE
    for rows in (n // 64 - 1, n // 64 + 1):                 # just under and just over, 64 columns
        x = np.random.default_rng(1).standard_normal((rows, 64)).astype(np.float32)
        want = x * (keep_mask(7, x.shape, 0.5) * np.float32(2)).astype(np.float32)
        np.testing.assert_array_equal(kernels.dropout(x, 7, keep_threshold(0.5), np.float32(2)), want)


def test_strided_views_and_other_types_get_no_kernel():
    x = np.ones((10, 12), dtype=np.float32)
    assert accel.kernel("dropout", x[:, ::2]) is None         # strided: the reference runs
    assert accel.kernel("dropout", x.astype(np.float16)) is None
    assert accel.kernel("dropout", np.ones((4, 5), dtype=np.int64)) is None


@pytest.mark.parametrize("order", ["C", "F"])
def test_module_forward_and_backward_are_the_same_on_both_paths(order, monkeypatch):
    from deltanet.accel import kernels as k

    x = np.asarray(np.random.default_rng(2).standard_normal((64, 48)), dtype=np.float32, order=order)
    g = np.asarray(np.random.default_rng(3).standard_normal((64, 48)), dtype=np.float32, order=order)
    results = {}
    for on in (True, False):
        k.set_enabled(on)
        try:
            d = dn.Dropout(0.25, rng=11)
            out = d.forward(x, training=True)
            assert (d._key is not None) == on                     # the kernel path stores only the key
            results[on] = (out, d.backward(g))
        finally:
            k.set_enabled(None)
    np.testing.assert_array_equal(results[True][0], results[False][0])
    np.testing.assert_array_equal(results[True][1], results[False][1])
    out, grad = results[True]
    kept = out != 0
    np.testing.assert_array_equal(grad != 0, kept)                # the backward uses the forward's mask
    np.testing.assert_allclose(out[kept], x[kept] / 0.75, rtol=1e-6)


def test_same_seed_same_masks_new_forward_new_mask():
    x = np.ones((32, 32))
    a, b = dn.Dropout(0.5, rng=4), dn.Dropout(0.5, rng=4)
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))
    assert not np.array_equal(first, a.forward(x, training=True))


def test_small_arrays_get_no_kernel_by_default(monkeypatch):
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 1 << 15)
    assert accel.kernel("dropout", np.ones((64, 256), np.float32)) is None           # 16,384 elements
    assert accel.kernel("dropout", np.ones((128, 256), np.float32)) is not None      # 32,768
