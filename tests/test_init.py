"""Initializers: the reference's variances, measured on large matrices; names, seeds and dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deltanet as dn

SHAPE = (300, 500)   # (fan_out, fan_in): 150,000 draws, so the sample std is within ~0.2% (1 sigma) of the truth
D_OUT, D_IN = SHAPE

# name, theoretical std, normal?, uniform bound
CASES = [
    ("xavier_normal", math.sqrt(2 / (D_IN + D_OUT)), True, None),
    ("xavier_uniform", math.sqrt(2 / (D_IN + D_OUT)), False, math.sqrt(6 / (D_IN + D_OUT))),
    ("he_normal", math.sqrt(2 / D_IN), True, None),
    ("he_uniform", math.sqrt(2 / D_IN), False, math.sqrt(6 / D_IN)),
]


@pytest.mark.parametrize(("name", "std", "normal", "bound"), CASES, ids=[c[0] for c in CASES])
def test_empirical_std_matches_theory(name, std, normal, bound):
    w = getattr(dn.init, name)(SHAPE, np.random.default_rng(0), "float64")
    assert w.shape == SHAPE and w.dtype == np.float64
    assert abs(w.std() / std - 1) < 0.02
    assert abs(w.mean()) < 0.02 * std
    kurtosis = ((w - w.mean()) ** 4).mean() / w.var() ** 2
    if normal:
        assert abs(kurtosis - 3.0) < 0.1                 # a Gaussian
        assert np.abs(w).max() > 3.5 * std               # with tails
    else:
        assert abs(kurtosis - 1.8) < 0.05                # a uniform distribution
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound


XAVIER_STD, HE_STD = math.sqrt(2 / (D_IN + D_OUT)), math.sqrt(2 / D_IN)


@pytest.mark.parametrize(("name", "std"), [("xavier", XAVIER_STD), ("glorot", XAVIER_STD), ("he", HE_STD), ("kaiming", HE_STD),
                                           ("he_uniform", HE_STD), ("xavier_uniform", XAVIER_STD)])
def test_linear_accepts_initializer_names(name, std):
    layer = dn.Linear(D_IN, D_OUT, init=name, rng=0)
    assert layer.weight.shape == (D_OUT, D_IN) and layer.weight.dtype == np.float32
    assert abs(float(layer.weight.value.std()) / std - 1) < 0.02
    np.testing.assert_array_equal(layer.bias.value, 0.0)


def test_default_init_is_he_normal():
    a, b = dn.Linear(20, 10, rng=3), dn.Linear(20, 10, init="he_normal", rng=3)
    np.testing.assert_array_equal(a.weight.value, b.weight.value)


def test_zeros_and_callable_initializers():
    np.testing.assert_array_equal(dn.Linear(3, 2, init="zeros").weight.value, 0.0)
    layer = dn.Linear(30, 20, init=dn.init.xavier_uniform, rng=1)
    assert layer.config()["init"] == "xavier_uniform"
    np.testing.assert_array_equal(layer.weight.value, dn.Linear(30, 20, init="xavier_uniform", rng=1).weight.value)

    def halves(shape, rng, dtype):
        return np.full(shape, 0.5, dtype=dtype)

    np.testing.assert_array_equal(dn.Linear(3, 2, init=halves).weight.value, 0.5)


def test_seeds_are_reproducible():
    a, b, c = (dn.Linear(8, 4, rng=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.weight.value, b.weight.value)
    assert not np.array_equal(a.weight.value, c.weight.value)
    gen1, gen2 = np.random.default_rng(5), np.random.default_rng(5)
    first = [dn.Linear(4, 4, rng=gen1).weight.value for _ in range(2)]
    second = [dn.Linear(4, 4, rng=gen2).weight.value for _ in range(2)]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])        # a shared generator moves on


def test_unknown_initializer_and_bad_shapes():
    with pytest.raises(ValueError, match=r"unknown initializer 'lecun'; choose one of: .*he_normal.*xavier_uniform"):
        dn.Linear(3, 2, init="lecun")
    with pytest.raises(ValueError, match=r"initializers need a shape \(fan_out, fan_in, \.\.\.\), got \(5,\)"):
        dn.init.he_normal((5,))
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        dn.Linear(3, 2, rng=-1)
    with pytest.raises(TypeError, match=r"rng must be an int seed, a numpy\.random\.Generator or None, got str"):
        dn.Linear(3, 2, rng="zero")
