"""The named data sets: what is available, where it comes from, and one way to load any of them.

>>> from deltanet.data import load_dataset
>>> ds = load_dataset("spiral", n_samples=300, noise=0.2, seed=0)
>>> ds.X.shape, ds.n_classes, ds.is_2d
((300, 2), 3, True)

Names: ``"spiral"``, ``"circles"``, ``"xor"``, ``"moons"``, ``"blobs"``
(generated), ``"digits"`` (bundled with scikit-learn), ``"mnist"``,
``"fashion-mnist"`` (IDX files in a directory of yours), and files:
``"csv:PATH"``, ``"npz:PATH"``, or any path ending in ``.csv`` / ``.npz``.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy

from . import synthetic
from .bundled import load_digits
from .mnist import find_mnist, get_source, load_mnist
from .tabular import load_csv, load_npz

TASKS = ("classification", "regression")


@dataclass
class Dataset:
    """A loaded data set.

    Attributes
    ----------
    name : str
    X : ndarray, shape ``(n_samples, n_features)`` -- the training data (all
        of it, when the source has no official test split).
    y : ndarray, shape ``(n_samples,)`` -- int64 class indices, or float64 targets.
    feature_names : list of str
    class_names : list of str or None -- None for regression.
    task : ``"classification"`` or ``"regression"``
    is_2d : bool -- two features that can be drawn in the plane (decision-boundary plots).
    X_test, y_test : ndarray or None -- the source's official test split (MNIST).
    source : str -- where the data came from, in words.
    """

    name: str
    X: numpy.ndarray
    y: numpy.ndarray
    feature_names: list[str]
    class_names: list[str] | None
    task: str
    is_2d: bool = False
    X_test: numpy.ndarray | None = None
    y_test: numpy.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(self.X) != len(self.y):
            raise ValueError(f"X has {len(self.X)} samples but y has {len(self.y)}")

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(numpy.prod(self.X.shape[1:]))

    @property
    def n_classes(self) -> int | None:
        return len(self.class_names) if self.class_names is not None else None

    def __repr__(self) -> str:
        test = f", n_test={len(self.X_test)}" if self.X_test is not None else ""
        classes = f", n_classes={self.n_classes}" if self.class_names is not None else ""
        return (f"Dataset(name={self.name!r}, task={self.task!r}, n_samples={self.n_samples}, "
                f"n_features={self.n_features}{classes}{test})")


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`list_datasets` says about one named data set."""

    name: str
    description: str
    source: str                    # where it comes from
    kind: str                      # "synthetic", "bundled" or "files"
    task: str
    n_samples: str                 # in words ("60000 + 10000 test", "n_samples (default 300)")
    n_features: int
    n_classes: int | None
    is_2d: bool
    options: tuple[str, ...]       # keyword options accepted by load_dataset
    loader: Callable[..., Dataset] = field(repr=False, compare=False)

    def status(self) -> str:
        """Whether it can be loaded on this machine now, and if not how to make it so."""
        if self.kind == "synthetic":
            return "ready (generated)"
        if self.name == "digits":
            if importlib.util.find_spec("sklearn") is None:
                return "needs scikit-learn: pip install deltanet[sklearn]"
            return "ready (bundled with scikit-learn)"
        kind = "mnist" if self.name == "mnist" else "fashion"
        where = find_mnist(kind)
        if where is not None:
            return f"ready (files in {where})"
        src = get_source(kind)
        return f"files not found: pass path=DIR, set {src.env} or DELTANET_DATA, or use download=True"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source, "kind": self.kind,
                "task": self.task, "n_samples": self.n_samples, "n_features": self.n_features,
                "n_classes": self.n_classes, "is_2d": self.is_2d, "options": list(self.options),
                "status": self.status()}


def _synthetic_loader(name: str) -> Callable[..., Dataset]:
    make = synthetic.GENERATORS[name]

    def load(**options: Any) -> Dataset:
        X, y = make(**options)
        n_classes = int(y.max()) + 1
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
        return Dataset(name, X, y, ["x1", "x2"], [str(k) for k in range(n_classes)], "classification", is_2d=True,
                       source=f"generated by deltanet.data.{make.__name__}({shown})")

    load.__signature__ = inspect.signature(make)  # type: ignore[attr-defined]
    return load


def _pixel_names(rows: int, cols: int) -> list[str]:
    return [f"pixel_{r}_{c}" for r in range(rows) for c in range(cols)]


def _load_digits(normalize: bool = True) -> Dataset:
    X, y = load_digits(normalize=normalize)
    return Dataset("digits", X, y, _pixel_names(8, 8), [str(d) for d in range(10)], "classification",
                   source="UCI optical recognition of handwritten digits, bundled with scikit-learn")


def _idx_loader(kind: str) -> Callable[..., Dataset]:
    src = get_source(kind)

    def load(path: str | os.PathLike[str] | None = None, flatten: bool = True, normalize: bool = True,
             download: bool = False, verify: bool = True) -> Dataset:
        X, y, X_test, y_test = load_mnist(path, kind=kind, flatten=flatten, normalize=normalize, download=download,
                                          verify=verify)
        side = math.isqrt(X.shape[1]) if flatten else 0
        rows, cols = (side, X.shape[1] // max(side, 1)) if flatten else X.shape[1:3]
        return Dataset(src.name, X, y, _pixel_names(rows, cols), list(src.class_names), "classification",
                       X_test=X_test, y_test=y_test,
                       source=f"{src.title}, {src.reference}")

    return load


def _file_dataset(kind: str, path: str, **options: Any) -> Dataset:
    table = (load_csv if kind == "csv" else load_npz)(path, **options)
    task = "regression" if table.class_names is None else "classification"
    return Dataset(os.path.basename(path), table.X, table.y, table.feature_names, table.class_names, task,
                   is_2d=table.X.shape[1] == 2, source=f"{kind.upper()} file {path}")


_SYNTHETIC_TEXT = {
    "spiral": ("interleaved spiral arms, one per class", "3 (n_classes)"),
    "circles": ("two concentric circles", "2"),
    "xor": ("the XOR quadrants: label 1 where the coordinates differ in sign", "2"),
    "moons": ("two interleaving half circles", "2"),
    "blobs": ("isotropic Gaussian clusters, one per class", "3 (n_classes)"),
}


def _options(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _build_registry() -> dict[str, DatasetInfo]:
    reg: dict[str, DatasetInfo] = {}
    for name, (text, classes) in _SYNTHETIC_TEXT.items():
        loader = _synthetic_loader(name)
        n_classes = int(classes.split()[0])
        reg[name] = DatasetInfo(name, text, f"generated by deltanet.data.{synthetic.GENERATORS[name].__name__}",
                                "synthetic", "classification", "n_samples (default 300)", 2, n_classes, True,
                                _options(loader), loader)
    reg["digits"] = DatasetInfo("digits", "8x8 images of handwritten digits (UCI optical digits)",
                                "bundled with scikit-learn (pip install deltanet[sklearn])", "bundled",
                                "classification", "1797", 64, 10, False, _options(_load_digits), _load_digits)
    for key, kind in (("mnist", "mnist"), ("fashion-mnist", "fashion")):
        src = get_source(kind)
        loader = _idx_loader(kind)
        reg[key] = DatasetInfo(key, src.title + ", 28x28 grayscale images",
                               f"IDX files in a directory of yours ({src.env}, DELTANET_DATA or path=DIR); {src.reference}",
                               "files", "classification", "60000 + 10000 test", 784, 10, False, _options(loader), loader)
    return reg


#: Name -> :class:`DatasetInfo` of every named data set.
DATASETS: dict[str, DatasetInfo] = _build_registry()

_ALIASES = {"fashion": "fashion-mnist", "fashion_mnist": "fashion-mnist", "spirals": "spiral"}


def list_datasets() -> list[DatasetInfo]:
    """The named data sets, in a fixed order (see :class:`DatasetInfo`; ``info.status()`` says if one is ready)."""
    return list(DATASETS.values())


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a data set by name, or a CSV/NPZ file by path.

    Parameters
    ----------
    name : str
        A name from :data:`DATASETS` (``"spiral"``, ``"digits"``, ``"mnist"``,
        ...), ``"csv:PATH"``, ``"npz:PATH"``, or a path ending in ``.csv`` /
        ``.npz``.
    **options
        Passed to the loader: for generated sets ``n_samples``, ``noise``,
        ``seed``, ...; for MNIST ``path``, ``download``, ``verify``,
        ``flatten``, ``normalize``; for CSV ``target``, ``delimiter``,
        ``task``; for NPZ ``x_key``, ``y_key``, ``task``.

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones) or option.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"data set name must be a non-empty string, got {name!r}")
    lowered = name.lower()
    for prefix, reader in (("csv", load_csv), ("npz", load_npz)):
        if lowered.startswith(prefix + ":"):
            return _file_dataset(prefix, name[len(prefix) + 1:], **_checked(prefix, reader, options))
        if lowered.endswith("." + prefix):
            return _file_dataset(prefix, name, **_checked(prefix, reader, options))
    key = _ALIASES.get(lowered, lowered)
    info = DATASETS.get(key)
    if info is None:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}; or a file: csv:PATH, npz:PATH, "
                         "or a path ending in .csv or .npz")
    return info.loader(**_checked(key, info.loader, options))


def _checked(name: str, loader: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    valid = [o for o in _options(loader) if o != "path" or name not in ("csv", "npz")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for data set {name!r}; valid options: {', '.join(valid)}")
    return options
