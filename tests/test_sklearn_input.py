"""deltanet.sklearn's inputs: sparse matrices, dtypes, and the weights as arrays to read and set."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from deltanet.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture
def never_densify(monkeypatch):
    """The sparse data set is never made dense: toarray/todense on a sparse matrix fail within these tests."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.csr_array, sp.csc_array):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)


def _text_like(n=400, d=3000, seed=0):
    X = sp.random(n, d, density=0.01, format="csr", random_state=seed, dtype=np.float64)
    score = np.asarray(X[:, :300].sum(axis=1)).ravel()
    return X, (score > np.median(score)).astype(int)



@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop", "lbfgs"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_fit_and_predict_equal_dense(solver, fmt, never_densify):
    X, y = _text_like()
    dense = sp.coo_matrix(X)
    D = np.zeros(X.shape)
    D[dense.row, dense.col] = dense.data                     # the dense twin, built without densifying X
    kw = dict(hidden_layer_sizes=(16,), solver=solver, max_iter=15, random_state=0,
              learning_rate_init=0.1 if solver == "sgd" else 0.01)
    a = MLPClassifier(**kw).fit(X.asformat(fmt), y)
    b = MLPClassifier(**kw).fit(D, y)
    np.testing.assert_allclose(a.predict_proba(X.asformat(fmt)), b.predict_proba(D), rtol=1e-9, atol=1e-12)
    for ca, cb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_allclose(ca, cb, rtol=1e-9, atol=1e-12)
    assert a.score(X, y) > 0.9


def test_sparse_partial_fit_and_regression(never_densify):
    X, y = _text_like()
    clf = MLPClassifier((16,), solver="sgd", learning_rate_init=0.1, random_state=0)
    for start in range(0, X.shape[0], 100):
        clf.partial_fit(X[start:start + 100], y[start:start + 100], classes=[0, 1])
    assert clf.predict(X).shape == (X.shape[0],)
    reg = MLPRegressor((8,), max_iter=20, random_state=0).fit(X.tocsc(), y.astype(float))
    assert reg.predict(X).shape == (X.shape[0],)
    early = MLPClassifier((8,), early_stopping=True, max_iter=20, random_state=0).fit(X, y)
    assert len(early.validation_scores_) >= 1


def test_hashing_vectorizer_text():
    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "excellent", "love", "fine"], ["awful", "terrible", "hate", "poor"], \
        ["the", "film", "was", "a", "plot", "actors", "and", "it", "story", "music"]
    sentences, labels = [], []
    for _ in range(300):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(filler, 6)) + list(rng.choice(good if label else bad, 2))
        rng.shuffle(words)
        sentences.append(" ".join(words))
        labels.append(label)
    X = HashingVectorizer(n_features=2**12).transform(sentences)
    assert sp.issparse(X)
    clf = MLPClassifier((16,), max_iter=50, random_state=0).fit(X[:200], labels[:200])
    assert clf.score(X[200:], labels[200:]) > 0.9


# -- dtypes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_dtypes_follow_the_input_as_in_scikit_learn(dtype):
    from sklearn.neural_network import MLPClassifier as SkClassifier
    from sklearn.neural_network import MLPRegressor as SkRegressor

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((60, 4)) * 3).astype(dtype)
    y = rng.integers(0, 3, 60)
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    for ours, theirs, target in ((MLPClassifier(**kw), SkClassifier(**kw), y),
                                 (MLPRegressor(**kw), SkRegressor(**kw), y.astype(float))):
        ours.fit(X, target)
        theirs.fit(X, target)
        assert [c.dtype for c in ours.coefs_] == [c.dtype for c in theirs.coefs_]
        assert [b.dtype for b in ours.intercepts_] == [b.dtype for b in theirs.intercepts_]
        method = "predict_proba" if hasattr(ours, "predict_proba") else "predict"
        assert getattr(ours, method)(X).dtype == getattr(theirs, method)(X).dtype
        assert getattr(ours, method)(X.astype(np.float64)).dtype == np.float64
    expected = np.float32 if dtype == np.float32 else np.float64
    assert ours.coefs_[0].dtype == expected and ours.predict(X).dtype == expected


def test_explicit_dtype_wins_over_the_input():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 3)), rng.standard_normal(50)
    reg = MLPRegressor((4,), max_iter=2, dtype="float32").fit(X, y)
    assert reg.coefs_[0].dtype == np.float32
    assert reg.predict(X.astype(np.float32)).dtype == np.float32
    reg.partial_fit(X, y)                                  # later data are converted to the network's dtype
    assert reg.coefs_[0].dtype == np.float32


# -- coefs_ and intercepts_ ---------------------------------------------------------------------------------
def _fitted():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 4)), rng.integers(0, 3, 80)
    return X, y, MLPClassifier((6, 5), solver="sgd", max_iter=3, random_state=0).fit(X, y)


def test_coefs_are_views_of_the_network_weights():
    X, y, est = _fitted()
    layers = est._linear_layers()
    for c, b, m in zip(est.coefs_, est.intercepts_, layers, strict=True):
        assert c.shape == (m.in_features, m.out_features) and c.flags.c_contiguous
        assert np.shares_memory(c, m.weight.value) and np.shares_memory(b, m.bias.value)
    held = est.coefs_[1]
    before = held.copy()
    est.partial_fit(X, y)                                  # training updates the arrays in place, as scikit-learn's
    assert not np.array_equal(held, before) and np.shares_memory(held, layers[1].weight.value)
    proba = est.predict_proba(X)
    est.coefs_[-1][...] = 0.0                              # an in-place edit changes the network
    est.intercepts_[-1][...] = [0.0, 1.0, 2.0]
    np.testing.assert_allclose(est.predict_proba(X), np.tile(np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum(), (80, 1)))
    assert not np.allclose(proba, est.predict_proba(X))


def test_coefs_and_intercepts_are_settable():
    X, y, est = _fitted()
    rng = np.random.default_rng(1)
    new_coefs = [rng.standard_normal(c.shape) for c in est.coefs_]
    new_intercepts = [rng.standard_normal(b.shape) for b in est.intercepts_]
    est.coefs_ = new_coefs
    est.intercepts_ = new_intercepts
    for a, b in zip(est.coefs_ + est.intercepts_, new_coefs + new_intercepts, strict=True):
        np.testing.assert_array_equal(a, b)
    h = np.maximum(X @ new_coefs[0] + new_intercepts[0], 0)
    h = np.maximum(h @ new_coefs[1] + new_intercepts[1], 0)
    z = h @ new_coefs[2] + new_intercepts[2]
    np.testing.assert_array_equal(est.predict(X), est.classes_[z.argmax(axis=1)])
    est.partial_fit(X, y)                                  # continues from what was set
    assert np.abs(est.coefs_[0] - new_coefs[0]).max() < 0.1
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape"):
        est.coefs_ = [new_coefs[0], new_coefs[1].T, new_coefs[2]]
    with pytest.raises(ValueError, match="3 arrays"):
        est.intercepts_ = new_intercepts[:2]
