"""The data-set registry, load_dataset, and the bundled digits."""

from __future__ import annotations

import builtins
import gzip
import struct

import numpy as np
import pytest

from deltanet.data import DATASETS, Dataset, list_datasets, load_dataset, load_digits, make_moons

NAMES = ["digits", "mnist", "fashion-mnist", "spiral", "circles", "xor", "moons", "blobs"]


def test_registry_lists_every_name_with_its_source():
    infos = list_datasets()
    assert sorted(i.name for i in infos) == sorted(NAMES)
    for info in infos:
        d = info.to_dict()
        assert d["source"] and d["description"] and d["status"]
        assert d["task"] == "classification"
        assert d["is_2d"] == (info.kind == "synthetic")
    assert "scikit-learn" in DATASETS["digits"].source
    assert "DELTANET_MNIST_DIR" in DATASETS["mnist"].source
    assert DATASETS["spiral"].status().startswith("ready")


@pytest.mark.parametrize("name", ["spiral", "circles", "xor", "moons", "blobs"])
def test_synthetic_datasets(name):
    ds = load_dataset(name, n_samples=60, seed=1)
    assert isinstance(ds, Dataset) and ds.is_2d and ds.task == "classification"
    assert ds.X.shape == (60, 2) and ds.feature_names == ["x1", "x2"]
    assert ds.n_classes == int(ds.y.max()) + 1 and ds.class_names == [str(k) for k in range(ds.n_classes)]
    assert ds.X_test is None and name in ds.source


def test_load_dataset_passes_options_through():
    ds = load_dataset("moons", n_samples=40, noise=0.0, seed=2)
    X, y = make_moons(40, noise=0.0, seed=2)
    np.testing.assert_array_equal(ds.X, X)
    np.testing.assert_array_equal(ds.y, y)
    assert load_dataset("spiral", n_classes=5, n_samples=50).n_classes == 5


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match=r"unknown data set 'iris'; known: .*spiral.*csv:PATH"):
        load_dataset("iris")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['colour'\] for data set 'spiral'; valid options: .*noise"):
        load_dataset("spiral", colour="red")
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset("csv:whatever.csv", n_samples=3)


def test_csv_and_npz_by_name(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b,y\n1,2,cat\n3,4,dog\n5,6,cat\n")
    for name in (str(p), f"csv:{p}"):
        ds = load_dataset(name, target="y")
        assert ds.task == "classification" and ds.class_names == ["cat", "dog"] and ds.is_2d
        np.testing.assert_array_equal(ds.y, [0, 1, 0])
    q = tmp_path / "r.npz"
    np.savez(q, X=np.ones((4, 3)), y=np.array([0.5, 1.5, 2.5, 3.5]))
    for name in (str(q), f"npz:{q}"):
        ds = load_dataset(name)
        assert ds.task == "regression" and ds.class_names is None and not ds.is_2d and ds.n_features == 3


def test_mnist_by_name(tmp_path, monkeypatch, tmp_path_factory):
    def idx(a):
        return struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()

    for split, n in (("train", 5), ("t10k", 3)):
        (tmp_path / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(np.full((n, 4, 4), 255, np.uint8))))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(idx(np.arange(n, dtype=np.uint8)))
    ds = load_dataset("fashion", path=tmp_path, verify=False)
    assert ds.name == "fashion-mnist" and ds.class_names[0] == "T-shirt/top"
    assert ds.X.shape == (5, 16) and ds.X_test.shape == (3, 16) and ds.y_test.tolist() == [0, 1, 2]
    assert ds.feature_names[-1] == "pixel_3_3" and float(ds.X.max()) == 1.0
    empty = tmp_path_factory.mktemp("empty")
    monkeypatch.setenv("DELTANET_DATA", str(empty))
    monkeypatch.setenv("DELTANET_FASHION_MNIST_DIR", str(tmp_path))
    assert DATASETS["fashion-mnist"].status() == f"ready (files in {tmp_path})"
    monkeypatch.delenv("DELTANET_FASHION_MNIST_DIR")
    assert DATASETS["fashion-mnist"].status().startswith("files not found: pass path=DIR, set DELTANET_FASHION_MNIST_DIR")


def test_digits():
    pytest.importorskip("sklearn")
    X, y = load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).sum() == 1797 and len(np.unique(y)) == 10
    raw, _ = load_digits(normalize=False)
    np.testing.assert_array_equal(raw / 16.0, X)
    ds = load_dataset("digits")
    assert ds.n_features == 64 and ds.n_classes == 10 and ds.feature_names[9] == "pixel_1_1"


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("deltanet.data.bundled._bundled_file", lambda name: None)   # scikit-learn's files absent too
    with pytest.raises(ImportError, match=r"pip install deltanet\[sklearn\]"):
        load_digits()


def test_dataset_validates():
    with pytest.raises(ValueError, match="task must be"):
        Dataset("x", np.zeros((2, 2)), np.zeros(2), ["a", "b"], None, "clustering")
    with pytest.raises(ValueError, match="X has 2 samples but y has 3"):
        Dataset("x", np.zeros((2, 2)), np.zeros(3), ["a", "b"], None, "regression")


def test_digits_are_read_from_scikit_learns_file_without_importing_it_and_equal_its_loader():
    import subprocess
    import sys

    code = ("import sys; from deltanet.data.bundled import load_digits; X, y = load_digits(normalize=False); "
            "print(X.shape, y.shape, int(X.sum()), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from sklearn.datasets import load_digits as sk_load

    from deltanet.data.bundled import load_digits

    X, y = load_digits(normalize=False)
    ref = sk_load()
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)
    assert out[-1] == "False"                            # scikit-learn itself was not imported
