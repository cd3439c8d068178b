"""Splits, standardization and mini-batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deltanet.data import Standardizer, iterate_minibatches, train_val_test_split


def labelled(n_per_class=(50, 30, 20), seed=0):
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    X = np.random.default_rng(seed).normal(size=(len(y), 3))
    X[:, 0] = np.arange(len(y))  # an id column to trace samples
    return X, y


@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("val,test", [(0.1, 0.2), (0.0, 0.25), (0.3, 0.0), (0.0, 0.0)])
def test_split_partitions_the_samples(stratify, val, test):
    X, y = labelled()
    s = train_val_test_split(X, y, val_fraction=val, test_fraction=test, seed=1, stratify=stratify)
    ids = np.concatenate([s.X_train[:, 0], s.X_val[:, 0], s.X_test[:, 0]])
    assert sorted(ids.tolist()) == list(range(100))  # disjoint and complete
    assert len(s.X_test) == round(100 * test) and len(s.X_val) == round(100 * val)
    for Xp, yp in ((s.X_train, s.y_train), (s.X_val, s.y_val), (s.X_test, s.y_test)):
        np.testing.assert_array_equal(yp, y[Xp[:, 0].astype(int)])  # X and y stay paired
        assert (np.diff(Xp[:, 0]) > 0).all()  # original order kept


def test_stratified_split_keeps_class_proportions():
    X, y = labelled((500, 300, 200))
    s = train_val_test_split(X, y, val_fraction=0.1, test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(np.bincount(s.y_test), [100, 60, 40])
    np.testing.assert_array_equal(np.bincount(s.y_val), [50, 30, 20])
    np.testing.assert_array_equal(np.bincount(s.y_train), [350, 210, 140])


def test_stratified_split_totals_with_uneven_classes():
    X, y = labelled((7, 5, 3))
    s = train_val_test_split(X, y, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert len(s.y_test) == 3 and len(s.y_val) == 3 and len(s.y_train) == 9
    assert np.abs(np.bincount(s.y_test, minlength=3) - np.array([7, 5, 3]) * 0.2).max() < 1


def test_split_is_random_but_seeded():
    X, y = labelled()
    a = train_val_test_split(X, y, 0.1, 0.2, seed=5)
    b = train_val_test_split(X, y, 0.1, 0.2, seed=5)
    c = train_val_test_split(X, y, 0.1, 0.2, seed=6)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)


def test_split_string_labels_and_regression_targets():
    y = np.array(["a", "b"] * 20)
    s = train_val_test_split(np.zeros((40, 1)), y, 0.0, 0.5, seed=0)
    assert (s.y_test == "a").sum() == 10
    yr = np.linspace(0, 1, 40)  # float target: a plain random split
    s = train_val_test_split(np.zeros((40, 1)), yr, 0.25, 0.25, seed=0)
    assert len(s.y_val) == 10 and len(s.y_test) == 10


def test_small_fraction_gets_at_least_one_sample():
    X, y = labelled((5, 5))
    s = train_val_test_split(X, y, 0.01, 0.01, seed=0)
    assert len(s.y_val) == 1 and len(s.y_test) == 1


@pytest.mark.parametrize("kwargs,pattern", [
    ({"val_fraction": -0.1}, "val_fraction must be in"),
    ({"test_fraction": 1.0}, "test_fraction must be in"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "must be < 1"),
])
def test_split_bad_fractions(kwargs, pattern):
    X, y = labelled()
    with pytest.raises(ValueError, match=pattern):
        train_val_test_split(X, y, **kwargs)


def test_split_errors():
    with pytest.raises(ValueError, match="same number of samples"):
        train_val_test_split(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="no sample is left for training"):
        train_val_test_split(np.zeros((2, 2)), np.array([0, 1]), 0.4, 0.4)


def test_standardizer_matches_formula_and_round_trips():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(200, 4))
    X[:, 2] = 7.0                  # constant column
    X[:, 3] = 0.1                  # constant, not exactly representable: its std is rounding noise
    s = Standardizer().fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, :2], (X[:, :2] - X[:, :2].mean(0)) / X[:, :2].std(0))
    np.testing.assert_allclose(Z[:, :2].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(0), 1)
    assert np.abs(Z[:, 2:]).max() < 1e-12 and s.scale_[2] == 1.0 and s.scale_[3] == 1.0  # no division by ~0
    np.testing.assert_allclose(s.inverse_transform(Z), X)
    s2 = Standardizer.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(s2.transform(X), Z)


def test_standardizer_fit_on_train_only_and_dtypes():
    Xtr = np.array([[0.0], [2.0]], dtype=np.float32)
    Xte = np.array([[4.0]], dtype=np.float32)
    s = Standardizer().fit(Xtr)
    out = s.transform(Xte)
    assert out.dtype == np.float32 and out[0, 0] == pytest.approx(3.0)  # (4 - 1) / 1
    assert Standardizer().fit_transform(np.array([[1], [3]])).dtype == np.float64


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: Standardizer().transform(np.zeros((2, 2))), RuntimeError, "call fit"),
    (lambda: Standardizer().fit(np.zeros(3)), ValueError, "n_samples, n_features"),
    (lambda: Standardizer().fit(np.zeros((2, 2))).transform(np.zeros((2, 3))), ValueError, "fitted on 2 features"),
    (lambda: Standardizer().fit(np.array([[np.nan]])), ValueError, "NaN"),
    (lambda: Standardizer().fit(np.array([["a"]])), TypeError, "numeric"),
    (lambda: Standardizer.from_dict({"mean": [0.0], "scale": [0.0]}), ValueError, "scale finite and > 0"),
    (lambda: Standardizer.from_dict({"mean": [0.0, 1.0], "scale": [1.0]}), ValueError, "equal length"),
    (lambda: Standardizer.from_dict({"type": "minmax"}), ValueError, "expected"),
])
def test_standardizer_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_minibatches_cover_the_data(shuffle, drop_last):
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    batches = list(iterate_minibatches(X, y, batch_size=4, shuffle=shuffle, seed=0, drop_last=drop_last))
    sizes = [len(b[1]) for b in batches]
    assert sizes == ([4, 4] if drop_last else [4, 4, 2])
    seen = np.concatenate([b[1] for b in batches])
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # rows stay paired
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(10))
    assert (seen.tolist() == sorted(seen.tolist())) != shuffle


def test_minibatches_without_targets_and_errors():
    assert [len(b) for b in iterate_minibatches(np.zeros((5, 1)), batch_size=2, shuffle=False)] == [2, 2, 1]
    with pytest.raises(ValueError, match="batch_size"):
        list(iterate_minibatches(np.zeros((5, 1)), batch_size=0))
    with pytest.raises(ValueError, match="same number of samples"):
        list(iterate_minibatches(np.zeros((5, 1)), np.zeros(4)))
