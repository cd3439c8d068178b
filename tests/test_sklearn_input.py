"""deltanet.sklearn's inputs: sparse matrices, dtypes, and the weights as arrays to read and set."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import HashingVectorizer

from deltanet.sklearn import MLPClassifier, MLPRegressor


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(autouse=True)
def _never_densify(monkeypatch):
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
def test_sparse_fit_and_predict_equal_dense(solver, fmt):
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


def test_sparse_partial_fit_and_regression():
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
