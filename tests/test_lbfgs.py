"""deltanet.optim.LBFGS: full-batch L-BFGS over the flat parameter vector, alone and through the Trainer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

import deltanet as dn
from deltanet.optim import LBFGS


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def test_minimize_fits_xor_like_data_and_reaches_a_stationary_point():
    X, y = _data()
    net = dn.mlp([5, 16, 2], activation="tanh", dtype="float64", rng=0)
    opt = LBFGS(net.parameters(), max_iter=500, tol=1e-6, weight_decay=1e-3)
    loss = dn.SoftmaxCrossEntropy()
    result = opt.minimize(net, loss, X, y)
    assert result.status == 0
    assert (net.forward(X).argmax(axis=1) == y).mean() > 0.97
    f, g = opt.objective(net, loss, X, y)(opt.get_flat())      # the weights left in the network are result.x
    assert f == pytest.approx(result.fun) and np.abs(g).max() <= 1e-5


def test_gradient_matches_finite_differences():
    X, y = _data()
    net = dn.mlp([5, 4, 2], activation="tanh", dtype="float64", rng=1)
    opt = LBFGS(net.parameters(), weight_decay=0.1)
    fun = opt.objective(net, dn.SoftmaxCrossEntropy(), X, y)
    theta = opt.get_flat()
    _, g = fun(theta)
    eps = 1e-6
    for i in np.random.default_rng(0).choice(theta.size, 8, replace=False):
        e = np.zeros_like(theta)
        e[i] = eps
        fd = (fun(theta + e)[0] - fun(theta - e)[0]) / (2 * eps)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_trainer_lbfgs_records_one_entry_per_iteration():
    X, y = _data()
    trainer = dn.Trainer(dn.mlp([5, 16, 2], activation="tanh", dtype="float64", rng=0), optimizer="lbfgs",
                         epochs=15, l2=1e-3)
    history = trainer.fit(X, y, validation_fraction=0.2)
    assert history.stop_reason == "max_epochs" and len(history) == 15 and trainer.epoch == 15
    losses = history["train_loss"]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:], strict=False))    # a line search never goes up
    assert history["val_accuracy"][-1] is not None and history["grad_norm"][-1] > 0
    more = trainer.fit(X, y, epochs=5)
    assert len(more) == 20 and more["train_loss"][-1] <= losses[-1]


def test_trainer_lbfgs_stops_when_converged_or_out_of_evaluations():
    X, y = _data()
    conv = dn.Trainer(dn.mlp([5, 16, 2], activation="tanh", dtype="float64", rng=0), optimizer="lbfgs", epochs=1000,
                      optimizer_kwargs={"tol": 1e-3})
    assert conv.fit(X, y).stop_reason == "converged"
    capped = dn.Trainer(dn.mlp([5, 16, 2], activation="tanh", dtype="float64", rng=0), optimizer="lbfgs",
                        epochs=1000, optimizer_kwargs={"max_fun": 20})
    assert capped.fit(X, y).stop_reason == "max_fun"
    with pytest.raises(ValueError, match="no learning rate"):
        dn.Trainer(dn.mlp([5, 4, 2]), optimizer="lbfgs", lr=0.1)


def test_dropout_is_refused():
    X, y = _data()
    net = dn.mlp([5, 8, 2], dropout=0.5, rng=0)
    with pytest.raises(ValueError, match="dropout"):
        LBFGS(net.parameters()).minimize(net, dn.SoftmaxCrossEntropy(), X, y)


def test_trainer_lbfgs_checkpoint_resumes(tmp_path):
    X, y = _data()
    trainer = dn.Trainer(dn.mlp([5, 8, 2], dtype="float64", rng=0), optimizer="lbfgs", epochs=5)
    trainer.fit(X, y)
    trainer.save_checkpoint(tmp_path / "c.npz")
    again = dn.Trainer.load_checkpoint(tmp_path / "c.npz")
    assert isinstance(again.optimizer, LBFGS) and again.epoch == 5
    trainer.fit(X, y, epochs=3)
    again.fit(X, y, epochs=3)                 # L-BFGS keeps no state between fits: the same run from the same weights
    np.testing.assert_array_equal(trainer.predict(X), again.predict(X))


def test_sparse_data():
    sp = pytest.importorskip("scipy.sparse")
    X = sp.random(300, 500, density=0.02, format="csr", random_state=0)
    y = (np.asarray(X[:, :50].sum(axis=1)).ravel() > 0.2).astype(np.int64)
    net = dn.mlp([500, 8, 2], activation="tanh", dtype="float64", rng=0)
    result = LBFGS(net.parameters(), max_iter=100).minimize(net, dn.SoftmaxCrossEntropy(), X, y)
    assert result.nit > 5
    assert (dn.predict(net, X).argmax(axis=1) == y).mean() > 0.95
