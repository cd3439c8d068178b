"""deltanet.sklearn: the estimators' behaviour inside scikit-learn's tooling, their targets,
parameters, training rules and persistence."""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import deltanet as dn
from deltanet.optim import Adam
from deltanet.sklearn import MLPClassifier, MLPRegressor
from deltanet.sklearn import _base as sk_base

FAST = {"hidden_layer_sizes": (32,), "max_iter": 30, "learning_rate_init": 0.01, "random_state": 0}


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:600])
    return X, y[:600]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_classification(n_samples=240, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.0, random_state=1)
    return StandardScaler().fit_transform(X), y


def _regression(n=200, n_out=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    W = rng.standard_normal((4, n_out))
    Y = np.tanh(X @ W) + 0.5 * X[:, :1]
    return X, (Y[:, 0] if n_out == 1 else Y)


# -- the optional extra -------------------------------------------------------------------------
def test_missing_scikit_learn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "deltanet.sklearn" or m.startswith("deltanet.sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)   # makes `import sklearn` fail
    with pytest.raises(ImportError, match=r"pip install deltanet\[sklearn\]"):
        importlib.import_module("deltanet.sklearn")


# -- scikit-learn tooling ---------------------------------------------------------------------------
def test_pipeline_learns_digits(digits):
    X, y = digits
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST))
    assert pipe.fit(X_tr, y_tr).score(X_te, y_te) > 0.9


def test_cross_val_score(blobs):
    X, y = blobs
    scores = cross_val_score(MLPClassifier(**FAST), X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.85


def test_grid_search_in_two_processes(blobs):
    X, y = blobs
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(**{**FAST, "max_iter": 15}))])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(4,), (32,)], "mlp__alpha": [1e-4, 1e-2]}, cv=2, n_jobs=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()
    assert grid.best_score_ > 0.8
    assert grid.best_estimator_.score(X, y) > 0.8


def test_clone_copies_parameters_not_fitted_state(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST, dropout=0.2, batch_norm=True, solver="adamw", class_weight="balanced").fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not hasattr(copy, "network_")
    with pytest.raises(NotFittedError):
        copy.predict(X)


def test_set_params_then_fit_uses_them(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST).set_params(hidden_layer_sizes=(7, 5), activation="leaky_relu", max_iter=2)
    est.fit(X, y)
    assert [c.shape for c in est.coefs_] == [(6, 7), (7, 5), (5, 3)]
    assert any(isinstance(m, dn.LeakyReLU) for m in est.network_.modules())
    assert est.n_iter_ == 2 and est.n_layers_ == 4


# -- targets -------------------------------------------------------------------------------------------
def test_binary_string_labels():
    X, y = make_classification(n_samples=200, n_features=5, random_state=3)
    labels = np.array(["no", "yes"])[y]
    est = MLPClassifier(**FAST).fit(X, labels)
    assert list(est.classes_) == ["no", "yes"]
    proba = est.predict_proba(X)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), proba, rtol=1e-10)
    assert set(est.predict(X)) <= {"no", "yes"}
    assert est.score(X, labels) > 0.85
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 1     # one logistic unit, as scikit-learn


def test_multiclass_probabilities_match_softmax_of_network(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST).fit(X, y)
    z = np.asarray(est.network_.forward(X.astype(np.float32), training=False), dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), p, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(est.predict(X), est.classes_[z.argmax(axis=1)])


def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(n_samples=300, n_features=8, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    est = MLPClassifier(**{**FAST, "max_iter": 60}).fit(X, Y)
    assert isinstance(est._trainer.loss, dn.BinaryCrossEntropyWithLogits)
    assert est.out_activation_ == "logistic"
    np.testing.assert_array_equal(est.classes_, np.arange(4))
    pred = est.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = est.predict_proba(X)
    assert proba.shape == Y.shape and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-est._forward(est._check_X(X)))), rtol=1e-12)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred == Y).mean() > 0.8                     # per-label accuracy (majority: 0.57)
    majority = np.maximum(Y.mean(axis=0), 1 - Y.mean(axis=0)).mean()
    assert (pred == Y).mean() > majority + 0.05


def test_single_and_multi_output_regression():
    X, y = _regression()
    reg = MLPRegressor(**{**FAST, "max_iter": 100}).fit(X, y)
    assert reg.predict(X).shape == (200,)
    assert reg.score(X, y) > 0.9
    assert reg.out_activation_ == "identity"
    X2, Y2 = _regression(n_out=3, seed=1)
    reg2 = MLPRegressor(**{**FAST, "max_iter": 200}).fit(X2, Y2)
    assert reg2.predict(X2).shape == (200, 3)
    assert reg2.n_outputs_ == 3
    assert reg2.score(X2, Y2) > 0.9
    reg3 = MLPRegressor(**{**FAST, "max_iter": 2}).fit(X, y[:, None])
    assert reg3.predict(X).shape == (200, 1)


def test_one_class_is_refused():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="1 class"):
        MLPClassifier(**FAST).fit(X, np.ones(10))


def test_continuous_targets_are_refused_by_the_classifier():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier(**FAST).fit(X, np.linspace(0, 1, 10))


# -- evaluation mode in predict ---------------------------------------------------------------------------
def test_predict_uses_eval_mode_for_dropout_and_batch_norm(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST, dropout=0.5, batch_norm=True).fit(X, y)
    X32 = X.astype(np.float32)
    p1 = est.predict_proba(X)
    np.testing.assert_array_equal(p1, est.predict_proba(X))               # no random masks
    # one row predicts as it does inside a batch: running statistics, not the batch's
    np.testing.assert_allclose(est.predict_proba(X[:1]), p1[:1], rtol=1e-5)
    z_eval = np.asarray(est.network_.forward(X32, training=False), dtype=np.float64)
    np.testing.assert_allclose(np.log(p1) - np.log(p1)[:, :1], z_eval - z_eval[:, :1], rtol=1e-5, atol=1e-5)
    z_train = np.asarray(est.network_.forward(X32, training=True), dtype=np.float64)
    assert np.abs(z_train - z_eval).max() > 1e-2                            # the check can fail


# -- fitted attributes ---------------------------------------------------------------------------------------
def test_fitted_attributes(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST).fit(X, y)
    assert est.n_features_in_ == 6
    assert len(est.loss_curve_) == est.n_iter_ == 30
    assert est.loss_ == est.loss_curve_[-1]
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.t_ == 30 * 240
    assert isinstance(est.network_, dn.Sequential)
    assert [c.shape for c in est.coefs_] == [(6, 32), (32, 3)]
    assert [b.shape for b in est.intercepts_] == [(32,), (3,)]
    np.testing.assert_array_equal(est.coefs_[0], est.network_[0].weight.value.T)
    assert est.loss_curve_[-1] < 0.5 * est.loss_curve_[0]


def test_feature_names_in_from_dataframe(tmp_path, blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    est = MLPClassifier(**FAST).fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, df.columns.to_numpy(dtype=object))
    est.save(tmp_path / "m.safetensors")
    back = MLPClassifier.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.feature_names_in_, est.feature_names_in_)
    np.testing.assert_array_equal(back.predict(df), est.predict(df))
    with pytest.raises(ValueError, match="feature names"):
        back.predict(df.rename(columns={"f0": "other"}))


def test_wrong_feature_count_in_predict(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifier is expecting 6 features"):
        est.predict(X[:, :5])


# -- training rules ----------------------------------------------------------------------------------------------
def test_convergence_warning_only_when_max_iter_ends_the_run(blobs):
    X, y = blobs
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        MLPClassifier(**{**FAST, "max_iter": 3}).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = MLPClassifier(**{**FAST, "max_iter": 200}, tol=10.0, n_iter_no_change=2).fit(X, y)
    # epoch 1 improves on best_loss_ = inf; epochs 2, 3, 4 do not improve by tol: 3 > n_iter_no_change
    assert est.n_iter_ == 4


def test_early_stopping_keeps_the_best_weights(blobs, monkeypatch):
    X, y = blobs
    seen = {}

    def recording_split(*arrays, **kw):
        parts = train_test_split(*arrays, **kw)
        seen["X_val"], seen["y_val"] = parts[1], parts[3]
        return parts

    monkeypatch.setattr(sk_base, "train_test_split", recording_split)
    est = MLPClassifier(**{**FAST, "max_iter": 100, "learning_rate_init": 0.05}, early_stopping=True,
                        validation_fraction=0.25, n_iter_no_change=3).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ < 100
    assert est.best_loss_ is None
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert np.bincount(seen["y_val"]).min() >= 19          # stratified: 60 rows, 20 per class
    score = est._validation_score(seen["X_val"], seen["y_val"], None)
    assert score == est.best_validation_score_              # the best epoch's weights were put back


def test_early_stopping_regressor_scores_r2():
    X, y = _regression(n=300)
    reg = MLPRegressor(**{**FAST, "max_iter": 40}, early_stopping=True).fit(X, y)
    assert len(reg.validation_scores_) == reg.n_iter_
    assert 0.5 < reg.best_validation_score_ <= 1.0


def test_partial_fit_continues_the_optimizer(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(**FAST).partial_fit(X, y)
    est = MLPClassifier(**FAST)
    losses = []
    for _ in range(8):
        est.partial_fit(X, y, classes=np.unique(y))
        losses.append(est.loss_)
    opt = est._trainer.optimizer
    assert opt.step_count == 8 * 2                # 240 rows in batches of 200: 2 steps per call, never reset
    assert est.n_iter_ == 8 and est.t_ == 8 * 240
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="not in classes_"):
        est.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="early_stopping"):
        clone(est).set_params(early_stopping=True).partial_fit(X, y, classes=np.unique(y))


def test_partial_fit_equals_fit_for_one_epoch(blobs):
    X, y = blobs
    a = MLPClassifier(**{**FAST, "max_iter": 1}).fit(X, y)
    b = MLPClassifier(**FAST).partial_fit(X, y, classes=np.unique(y))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_warm_start_continues_from_the_fitted_weights(blobs):
    X, y = blobs
    est = MLPClassifier(**{**FAST, "max_iter": 10}, warm_start=True).fit(X, y)
    first_curve = list(est.loss_curve_)
    w_before = est.coefs_[0].copy()
    est.fit(X, y)
    assert est.loss_curve_[:10] == first_curve and len(est.loss_curve_) == 20
    assert est.loss_curve_[10] < first_curve[0]
    cold = clone(est).set_params(warm_start=False).fit(X, y)
    assert cold.loss_curve_[0] == pytest.approx(first_curve[0])
    assert not np.array_equal(est.coefs_[0], w_before)


def test_same_random_state_same_model(blobs):
    X, y = blobs
    a = MLPClassifier(**FAST, dropout=0.2).fit(X, y)
    b = MLPClassifier(**FAST, dropout=0.2).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = MLPClassifier(**{**FAST, "random_state": 1}, dropout=0.2).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_solver_learns(blobs, solver):
    X, y = blobs
    est = MLPClassifier(**FAST, solver=solver).fit(X, y)
    assert est.score(X, y) > 0.9
    assert type(est._trainer.optimizer).__name__.lower() == solver


def test_solver_hyperparameters_reach_the_optimizer(blobs):
    X, y = blobs
    sgd = MLPClassifier(**{**FAST, "max_iter": 1}, solver="sgd", momentum=0.5, nesterovs_momentum=False,
                        alpha=0.4, batch_size=40).fit(X, y)
    opt = sgd._trainer.optimizer
    assert (opt.momentum, opt.nesterov, opt.lr) == (0.5, False, 0.01)
    assert opt.weight_decay == pytest.approx(0.4 / 40)      # alpha / n_batch, scikit-learn's L2 scaling
    adamw = MLPClassifier(**{**FAST, "max_iter": 1}, solver="adamw", beta_1=0.8, beta_2=0.99, epsilon=1e-6,
                          alpha=2.0).fit(X, y)
    opt = adamw._trainer.optimizer
    assert opt.betas == (0.8, 0.99) and opt.eps == 1e-6 and opt.decoupled
    assert opt.weight_decay == pytest.approx(2.0 / 40)       # alpha / the size of the batch: the last has 40 rows
    rms = MLPClassifier(**{**FAST, "max_iter": 1}, solver="rmsprop", rho=0.9).fit(X, y)
    assert rms._trainer.optimizer.alpha == 0.9
    clipped = MLPClassifier(**{**FAST, "max_iter": 1}, clip_norm=0.5).fit(X, y)
    assert clipped._trainer.clip_norm == 0.5


def test_learning_rate_schedules(blobs):
    X, y = blobs
    inv = MLPClassifier(**{**FAST, "max_iter": 4}, learning_rate="invscaling", power_t=0.5).fit(X, y)
    assert inv._trainer.optimizer.lr == pytest.approx(0.01 / (4 * 240 + 1) ** 0.5)
    cos = MLPClassifier(**{**FAST, "max_iter": 4}, learning_rate="cosine").fit(X, y)
    assert cos._trainer.optimizer.lr == pytest.approx(0.0, abs=1e-12)
    assert cos._trainer.history["lr"][1] == pytest.approx(0.01 * (1 + np.cos(np.pi / 4)) / 2)
    # no epoch improves by tol (but the first, on best_loss_ = inf): the rate is divided by 5 after epochs 3 and 5
    ada = MLPClassifier(**{**FAST, "max_iter": 7}, learning_rate="adaptive", tol=10.0, n_iter_no_change=1).fit(X, y)
    assert ada._trainer.history["lr"] == pytest.approx([0.01, 0.01, 0.01, 0.002, 0.002, 4e-4, 4e-4])


def test_adaptive_learning_rate_stops_when_tiny(blobs):
    X, y = blobs
    est = MLPClassifier(**{**FAST, "max_iter": 500, "learning_rate_init": 1e-5}, learning_rate="adaptive", tol=10.0,
                        n_iter_no_change=1).fit(X, y)
    # 1e-5 -> 2e-6 (after epoch 3) -> 4e-7 (after epoch 5; <= 1e-6: stop at the next plateau, epoch 7)
    assert est.n_iter_ == 7


def test_verbose_prints_the_loss(blobs):
    X, y = blobs
    out = io.StringIO()
    with redirect_stdout(out):
        est = MLPClassifier(**{**FAST, "max_iter": 2}, verbose=True).fit(X, y)
    lines = out.getvalue().splitlines()
    assert lines == [f"Iteration {i + 1}, loss = {est.loss_curve_[i]:.8f}" for i in range(2)]


def test_divergence_raises_with_a_hint():
    X = np.full((20, 3), 1e37, dtype=np.float32)              # a float32 network: its products overflow
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="large values"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        MLPClassifier(**FAST).fit(X, y)


# -- weights --------------------------------------------------------------------------------------------------------------
def test_zero_weight_rows_are_absent_rows(blobs):
    X, y = blobs
    sw = np.ones(len(y))
    sw[200:] = 0
    a = MLPClassifier(**FAST, batch_norm=True, dropout=0.2).fit(X, y, sample_weight=sw)
    b = MLPClassifier(**FAST, batch_norm=True, dropout=0.2).fit(X[:200], y[:200])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_integer_weights_equal_repeated_rows_with_full_batches():
    X, y = _regression(n=40)
    sw = np.arange(40) % 3
    kw = {**FAST, "dtype": "float64", "alpha": 1e-2}
    a = MLPRegressor(**kw).fit(X, y, sample_weight=sw)
    b = MLPRegressor(**kw).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-12)


def test_sample_weight_changes_the_fit(blobs):
    X, y = blobs
    sw = np.where(y == 0, 20.0, 1.0)
    plain = MLPClassifier(**{**FAST, "max_iter": 5}).fit(X, y)
    weighted = MLPClassifier(**{**FAST, "max_iter": 5}).fit(X, y, sample_weight=sw)
    assert (weighted.predict(X) == 0).sum() > (plain.predict(X) == 0).sum()


def test_class_weight(blobs):
    X, y = blobs
    keep = (y != 1) | (np.arange(len(y)) % 8 == 0)            # class 1 becomes rare
    Xi, yi = X[keep], y[keep]
    kw = {**FAST, "max_iter": 10, "learning_rate_init": 0.003}
    plain = MLPClassifier(**kw).fit(Xi, yi)
    balanced = MLPClassifier(**kw, class_weight="balanced").fit(Xi, yi)
    recall = [(m.predict(Xi)[yi == 1] == 1).mean() for m in (plain, balanced)]
    assert recall[1] > recall[0]
    as_dict = MLPClassifier(**kw, class_weight={0: 1.0, 1: 5.0, 2: 1.0}).fit(Xi, yi)
    via_sw = MLPClassifier(**kw).fit(Xi, yi, sample_weight=np.where(yi == 1, 5.0, 1.0))
    np.testing.assert_array_equal(as_dict.predict_proba(Xi), via_sw.predict_proba(Xi))
    with pytest.raises(ValueError, match="partial_fit"):
        MLPClassifier(**kw, class_weight="balanced").partial_fit(Xi, yi, classes=[0, 1, 2])


@pytest.mark.parametrize(("sample_weight", "match"), [
    (np.zeros(240), "zero"),
    (-np.ones(240), "non-negative"),
    (np.ones(239), "shape"),
])
def test_bad_sample_weight(blobs, sample_weight, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**FAST).fit(X, y, sample_weight=sample_weight)


# -- hyper-parameter validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "error", "match"), [
    ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": "big"}, TypeError, "hidden_layer_sizes"),
    ({"activation": "softmax"}, ValueError, "activation must be one of"),
    ({"solver": "newton"}, ValueError, "solver must be one of"),
    ({"max_fun": 0}, ValueError, "max_fun"),
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": "all"}, TypeError, "batch_size"),
    ({"learning_rate": "step"}, ValueError, "learning_rate must be one of"),
    ({"learning_rate_init": 0.0}, ValueError, "learning_rate_init"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"momentum": 1.5}, ValueError, "momentum"),
    ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
    ({"beta_1": 1.0}, ValueError, "beta_1"),
    ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"clip_norm": 0.0}, ValueError, "clip_norm"),
    ({"weight_init": "ones"}, ValueError, "weight_init must be None or one of: .*; got .ones."),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"random_state": "seed"}, TypeError, "random_state"),
    ({"class_weight": "even"}, TypeError, "class_weight"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
])
def test_bad_hyperparameters_fail_in_fit_not_init(blobs, params, error, match):
    X, y = blobs
    est = MLPClassifier(**{**FAST, **params})                   # __init__ stores, never validates
    with pytest.raises(error, match=match):
        est.fit(X, y)


def test_accepted_variants(blobs):
    X, y = blobs
    est = MLPClassifier(**{**FAST, "max_iter": 1, "hidden_layer_sizes": 8, "random_state": np.random.RandomState(0)},
                        n_iter_no_change=np.inf, dtype=np.float64, batch_size=1000)
    with pytest.warns(UserWarning, match="batch_size=1000"):
        est.fit(X, y)
    assert est.network_[0].weight.value.dtype == np.float64 and est.coefs_[0].shape == (6, 8)
    linear = MLPClassifier(**{**FAST, "max_iter": 1, "hidden_layer_sizes": ()}).fit(X, y)
    assert [c.shape for c in linear.coefs_] == [(6, 3)]


def test_batch_norm_never_gets_a_batch_of_one(blobs):
    X, y = blobs
    est = MLPClassifier(**{**FAST, "max_iter": 2}, batch_norm=True, batch_size=239).fit(X, y)  # 240 = 239 + 1
    assert est._trainer.batch_size == 240
    with pytest.raises(ValueError, match="1 sample"):
        MLPRegressor(**FAST, batch_norm=True).fit(X[:1], y[:1])


# -- persistence ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: (MLPClassifier(**FAST, dropout=0.2, batch_norm=True, solver="adamw", n_iter_no_change=np.inf),
             *make_classification(n_samples=150, n_features=5, n_informative=3, n_classes=3, random_state=0)),
    lambda: (MLPRegressor(**FAST, batch_norm=True, dtype="float64"), *_regression(n=150, n_out=2)),
    lambda: (MLPRegressor(**FAST), *_regression(n=150)),
])
def test_model_file_and_pickle_round_trips(tmp_path, make):
    est, X, y = make()
    if isinstance(est, MLPClassifier):
        y = np.array(["ant", "bee", "cat"])[y]                 # labels that must survive the file
    est.fit(X, y)
    path = tmp_path / "model.safetensors"
    est.save(path)
    loaded = type(est).load(path)
    unpickled = pickle.loads(pickle.dumps(est))
    for other in (loaded, unpickled):
        np.testing.assert_array_equal(other.predict(X), est.predict(X))
        assert other.get_params() == est.get_params()
        assert other.n_features_in_ == est.n_features_in_ and other.loss_curve_ == est.loss_curve_
        if isinstance(est, MLPClassifier):
            np.testing.assert_array_equal(other.classes_, est.classes_)
            assert other.classes_.dtype == est.classes_.dtype
            np.testing.assert_array_equal(other.predict_proba(X), est.predict_proba(X))
    # the same file is a plain deltanet model file
    net = dn.load(path)
    np.testing.assert_array_equal(net.forward(X.astype(net[0].dtype)), est.network_.forward(X.astype(net[0].dtype)))
    if isinstance(est, MLPClassifier):
        assert dn.load_model_file(path).preprocessing["class_names"] == ["ant", "bee", "cat"]
    # a loaded estimator trains on (fresh optimizer, same weights)
    loaded.partial_fit(X, y)
    assert loaded.t_ == est.t_ + len(X)


def test_unpickled_estimator_continues_partial_fit_like_the_original(blobs):
    X, y = blobs
    est = MLPClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    twin = pickle.loads(pickle.dumps(est))
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), twin.predict_proba(X))


def test_load_refuses_other_files(tmp_path, blobs):
    X, y = blobs
    dn.save(dn.mlp([6, 3]), tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match=r"not written by MLPClassifier\.save"):
        MLPClassifier.load(tmp_path / "plain.safetensors")
    MLPClassifier(**{**FAST, "max_iter": 1}).fit(X, y).save(tmp_path / "clf.safetensors")
    with pytest.raises(ValueError, match="expected MLPRegressor"):
        MLPRegressor.load(tmp_path / "clf.safetensors")
    with pytest.raises(NotFittedError):
        MLPClassifier().save(tmp_path / "unfitted.safetensors")


# -- the core changes the estimators rely on ---------------------------------------------------------------------------
def test_first_layer_skips_the_input_gradient_only_while_training(blobs):
    X, y = blobs
    est = MLPClassifier(**{**FAST, "max_iter": 2}).fit(X, y)
    first = est.network_[0]
    assert first.input_grad                                  # restored after fit
    x = X[:5].astype(np.float32)
    out = est.network_.forward(x, training=True)
    assert est.network_.backward(np.ones_like(out)).shape == x.shape
    first.input_grad = False
    est.network_.forward(x, training=True)
    est.network_.zero_grad()
    assert est.network_.backward(np.ones_like(out)) is None
    assert np.abs(first.weight.grad).sum() > 0              # its parameter gradients are still computed


def test_unpickled_fused_optimizer_still_updates_its_model():
    net = dn.mlp([3, 4, 2], rng=0)
    opt = Adam(net.parameters(), lr=0.1)
    x, t = np.ones((5, 3), np.float32), np.array([0, 1, 0, 1, 0])
    loss = dn.SoftmaxCrossEntropy()

    def step(model, optimizer):
        loss.forward(model.forward(x, training=True), t)
        model.zero_grad()
        model.backward(loss.backward())
        optimizer.step()

    step(net, opt)
    net2, opt2 = pickle.loads(pickle.dumps((net, opt)))
    before = net2[0].weight.value.copy()
    step(net, opt)
    step(net2, opt2)
    assert not np.array_equal(net2[0].weight.value, before)
    for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b)
