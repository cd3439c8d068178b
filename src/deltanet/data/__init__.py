"""Data: generated 2-D sets, bundled and downloadable image sets, CSV/NPZ/IDX readers, splits, scaling, batching.

>>> from deltanet.data import load_dataset, train_val_test_split, Standardizer
>>> ds = load_dataset("moons", n_samples=200, noise=0.1, seed=0)
>>> parts = train_val_test_split(ds.X, ds.y, val_fraction=0.1, test_fraction=0.2, seed=0)
>>> scaler = Standardizer().fit(parts.X_train)
>>> X_train = scaler.transform(parts.X_train)

Environment variables: ``DELTANET_DATA`` (the data home; MNIST files are
looked for in ``$DELTANET_DATA/mnist`` and ``$DELTANET_DATA/fashion-mnist``),
``DELTANET_MNIST_DIR`` and ``DELTANET_FASHION_MNIST_DIR`` (the directory of
the four IDX files of each set). See :mod:`deltanet.data.mnist`.
"""

from __future__ import annotations

from .bundled import load_digits
from .idx import read_idx
from .mnist import SOURCES, data_home, download_idx, find_mnist, load_mnist
from .registry import DATASETS, Dataset, DatasetInfo, list_datasets, load_dataset
from .split import Split, Standardizer, iterate_minibatches, train_val_test_split
from .synthetic import make_blobs, make_circles, make_moons, make_spiral, make_xor
from .tabular import Table, encode_labels, load_csv, load_npz

__all__ = [
    "DATASETS", "SOURCES", "Dataset", "DatasetInfo", "Split", "Standardizer", "Table", "data_home", "download_idx",
    "encode_labels", "find_mnist", "iterate_minibatches", "list_datasets", "load_csv", "load_dataset", "load_digits",
    "load_mnist", "load_npz", "make_blobs", "make_circles", "make_moons", "make_spiral", "make_xor", "read_idx",
    "train_val_test_split",
]
