"""deltanet.sklearn against scikit-learn's own MLP: the same hyper-parameters train the same way."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor

from deltanet.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _targets(task, rng, n):
    if task == "multiclass":
        return rng.integers(0, 3, n)
    if task == "binary":
        return rng.integers(0, 2, n)
    if task == "multilabel":
        return (rng.random((n, 5)) < 0.4).astype(int)
    if task == "regression1":
        return rng.standard_normal(n)
    return rng.standard_normal((n, 5))


TASKS = ["multiclass", "binary", "multilabel", "regression1", "regression5"]


def copy_weights(src, dst):
    """scikit-learn's weights into deltanet's estimator (or back): coefs_ and intercepts_ are settable."""
    dst.coefs_ = [c.copy() for c in src.coefs_]
    dst.intercepts_ = [b.copy() for b in src.intercepts_]


def _pair(task, **extra):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = _targets(task, rng, 60)
    kw = dict(hidden_layer_sizes=(7, 4), solver="sgd", momentum=0.0, batch_size=60, learning_rate_init=0.1,
              alpha=0.3, random_state=0, shuffle=False, **extra)
    Sk, Dn = (SkClassifier, MLPClassifier) if task in ("multiclass", "binary", "multilabel") else (SkRegressor, MLPRegressor)
    sk = Sk(max_iter=1, **kw).fit(X, y)
    dn = Dn(max_iter=1, dtype="float64", **kw).fit(X, y)
    return X, y, sk, dn


def step_from_the_same_weights(sk, dn, X, y):
    """Copy scikit-learn's weights into ``dn``, take one partial_fit step with each; the weights must agree."""
    copy_weights(sk, dn)
    sk.partial_fit(X, y)
    dn.partial_fit(X, y)
    for a, b in zip(sk.coefs_ + sk.intercepts_, dn.coefs_ + dn.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("task", TASKS)
def test_one_sgd_step_equals_scikit_learns(task):
    X, y, sk, dn = _pair(task)
    assert [c.shape for c in dn.coefs_] == [c.shape for c in sk.coefs_]
    step_from_the_same_weights(sk, dn, X, y)
    # the loss of the step, L2 term alpha / (2 n) sum ||W||^2 included, is scikit-learn's loss_curve_ entry
    assert dn.loss_curve_[-1] == pytest.approx(sk.loss_curve_[-1], rel=1e-12)
    assert dn.out_activation_ == sk.out_activation_


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression5"])
def test_weighted_sgd_step_equals_scikit_learns(task):
    X, y, sk, dn = _pair(task)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    copy_weights(sk, dn)
    sk.partial_fit(X, y, sample_weight=w)
    dn.partial_fit(X, y, sample_weight=w)
    for a, b in zip(sk.coefs_ + sk.intercepts_, dn.coefs_ + dn.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert dn.loss_curve_[-1] == pytest.approx(sk.loss_curve_[-1], rel=1e-12)


def test_multilabel_partial_fit_learns_like_scikit_learn():
    """The issue's report: with the same settings, multi-label partial_fit now learns as scikit-learn's does."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10))
    Y = (X[:, :5] + 0.3 * rng.standard_normal((200, 5)) > 0).astype(int)
    kw = dict(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.05, random_state=0)
    sk, dn = SkClassifier(**kw), MLPClassifier(dtype="float64", **kw)
    for _ in range(30):
        sk.partial_fit(X, Y, classes=np.arange(5))
        dn.partial_fit(X, Y, classes=np.arange(5))
    assert sk.score(X, Y) > 0.5
    assert abs(dn.score(X, Y) - sk.score(X, Y)) < 0.1


# -- solver="lbfgs" ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression1"])
def test_lbfgs_follows_scikit_learns_iterates(task):
    """The same objective and gradient from the same weights: SciPy's L-BFGS-B takes the same steps."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = _targets(task, rng, 60)
    kw = dict(hidden_layer_sizes=(7, 4), solver="lbfgs", alpha=0.3, random_state=0, activation="tanh", max_iter=10)
    Sk, Dn = (SkClassifier, MLPClassifier) if task != "regression1" else (SkRegressor, MLPRegressor)
    sk = Sk(**kw).fit(X, y)
    start = Sk(**{**kw, "max_iter": 1}).fit(X, y)        # the same initial weights as sk had
    dn = Dn(**kw, dtype="float64", warm_start=True).fit(X, y)
    copy_weights(start, dn)
    sk_again = Sk(**kw, warm_start=True).fit(X, y)
    copy_weights(start, sk_again)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        sk_again.fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):   # also under warm_start
        dn.fit(X, y)
    for a, b in zip(sk_again.coefs_ + sk_again.intercepts_, dn.coefs_ + dn.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)
    assert dn.loss_ == pytest.approx(sk_again.loss_, rel=1e-10)
    assert dn.n_iter_ == sk_again.n_iter_ == 10
    assert len(dn.loss_curve_) == 20 and dn.loss_curve_[-1] == pytest.approx(dn.loss_)   # warm_start: the curve goes on
    assert sk.n_iter_ == 10


def test_lbfgs_has_no_partial_fit_and_warns_at_max_fun():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 4)), rng.integers(0, 3, 80)
    clf = MLPClassifier((8,), solver="lbfgs", max_fun=5, random_state=0)
    reg = MLPRegressor((8,), solver="lbfgs", random_state=0)
    assert not hasattr(clf, "partial_fit") and not hasattr(reg, "partial_fit")
    assert hasattr(MLPClassifier(solver="sgd"), "partial_fit")
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        clf.fit(X, y)
    assert clf.n_iter_ <= 5
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier((8,), solver="lbfgs", dropout=0.2).fit(X, y)


def test_lbfgs_multi_output_regression_reaches_a_minimum():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4))
    Y = np.tanh(X @ rng.standard_normal((4, 3)))
    reg = MLPRegressor((16,), solver="lbfgs", max_iter=500, tol=1e-6, alpha=1e-3, random_state=0, dtype="float64")
    reg.fit(X, Y)
    assert reg.score(X, Y) > 0.99
    sk = SkRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=500, tol=1e-6, alpha=1e-3, random_state=0).fit(X, Y)
    assert reg.score(X, Y) >= sk.score(X, Y) - 0.01


# -- loss="poisson" --------------------------------------------------------------------------------------
def test_poisson_without_hidden_layers_is_the_poisson_glm():
    from sklearn.linear_model import PoissonRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = rng.poisson(np.exp(X @ np.array([0.3, -0.2, 0.5, 0.1]) + 0.4)).astype(float)
    alpha = 0.5                       # MLP: alpha / (2n) ||W||^2; the GLM: alpha_glm / 2 ||w||^2, alpha_glm = alpha / n
    reg = MLPRegressor(hidden_layer_sizes=(), loss="poisson", solver="lbfgs", alpha=alpha, tol=1e-10, max_iter=1000,
                       random_state=0, dtype="float64").fit(X, y)
    glm = PoissonRegressor(alpha=alpha / len(y), tol=1e-12, max_iter=1000).fit(X, y)
    assert reg.out_activation_ == "exp"
    np.testing.assert_allclose(reg.coefs_[0][:, 0], glm.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reg.intercepts_[0], [glm.intercept_], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reg.predict(X), glm.predict(X), rtol=1e-5)
    sk = SkRegressor(hidden_layer_sizes=(), loss="poisson", solver="lbfgs", alpha=alpha, tol=1e-10, max_iter=1000,
                     random_state=0).fit(X, y)
    assert reg.loss_ == pytest.approx(sk.loss_, rel=1e-6)     # half the Poisson deviance, as scikit-learn reports it


def test_poisson_sgd_step_equals_scikit_learns_and_refuses_negative_targets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = rng.poisson(2.0, (60, 2)).astype(float)
    kw = dict(hidden_layer_sizes=(7,), solver="sgd", momentum=0.0, batch_size=60, learning_rate_init=0.05, alpha=0.3,
              random_state=0, shuffle=False, loss="poisson")
    sk = SkRegressor(max_iter=1, **kw).fit(X, y)
    dn = MLPRegressor(max_iter=1, dtype="float64", **kw).fit(X, y)
    step_from_the_same_weights(sk, dn, X, y)
    assert dn.loss_curve_[-1] == pytest.approx(sk.loss_curve_[-1], rel=1e-12)
    np.testing.assert_allclose(dn.predict(X), sk.predict(X), rtol=1e-12)
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson").fit(X, -y)


# -- early stopping and warm starts -------------------------------------------------------------------------
def test_divergence_with_early_stopping_keeps_the_best_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = X @ rng.standard_normal(5)
    kw = dict(hidden_layer_sizes=(32,), solver="sgd", learning_rate_init=0.5, momentum=0.9, max_iter=100,
              random_state=0, dtype="float64")
    with pytest.raises(ValueError, match="learning_rate_init may be too large"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        MLPRegressor(**kw).fit(X, y)                       # without early stopping: an error, as before
    with pytest.warns(ConvergenceWarning, match="diverged at iteration 7.*kept the weights of iteration"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reg = MLPRegressor(**kw, early_stopping=True).fit(X, y)
    assert all(np.isfinite(c).all() for c in reg.coefs_ + reg.intercepts_)
    best = int(np.argmax(reg.validation_scores_))
    assert reg.best_validation_score_ == reg.validation_scores_[best]
    assert np.isfinite(reg.predict(X)).all()


def test_early_stopping_split_is_stratified_with_scikit_learns_error():
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = np.repeat([0, 1, 2, 3], [140, 40, 14, 6])
    seen = {}
    original = train_test_split

    def spy(*arrays, **kwargs):
        seen["stratify"] = kwargs.get("stratify")
        parts = original(*arrays, **kwargs)
        seen["val"] = parts[3]
        return parts

    import deltanet.sklearn._base as base
    base_split, base.train_test_split = base.train_test_split, spy
    try:
        MLPClassifier((8,), early_stopping=True, validation_fraction=0.2, max_iter=3, random_state=0).fit(X, y)
    finally:
        base.train_test_split = base_split
    assert seen["stratify"] is not None
    np.testing.assert_array_equal(np.bincount(seen["val"].astype(int)), [28, 8, 3, 1])   # the class proportions
    y_small = y.copy()
    y_small[-5:] = 0                                     # class 3 has one member left
    with pytest.raises(ValueError, match="only 1 member, which is too few"):
        MLPClassifier((8,), early_stopping=True, max_iter=3).fit(X, y_small)
    y_binary = (np.arange(200) == 7).astype(int)       # scikit-learn stratifies binary targets (and its docs, all)
    for Est in (MLPClassifier, SkClassifier):
        with pytest.raises(ValueError, match="only 1 member, which is too few"):
            Est(hidden_layer_sizes=(8,), early_stopping=True, max_iter=3).fit(X, y_binary)


def test_warm_start_refuses_other_classes_as_scikit_learn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 4))
    y = np.arange(90) % 3
    message = "warm_start can only be used where `y` has the same classes as in the previous call to fit"
    for Est in (MLPClassifier, SkClassifier):
        est = Est(hidden_layer_sizes=(8,), max_iter=2, warm_start=True).fit(X, y)
        with pytest.raises(ValueError, match=message):
            est.fit(X[y < 2], y[y < 2])                  # a subset of the classes
        with pytest.raises(ValueError, match=message):
            est.fit(X, np.where(y == 2, 5, y))           # a new class
        est.fit(X, y)                                    # the same classes: trains on


@pytest.mark.parametrize("weights", ["random", "all two"])
def test_weighted_lbfgs_follows_scikit_learn(weights):
    """alpha's term is alpha / (2 sum w) sum ||W||^2, also when every weight is the same (not 1)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    w = rng.uniform(0.5, 2.0, 60) if weights == "random" else np.full(60, 2.0)
    kw = dict(hidden_layer_sizes=(7, 4), solver="lbfgs", alpha=0.3, random_state=0, activation="tanh", max_iter=10)
    start = SkClassifier(**{**kw, "max_iter": 1}).fit(X, y)
    sk = SkClassifier(**kw, warm_start=True).fit(X, y)
    dn = MLPClassifier(**kw, warm_start=True, dtype="float64").fit(X, y)
    copy_weights(start, sk)
    copy_weights(start, dn)
    sk.fit(X, y, sample_weight=w)
    dn.fit(X, y, sample_weight=w)
    for a, b in zip(sk.coefs_ + sk.intercepts_, dn.coefs_ + dn.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)
    assert dn.loss_ == pytest.approx(sk.loss_, rel=1e-10)
