"""Sparse data (SciPy CSR/CSC) in the library: Linear, predict, and the Trainer, equal to the dense data."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn

sp = pytest.importorskip("scipy.sparse")


def _data():
    X = sp.random(500, 300, density=0.02, format="csr", random_state=0)
    y = (np.asarray(X[:, :30].sum(axis=1)).ravel() > 0.1).astype(np.int64)
    return X, X.toarray(), y


def test_linear_forward_and_backward_equal_dense():
    X, D, _ = _data()
    a, b = dn.Linear(300, 7, rng=0, dtype="float64"), dn.Linear(300, 7, rng=0, dtype="float64")
    g = np.random.default_rng(1).standard_normal((500, 7))
    np.testing.assert_allclose(a.forward(X.tocsc()), b.forward(D), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.weight.grad, b.weight.grad, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.bias.grad, b.bias.grad, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="sparse matrix of shape"):
        a.forward(X[:, :10])


@pytest.mark.parametrize(("optimizer", "kwargs", "record_layers"),
                         [("sgd", {"momentum": 0.9}, True), ("sgd", {"momentum": 0.9}, False), ("adam", {}, True)])
def test_trainer_on_sparse_data_equals_dense(optimizer, kwargs, record_layers):
    X, D, y = _data()
    outs = []
    for data in (X, D):
        trainer = dn.Trainer(dn.mlp([300, 16, 2], dtype="float64", rng=0), optimizer=optimizer, optimizer_kwargs=kwargs,
                             lr=0.05, epochs=4, batch_size=50, record_layers=record_layers)
        trainer.fit(data, y, validation_fraction=0.2)
        outs.append(dn.predict(trainer.model, X))
        assert trainer.evaluate(data, y)["accuracy"] > 0.5
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-9, atol=1e-12)


def test_sparse_nan_is_refused():
    X = _data()[0].copy()
    X.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dn.predict(dn.mlp([300, 4, 2], rng=0), X)
