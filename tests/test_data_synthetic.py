"""Generated 2-D data sets: shapes, balance, determinism, geometry, validation."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.data import make_blobs, make_circles, make_moons, make_spiral, make_xor

GENERATORS = [make_spiral, make_circles, make_xor, make_moons, make_blobs]


@pytest.mark.parametrize("make", GENERATORS)
@pytest.mark.parametrize("n", [7, 300])
def test_shapes_dtypes_and_determinism(make, n):
    X, y = make(n_samples=n, seed=3)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.isfinite(X).all()
    X2, y2 = make(n_samples=n, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n_samples=n, seed=4)
    assert not np.array_equal(X, X3)


@pytest.mark.parametrize("make,kwargs,n_classes", [
    (make_spiral, {"n_classes": 4}, 4), (make_circles, {}, 2), (make_moons, {}, 2), (make_blobs, {"n_classes": 5}, 5),
])
def test_classes_are_balanced(make, kwargs, n_classes):
    _, y = make(n_samples=103, seed=0, **kwargs)
    counts = np.bincount(y, minlength=n_classes)
    assert len(counts) == n_classes
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103


def test_generator_accepts_numpy_generator():
    a = make_spiral(50, seed=np.random.default_rng(5))
    b = make_spiral(50, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])


def test_spiral_without_noise_lies_on_its_arms():
    n, C, turns = 90, 3, 0.65
    X, y = make_spiral(n, n_classes=C, noise=0.0, seed=0, turns=turns)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() == pytest.approx(0.0) and r.max() == pytest.approx(1.0)
    theta = np.arctan2(X[:, 0], X[:, 1])             # x = r (sin t, cos t)
    expected = 2 * np.pi * (turns * r + y / C)       # r = t along the arm
    diff = np.angle(np.exp(1j * (theta - expected)))
    keep = r > 1e-9                                   # the centre has no angle
    np.testing.assert_allclose(diff[keep], 0.0, atol=1e-9)


def test_circles_radii_without_noise():
    X, y = make_circles(200, noise=0.0, factor=0.3, seed=1)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)


def test_xor_labels_follow_signs_without_noise():
    X, y = make_xor(500, noise=0.0, seed=2)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(int))
    assert 0.4 < y.mean() < 0.6
    assert np.abs(X).max() <= 1.0


def test_moons_arcs_without_noise():
    X, y = make_moons(100, noise=0.0, seed=0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    assert (upper[:, 1] >= -1e-12).all() and (lower[:, 1] <= 0.5 + 1e-12).all()


def test_blobs_centres_and_spread():
    centers = np.array([[-10.0, 0.0], [10.0, 5.0]])
    X, y = make_blobs(4000, centers=centers, std=0.5, seed=0)
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(axis=0), centers[k], atol=0.05)
        np.testing.assert_allclose(X[y == k].std(axis=0), 0.5, rtol=0.08)


def test_noise_moves_points():
    X0, _ = make_circles(100, noise=0.0, seed=0)
    X1, _ = make_circles(100, noise=0.2, seed=0)
    r1 = np.hypot(X1[:, 0], X1[:, 1])
    assert np.abs(r1 - np.hypot(X0[:, 0], X0[:, 1])).max() > 0.05


@pytest.mark.parametrize("call,match", [
    (lambda: make_spiral(0), "n_samples"),
    (lambda: make_spiral(10, n_classes=1), "n_classes"),
    (lambda: make_spiral(2, n_classes=3), "at least n_classes"),
    (lambda: make_moons(10, noise=-1), "noise"),
    (lambda: make_xor(10, noise=float("nan")), "noise"),
    (lambda: make_circles(10, factor=1.5), "factor"),
    (lambda: make_blobs(10, std=0), "std"),
    (lambda: make_blobs(10, centers=[[0.0, 1.0, 2.0]]), "centers"),
    (lambda: make_spiral(10.5), "n_samples"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
