"""Splitting data, standardizing features, and iterating over mini-batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy

from ..backend import make_rng
from ..constraints import check


class Split(NamedTuple):
    """The three parts of :func:`train_val_test_split` (a part may be empty)."""

    X_train: numpy.ndarray
    y_train: numpy.ndarray
    X_val: numpy.ndarray
    y_val: numpy.ndarray
    X_test: numpy.ndarray
    y_test: numpy.ndarray


def _is_class_labels(y: numpy.ndarray) -> bool:
    return y.ndim == 1 and y.dtype.kind in "biuUS"


def _apportion(total: int, weights: numpy.ndarray, rng: numpy.random.Generator) -> numpy.ndarray:
    """Integers proportional to ``weights`` summing to ``total`` (largest remainders, ties at random)."""
    ideal = total * weights / weights.sum()
    out = numpy.floor(ideal).astype(numpy.int64)
    short = total - int(out.sum())
    if short > 0:
        remainder = ideal - out
        order = numpy.lexsort((rng.random(len(weights)), -remainder))
        out[order[:short]] += 1
    return out


def _part_size(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, round(n * fraction))


def train_val_test_split(X: Any, y: Any, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: Any = 0,
                         stratify: bool = True) -> Split:
    """Split ``(X, y)`` at random into training, validation and test parts.

    Parameters
    ----------
    X : array-like, shape ``(n_samples, ...)``
    y : array-like, shape ``(n_samples, ...)``
    val_fraction, test_fraction : float
        Fractions of the samples for validation and test, each in [0, 1) and
        together < 1; a non-zero fraction gets at least one sample.
    seed : int, numpy.random.Generator or None
    stratify : bool
        Keep the class proportions in every part (for 1-D integer, boolean or
        string labels; a float target is split plainly at random).

    Returns
    -------
    Split
        ``(X_train, y_train, X_val, y_val, X_test, y_test)``; every part keeps
        the original order of its samples.

    Notes
    -----
    Stratified: the part sizes n_val = round(n val_fraction) and
    n_test = round(n test_fraction) are shared among the classes in proportion
    to their counts (largest remainders), and each class's samples are
    assigned in a random order: test first, then validation, the rest to
    training.
    """
    X = numpy.asarray(X)
    y = numpy.asarray(y)
    if X.ndim < 1 or y.ndim < 1 or len(X) != len(y):
        raise ValueError(f"X and y must have the same number of samples, got X {X.shape} and y {y.shape}")
    val_fraction = check("validation_fraction", val_fraction, "val_fraction")
    test_fraction = check("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    n = len(X)
    n_test, n_val = _part_size(n, test_fraction), _part_size(n, val_fraction)
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} samples are too few for val_fraction={val_fraction} and test_fraction={test_fraction}: "
                         "no sample is left for training")
    rng = make_rng(seed)
    order = rng.permutation(n)
    part = numpy.zeros(n, dtype=numpy.int8)  # 0 train, 1 val, 2 test
    if stratify and _is_class_labels(y):
        classes, label = numpy.unique(y, return_inverse=True)
        counts = numpy.bincount(label, minlength=len(classes))
        test_c = _apportion(n_test, counts.astype(float), rng)
        val_c = _apportion(n_val, (counts - test_c).astype(float), rng)  # never more than a class has left
        # Random order within each class: sort the random permutation by class, stably.
        by_class = order[numpy.argsort(label[order], kind="stable")]
        starts = numpy.concatenate(([0], numpy.cumsum(counts)[:-1]))
        cls = label[by_class]
        rank = numpy.arange(n) - starts[cls]
        part[by_class[rank < test_c[cls]]] = 2
        part[by_class[(rank >= test_c[cls]) & (rank < test_c[cls] + val_c[cls])]] = 1
    else:
        part[order[:n_test]] = 2
        part[order[n_test:n_test + n_val]] = 1
    idx = [numpy.flatnonzero(part == k) for k in (0, 1, 2)]
    return Split(X[idx[0]], y[idx[0]], X[idx[1]], y[idx[1]], X[idx[2]], y[idx[2]])


class Standardizer:
    r"""Feature standardization z = (x - mu) / s, fitted on the training data only.

    Attributes
    ----------
    mean_ : ndarray, shape ``(n_features,)`` -- mu, the column means.
    scale_ : ndarray, shape ``(n_features,)`` -- s, the column standard
        deviations (population, ddof=0), with 1 for constant columns so that
        they map to 0 instead of dividing by 0.
    n_features_in_ : int

    Notes
    -----
    A column counts as constant when its standard deviation is 0 or below
    the rounding noise of its mean, 10 eps |mu| (eps the float64 machine
    epsilon), as in scikit-learn's ``StandardScaler``.

    Store the fitted object with the model (``to_dict``/``from_dict``) so
    that predictions see the same transformation.
    """

    def __init__(self) -> None:
        self.mean_: numpy.ndarray | None = None
        self.scale_: numpy.ndarray | None = None
        self.n_features_in_: int | None = None

    def fit(self, X: Any) -> Standardizer:
        X = self._check(X, fitting=True)
        mean = X.mean(axis=0, dtype=numpy.float64)
        std = X.std(axis=0, dtype=numpy.float64)
        constant = (std == 0) | (std <= 10 * numpy.finfo(numpy.float64).eps * numpy.abs(mean))
        self.mean_ = mean
        self.scale_ = numpy.where(constant, 1.0, std)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> numpy.ndarray:
        """(X - mean_) / scale_, in X's floating dtype (float64 for integer input)."""
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("Standardizer: call fit(X_train) before transform")
        X = self._check(X)
        dtype = X.dtype if X.dtype.kind == "f" else numpy.dtype(numpy.float64)
        out = (X - self.mean_) / self.scale_
        return out.astype(dtype, copy=False)

    def fit_transform(self, X: Any) -> numpy.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Z: Any) -> numpy.ndarray:
        """x = z * scale_ + mean_."""
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("Standardizer: call fit(X_train) before inverse_transform")
        Z = self._check(Z)
        dtype = Z.dtype if Z.dtype.kind == "f" else numpy.dtype(numpy.float64)
        return (Z * self.scale_ + self.mean_).astype(dtype, copy=False)

    def _check(self, X: Any, fitting: bool = False) -> numpy.ndarray:
        X = numpy.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"Standardizer: expected a numeric array, got dtype {X.dtype}")
        if X.ndim != 2:
            raise ValueError(f"Standardizer: expected X of shape (n_samples, n_features), got {X.shape}")
        if fitting and X.shape[0] < 1:
            raise ValueError("Standardizer: cannot fit on 0 samples")
        if not fitting and X.shape[1] != self.n_features_in_:
            raise ValueError(f"Standardizer: fitted on {self.n_features_in_} features, got X with {X.shape[1]}")
        if X.dtype.kind == "f" and not numpy.isfinite(X).all():
            raise ValueError("Standardizer: X holds NaN or infinity")
        return X

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description ``{"type": "standardizer", "mean": [...], "scale": [...]}``."""
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("Standardizer: call fit before to_dict")
        return {"type": "standardizer", "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        """Rebuild from :meth:`to_dict`'s output (validated)."""
        if not isinstance(d, dict) or d.get("type", "standardizer") != "standardizer" or "mean" not in d or "scale" not in d:
            raise ValueError("Standardizer.from_dict: expected {'type': 'standardizer', 'mean': [...], 'scale': [...]}, "
                             f"got {d!r:.200}")
        try:
            mean = numpy.asarray(d["mean"], dtype=numpy.float64)
            scale = numpy.asarray(d["scale"], dtype=numpy.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Standardizer.from_dict: mean and scale must be lists of numbers ({exc})") from exc
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(f"Standardizer.from_dict: mean {mean.shape} and scale {scale.shape} must be 1-D of equal length")
        if not (numpy.isfinite(mean).all() and numpy.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("Standardizer.from_dict: mean must be finite and scale finite and > 0")
        obj = cls()
        obj.mean_, obj.scale_, obj.n_features_in_ = mean, scale, len(mean)
        return obj

    def __repr__(self) -> str:
        return f"Standardizer(n_features_in_={self.n_features_in_})"


def iterate_minibatches(X: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True, seed: Any = None,
                        drop_last: bool = False) -> Iterator[Any]:
    """Yield mini-batches ``(X_b, y_b)`` (or ``X_b`` alone when ``y`` is None).

    Parameters
    ----------
    X, y : arrays with the same first axis
    batch_size : int
    shuffle : bool
        Visit the samples in a random order (one permutation per call);
        without shuffling the batches are views (no copy).
    seed : int, numpy.random.Generator or None
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.
    """
    if not isinstance(batch_size, (int, numpy.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = len(X)
    if y is not None and len(y) != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {len(y)}")
    order = make_rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        sl = slice(start, min(start + batch_size, n))
        if order is None:
            xb, yb = X[sl], (y[sl] if y is not None else None)
        else:
            idx = order[sl]
            xb, yb = X[idx], (y[idx] if y is not None else None)
        yield xb if y is None else (xb, yb)
