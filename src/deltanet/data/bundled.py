"""Data sets that ship inside an installed package (no download)."""

from __future__ import annotations

from typing import Any

import numpy


def _import_sklearn_datasets() -> Any:
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise ImportError("the digits data set ships with scikit-learn, which is not installed: "
                          "pip install deltanet[sklearn]") from exc
    return datasets


def load_digits(normalize: bool = True) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The UCI optical digits bundled with scikit-learn: 1797 images of 8x8 pixels, 10 classes.

    Parameters
    ----------
    normalize : bool
        Pixel values divided by 16 (their maximum), into [0, 1]; else the raw
        counts 0-16.

    Returns
    -------
    X : ndarray, shape ``(1797, 64)``, float64
    y : ndarray, shape ``(1797,)``, int64 labels 0-9

    Raises
    ------
    ImportError
        If scikit-learn is missing (``pip install deltanet[sklearn]``).
    """
    bunch = _import_sklearn_datasets().load_digits()
    X = numpy.asarray(bunch.data, dtype=numpy.float64)
    if normalize:
        X = X / 16.0
    return X, numpy.asarray(bunch.target, dtype=numpy.int64)
