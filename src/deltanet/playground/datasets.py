"""The playground's data: the 2-D sets, their feature inputs, the train/test split, the plane they live on.

Classification sets come from :mod:`deltanet.data.synthetic` (``circle`` is
:func:`~deltanet.data.make_circles`, ``xor`` :func:`~deltanet.data.make_xor`,
``spiral`` :func:`~deltanet.data.make_spiral`, ``gauss`` :func:`~deltanet.data.make_blobs`
with small clusters); ``plane`` and ``multigauss`` are regression targets drawn here;
``csv`` is a file the user uploaded (two feature columns, read by
:func:`deltanet.data.load_csv`). The split is :func:`deltanet.data.train_val_test_split`
(stratified by class).

The network never sees the raw points: its inputs are the chosen *features*
of them (``x1``, ``x2``, ``x1^2``, ``x2^2``, ``x1x2``, ``sin x1``, ``sin x2``),
computed on the points as they are for the built-in sets and on standardized
points (a :class:`~deltanet.data.Standardizer` fitted on the training part) for
uploaded ones.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy

from ..data import Standardizer, load_csv, make_blobs, make_circles, make_spiral, make_xor, train_val_test_split
from ..io import atomic_write

#: Classification sets (softmax + cross-entropy), regression sets (mean squared error), and the uploaded one.
CLASSIFICATION = ("circle", "xor", "gauss", "spiral")
REGRESSION = ("plane", "multigauss")
DATASETS = (*CLASSIFICATION, *REGRESSION, "csv")

#: Feature name -> its formula on the two coordinates.
FEATURES: dict[str, Any] = {
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1^2": lambda a, b: a * a,
    "x2^2": lambda a, b: b * b,
    "x1x2": lambda a, b: a * b,
    "sin x1": lambda a, b: numpy.sin(a),
    "sin x2": lambda a, b: numpy.sin(b),
}

#: Points per side of the grid on which the output heatmap is computed, and of the per-neuron heatmaps.
OUTPUT_GRID = 60
NEURON_GRID = 24


@dataclass
class Uploaded:
    """An uploaded table: two feature columns, the target, their names."""

    X: numpy.ndarray
    y: numpy.ndarray
    feature_names: list[str]
    class_names: list[str] | None
    name: str = "upload.csv"

    @property
    def task(self) -> str:
        return "regression" if self.class_names is None else "classification"


def read_csv_upload(text: str, name: str = "upload.csv") -> Uploaded:
    """Parse an uploaded CSV file (header line; two numeric feature columns; the last column is the target).

    The file goes through :func:`deltanet.data.load_csv`, the reader of ``deltanet train --data FILE.csv``:
    text labels and integer values are classes, other numbers regression targets.
    """
    with tempfile.TemporaryDirectory(prefix="deltanet-playground-") as tmp:
        path = os.path.join(tmp, "upload.csv")
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            table = load_csv(path)
        except ValueError as exc:     # the reader's message names the temporary path: name the upload instead
            raise ValueError(str(exc).replace(path, name)) from None
    if table.X.shape[1] != 2:
        raise ValueError(f"{name}: the playground needs exactly 2 feature columns and a target column (the last); "
                         f"got features {table.feature_names}")
    if table.class_names is not None and len(table.class_names) < 2:
        raise ValueError(f"{name}: the target has a single class ({table.class_names[0]}); nothing to learn")
    if table.class_names is not None and len(table.class_names) > 10:
        raise ValueError(f"{name}: the target has {len(table.class_names)} classes; the playground shows at most 10")
    return Uploaded(table.X, table.y, list(table.feature_names), table.class_names, name)


def _regression(kind: str, n: int, noise: float, seed: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Targets in about [-1, 1] over points uniform in [-1, 1]^2, plus Gaussian noise of std ``noise``."""
    rng = numpy.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    if kind == "plane":
        t = 0.5 * (X[:, 0] + X[:, 1])
    else:   # multigauss: two bumps of opposite sign
        t = (numpy.exp(-((X[:, 0] - 0.4) ** 2 + (X[:, 1] - 0.4) ** 2) / 0.18)
             - numpy.exp(-((X[:, 0] + 0.4) ** 2 + (X[:, 1] + 0.4) ** 2) / 0.18))
    return X, t + noise * rng.standard_normal(n)


def generate(dataset: str, n_samples: int, noise: float, classes: int, seed: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The points and targets of a built-in set (classification: int labels; regression: float targets)."""
    if dataset == "circle":
        return make_circles(n_samples, noise=noise, factor=0.5, seed=seed)
    if dataset == "xor":
        return make_xor(n_samples, noise=noise, seed=seed)
    if dataset == "spiral":
        return make_spiral(n_samples, n_classes=classes, noise=noise * 2.0, seed=seed, turns=1.0)
    if dataset == "gauss":
        angle = 2 * numpy.pi * numpy.arange(classes) / classes + numpy.pi / 4
        centers = 0.55 * numpy.stack([numpy.cos(angle), numpy.sin(angle)], axis=1)
        return make_blobs(n_samples, centers=centers, std=0.12 + noise, seed=seed)
    if dataset in REGRESSION:
        return _regression(dataset, n_samples, noise, seed)
    raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")


def features(points: numpy.ndarray, names: list[str]) -> numpy.ndarray:
    """The network's input columns: each named feature of the points ``(n, 2)``."""
    a, b = points[:, 0], points[:, 1]
    return numpy.stack([FEATURES[n](a, b) for n in names], axis=1).astype(numpy.float64)


@dataclass
class PlaygroundData:
    """One split data set and the plane it is drawn on.

    ``X_train`` / ``X_test`` are the raw 2-D points, ``y_*`` the targets;
    ``inputs(points)`` gives the network's input columns for any points of the
    plane; ``domain`` is ``(lo, hi)`` of the square shown.
    """

    name: str
    task: str
    X_train: numpy.ndarray
    y_train: numpy.ndarray
    X_test: numpy.ndarray
    y_test: numpy.ndarray
    feature_names: list[str]
    class_names: list[str] | None
    domain: tuple[float, float]
    scaler: Standardizer | None = None
    axis_names: list[str] = field(default_factory=lambda: ["x1", "x2"])

    @property
    def n_classes(self) -> int:
        return len(self.class_names) if self.class_names is not None else 0

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.task == "classification" else 1

    def inputs(self, points: numpy.ndarray) -> numpy.ndarray:
        """The feature columns of ``points`` (raw coordinates of the plane)."""
        if self.scaler is not None:
            points = self.scaler.transform(points)
        return features(points, self.feature_names)

    def train_inputs(self) -> numpy.ndarray:
        return self.inputs(self.X_train)

    def test_inputs(self) -> numpy.ndarray:
        return self.inputs(self.X_test)

    def grid(self, size: int) -> numpy.ndarray:
        """``size x size`` points covering the domain, row by row from the top (x2 high) to the bottom."""
        lo, hi = self.domain
        axis = numpy.linspace(lo, hi, size)
        g1, g2 = numpy.meshgrid(axis, axis[::-1])
        return numpy.stack([g1.ravel(), g2.ravel()], axis=1)

    def feature_maps(self, size: int = NEURON_GRID) -> list[numpy.ndarray]:
        """Each input feature over the plane (the heatmaps of the input column)."""
        cols = self.inputs(self.grid(size))
        return [cols[:, j] for j in range(cols.shape[1])]


def _domain(X: numpy.ndarray, builtin: bool) -> tuple[float, float]:
    if builtin:
        return (-1.6, 1.6)
    lo, hi = float(X.min()), float(X.max())
    pad = 0.08 * (hi - lo if hi > lo else 1.0)
    return (lo - pad, hi + pad)


def make_data(config: dict[str, Any], upload: Uploaded | None = None) -> PlaygroundData:
    """Generate (or take the upload), split by ``test_ratio`` and describe the data of ``config``."""
    name = config["dataset"]
    scaler = None
    axis_names = ["x1", "x2"]
    if name == "csv":
        if upload is None:
            raise ValueError("dataset 'csv' needs an uploaded file; upload one first")
        X, y, class_names, task = upload.X, upload.y, upload.class_names, upload.task
        axis_names = list(upload.feature_names)
    else:
        X, y = generate(name, int(config["n_samples"]), float(config["noise"]), int(config["classes"]), int(config["seed"]))
        task = "regression" if name in REGRESSION else "classification"
        class_names = [str(k) for k in range(int(y.max()) + 1)] if task == "classification" else None
    ratio = float(config["test_ratio"])
    split = train_val_test_split(X, y, val_fraction=0.0, test_fraction=ratio, seed=int(config["seed"]),
                                 stratify=task == "classification")
    if name == "csv":
        scaler = Standardizer().fit(split.X_train)
    return PlaygroundData(name, task, split.X_train, split.y_train, split.X_test, split.y_test,
                          list(config["features"]), class_names, _domain(X, name != "csv"), scaler, axis_names)


__all__ = ["CLASSIFICATION", "DATASETS", "FEATURES", "NEURON_GRID", "OUTPUT_GRID", "REGRESSION", "PlaygroundData",
           "Uploaded", "features", "generate", "make_data", "read_csv_upload"]
