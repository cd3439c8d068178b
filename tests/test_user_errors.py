"""Issue 20, library part: what a new user hit -- memory, tracebacks and silently wrong calls."""

from __future__ import annotations

import errno
import math
import os
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest

import deltanet as dn
from deltanet import io as dio
from deltanet.data import load_npz

# -- 9a: weights drawn in the model's dtype ------------------------------------------------------------------------------

def _peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["he_normal", "xavier_uniform"])
def test_float32_weights_are_drawn_without_a_float64_temporary(name):
    n_out, n_in = 1500, 1000
    weight_bytes = n_out * n_in * 4
    w, peak = _peak_bytes(lambda: getattr(dn.init, name)((n_out, n_in), np.random.default_rng(0), "float32", order="F"))
    assert w.dtype == np.float32 and w.flags.f_contiguous
    assert peak < 1.1 * weight_bytes, peak / weight_bytes      # the weight itself, nothing more
    # a Linear holds the weight and its gradient; before: a float64 draw, a float64 product, a float32 cast
    # and a column-major copy (5x the weight at the peak)
    layer, peak = _peak_bytes(lambda: dn.Linear(n_in, n_out, init=name, rng=0, dtype="float32"))
    assert layer.weight.value.dtype == np.float32 and layer.weight.value.flags.f_contiguous
    assert peak < 2.1 * weight_bytes, peak / weight_bytes


@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform", "he_normal", "he_uniform"])
def test_float64_weights_are_bit_identical_to_before(name):
    shape = (30, 20)
    fan_in, fan_out = shape[1], shape[0]
    std = math.sqrt(2 / (fan_in + fan_out)) if name.startswith("xavier") else math.sqrt(2 / fan_in)
    rng = np.random.default_rng(7)
    if name.endswith("normal"):
        old = rng.standard_normal(shape) * std
    else:
        old = rng.uniform(-std * math.sqrt(3), std * math.sqrt(3), size=shape)
    np.testing.assert_array_equal(getattr(dn.init, name)(shape, np.random.default_rng(7), "float64"), old)
    layer = dn.Linear(20, 30, init=name, rng=7, dtype="float64")
    np.testing.assert_array_equal(layer.weight.value, old)
    assert layer.weight.value.flags.f_contiguous


def test_float32_weights_follow_the_documented_rule():
    shape = (6, 4)
    std = math.sqrt(2 / 4)
    expected = np.random.default_rng(3).standard_normal(shape, dtype=np.float32) * np.float32(std)
    np.testing.assert_array_equal(dn.init.he_normal(shape, np.random.default_rng(3), "float32"), expected)
    # Linear draws its column-major weight column by column: the same numbers, in memory order
    w = dn.Linear(4, 6, rng=3, dtype="float32").weight.value
    flat = np.random.default_rng(3).standard_normal(24, dtype=np.float32) * np.float32(std)
    np.testing.assert_array_equal(w.ravel(order="F"), flat)
    u = dn.init.he_uniform((200, 100), np.random.default_rng(0), "float32")
    bound = math.sqrt(6 / 100)
    assert u.dtype == np.float32 and np.abs(u).max() <= bound * (1 + 1e-6) and np.abs(u).max() > 0.99 * bound


# -- 9b: gradcheck's eps and tol ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "pattern"), [({"eps": 0}, r"eps must be a positive .* got 0"),
                                                 ({"eps": -1e-6}, "eps must be a positive"),
                                                 ({"eps": float("nan")}, "eps must be a positive"),
                                                 ({"tol": 0.0}, r"tol must be a positive .* got 0\.0"),
                                                 ({"max_entries": 0}, "max_entries must be a positive int")])
def test_gradcheck_refuses_non_positive_steps(kwargs, pattern):
    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(ValueError, match=pattern):
        dn.gradcheck(dn.Linear(2, 2, dtype="float64", rng=0), x, **kwargs)


# -- 9c: saving to a directory, a full disk ----------------------------------------------------------------------------

def test_save_to_a_directory_names_it(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a directory; give a file name such as .*model\.safetensors") as info:
        dn.save(dn.Linear(2, 2, rng=0), tmp_path)
    assert str(tmp_path) in str(info.value) and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsADirectoryError, match="is a directory"), dio.atomic_write(tmp_path) as f:
        f.write(b"x")


def _enospc(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_names_the_file_and_leaves_no_tmp(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    monkeypatch.setattr(dio.os, "fsync", _enospc)
    with pytest.raises(OSError, match=r"cannot write .*model\.safetensors: No space left on device") as info:
        dn.save(dn.Linear(2, 2, rng=0), target)
    assert info.value.errno == errno.ENOSPC and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_in_the_block_removes_the_tmp_file(tmp_path):
    target = tmp_path / "report.html"
    with pytest.raises(OSError, match=r"cannot write .*report\.html: No space left on device"), \
            dio.atomic_write(target, "w", encoding="utf-8") as f:
        f.write("<html>")
        _enospc()
    assert os.listdir(tmp_path) == []


# -- 10: silently wrong loss calls -------------------------------------------------------------------------------------

def test_cross_entropy_refuses_1d_logits():
    z = np.random.default_rng(0).standard_normal(8)
    with pytest.raises(ValueError, match=r"logits must have shape \(batch, classes\).*got shape \(8,\)"):
        dn.SoftmaxCrossEntropy().forward(z, np.arange(8) % 3)


def test_cross_entropy_refuses_integer_targets_of_the_logits_shape():
    z = np.random.default_rng(0).standard_normal((4, 3))
    one_hot = np.eye(3, dtype=np.int64)[[0, 1, 2, 0]]
    with pytest.raises(TypeError, match=r"integer target of the logits' shape \(4, 3\) is ambiguous.*class indices of shape \(4,\)"):
        dn.SoftmaxCrossEntropy().forward(z, one_hot)
    # the two unambiguous forms still agree
    ce = dn.SoftmaxCrossEntropy()
    assert ce.forward(z, one_hot.argmax(axis=1)) == pytest.approx(ce.forward(z, one_hot.astype(float)), rel=1e-12)


def test_regression_losses_explain_a_label_vector():
    y = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"target shape \(5,\) does not match output shape \(5, 3\); class labels.*cross_entropy"):
        dn.MeanSquaredError().forward(y, np.arange(5) % 3)
    with pytest.raises(ValueError, match=r"target shape \(5, 1\) does not match output shape \(5,\)"):
        dn.BinaryCrossEntropyWithLogits().forward(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="batch size mismatch"):
        dn.MeanSquaredError().forward(np.zeros((5, 1)), np.zeros(4))


# -- 12: a text file named .npz ----------------------------------------------------------------------------------------

def test_text_file_named_npz_is_not_advised_to_unpickle(tmp_path):
    p = tmp_path / "table.npz"
    p.write_text("a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(ValueError, match=r"table\.npz is not a valid \.npz file \(NumPy zip archive\)") as info:
        load_npz(p)
    assert "pickle" not in str(info.value)


# -- 14: pickling a fitted estimator -----------------------------------------------------------------------------------

def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.parametrize(("solver", "extra", "slots"), [("sgd", {"momentum": 0.0}, 0), ("adam", {}, 2)])
def test_fitted_estimator_pickles_its_weights_not_its_trainer(solver, extra, slots):
    from deltanet.sklearn import MLPClassifier

    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MLPClassifier(hidden_layer_sizes=(100,), max_iter=3, random_state=0, solver=solver, **extra).fit(X, y)
    weight_bytes = sum(p.value.nbytes for p in est.network_.parameters())
    blob = pickle.dumps(est)
    # the weights once, the optimizer's per-weight state (plain SGD: none, Adam: 2), a few KB of the rest
    assert len(blob) < (1 + slots) * weight_bytes + 16_000
    if slots == 0:
        assert len(blob) < 2 * weight_bytes
    twin = pickle.loads(blob)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))
    # partial_fit after unpickling continues exactly as the original does
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    assert twin.t_ == est.t_ and twin.loss_curve_ == est.loss_curve_


def test_unpickled_unfitted_and_refitted_estimators():
    from deltanet.sklearn import MLPRegressor

    X, y = _digits()
    est = pickle.loads(pickle.dumps(MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y.astype(float))
        twin = pickle.loads(pickle.dumps(est))
        twin.set_params(warm_start=True)
        twin.fit(X, y.astype(float))                  # warm start from the unpickled weights
    assert len(twin.loss_curve_) > len(est.loss_curve_) or twin.n_iter_ > 0
