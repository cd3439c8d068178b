"""Data sets that ship inside an installed package (no download)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy


def _import_sklearn_datasets() -> Any:
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise ImportError("the digits data set ships with scikit-learn, which is not installed: "
                          "pip install deltanet[sklearn]") from exc
    return datasets


def _bundled_file(name: str) -> Path | None:
    """The path of scikit-learn's bundled data file ``name`` (``sklearn/datasets/data/``), found without importing
    scikit-learn (its import takes most of a second; the file is read in milliseconds), or None."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / name
        if path.is_file():
            return path
    return None


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
    path = _bundled_file("digits.csv.gz")
    if path is not None:                  # 64 pixel counts and the label per row, as scikit-learn stores them
        with gzip.open(path, "rt") as f:
            table = numpy.loadtxt(f, delimiter=",")
        data, target = table[:, :-1], table[:, -1]
    else:
        bunch = _import_sklearn_datasets().load_digits()
        data, target = bunch.data, bunch.target
    X = numpy.asarray(data, dtype=numpy.float64)
    if normalize:
        X = X / 16.0
    return X, numpy.asarray(target, dtype=numpy.int64)
