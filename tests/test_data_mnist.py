"""IDX reading and the MNIST / Fashion-MNIST loader, on tiny files written here."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import deltanet.data.mnist as mnist
from deltanet.data import find_mnist, load_mnist, read_idx

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(a: np.ndarray, code: int | None = None) -> bytes:
    """The IDX encoding of ``a``, written independently of the reader: struct header + big-endian data."""
    code = CODES[a.dtype.type] if code is None else code
    header = struct.pack(">BBBB", 0, 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def tiny_mnist(tmp_path):
    """Four tiny MNIST-like files (6 train, 4 test images of 3x5) and the arrays they hold."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 3, 5), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([0, 1, 2, 9, 5, 3], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 3, 5), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 7, 0, 1], dtype=np.uint8),
    }
    for i, (stem, a) in enumerate(arrays.items()):
        gz = i % 2 == 0  # mixed: some gzipped, some not
        write(tmp_path / (stem + (".gz" if gz else "")), idx_bytes(a), gz)
    return tmp_path, arrays


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, shape, gz):
    a = (np.arange(np.prod(shape)) - 3).reshape(shape).astype(dtype)
    p = write(tmp_path / "a.idx", idx_bytes(a), gz)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # a writable copy


def test_read_idx_big_endian_values(tmp_path):
    # 0x0102 stored big-endian must read as 258 whatever the machine's byte order
    p = write(tmp_path / "x.idx", bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 1, 2]), False)
    assert read_idx(p).tolist() == [258]


@pytest.mark.parametrize("data,match", [
    (b"", "shorter than the 4-byte magic"),
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "magic number starts with 0100"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "unknown IDX element type code 0x07"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
    (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "truncated IDX header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2]), "truncated IDX file.*need 4 bytes of data, found 2"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "1 unexpected trailing bytes"),
    (bytes([0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0]), "truncated IDX file.*need 8 bytes"),
])
def test_read_idx_rejects_malformed(tmp_path, data, match):
    p = write(tmp_path / "bad.idx", data, False)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(p)
    assert str(p) in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    full = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    p = tmp_path / "cut.idx.gz"
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx(p)


def test_load_mnist_tiny(tiny_mnist):
    root, arrays = tiny_mnist
    X_tr, y_tr, X_te, y_te = load_mnist(root, verify=False)
    assert X_tr.shape == (6, 15) and X_te.shape == (4, 15)
    assert X_tr.dtype == np.float32 and y_tr.dtype == np.int64
    np.testing.assert_allclose(X_tr, arrays["train-images-idx3-ubyte"].reshape(6, -1) / 255.0, rtol=1e-7)
    np.testing.assert_array_equal(y_tr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(y_te, arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= X_tr.min() and X_tr.max() <= 1.0


def test_load_mnist_raw_images(tiny_mnist):
    root, arrays = tiny_mnist
    X_tr, _, X_te, _ = load_mnist(root, flatten=False, normalize=False, verify=False)
    assert X_tr.dtype == np.uint8 and X_tr.shape == (6, 3, 5)
    np.testing.assert_array_equal(X_te, arrays["t10k-images-idx3-ubyte"])


def test_load_mnist_from_environment(tiny_mnist, monkeypatch, tmp_path_factory):
    root, _ = tiny_mnist
    monkeypatch.setenv("DELTANET_MNIST_DIR", str(root))
    assert find_mnist("mnist") == root
    assert len(load_mnist(verify=False)[1]) == 6
    # DELTANET_DATA/<name> is searched as well
    monkeypatch.delenv("DELTANET_MNIST_DIR")
    home = tmp_path_factory.mktemp("home")
    (home / "fashion-mnist").symlink_to(root, target_is_directory=True)
    monkeypatch.setenv("DELTANET_DATA", str(home))
    assert find_mnist("fashion") == home / "fashion-mnist"
    assert len(load_mnist(kind="fashion", verify=False)[3]) == 4


def test_missing_file_message_names_file_directory_and_remedy(tiny_mnist, monkeypatch):
    root, _ = tiny_mnist
    os.remove(root / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root, verify=False)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz not found" in msg and str(root) in msg
    assert "DELTANET_MNIST_DIR" in msg and "download=True" in msg


def test_checksum_mismatch_is_reported(tiny_mnist):
    root, _ = tiny_mnist
    with pytest.raises(ValueError, match=r"SHA-256 .* does not match the published") as info:
        load_mnist(root)  # verify=True: the tiny .gz files are not the published ones
    assert "train-images-idx3-ubyte.gz" in str(info.value) or "t10k-images-idx3-ubyte.gz" in str(info.value)


def test_checksum_match_passes(tiny_mnist, monkeypatch):
    root, _ = tiny_mnist
    sums = {f"{s}.gz": hashlib.sha256((root / f"{s}.gz").read_bytes()).hexdigest()
            for s in STEMS if (root / f"{s}.gz").exists()}
    src = mnist.SOURCES["mnist"]
    monkeypatch.setitem(mnist.SOURCES, "mnist", mnist.IdxSource(**{**src.__dict__, "sha256": {**src.sha256, **sums}}))
    assert len(load_mnist(root)[0]) == 6


@pytest.mark.parametrize("break_it,match", [
    (lambda root: write(root / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2], np.uint8)), False),
     "holds 4 images but .* holds 2 labels"),
    (lambda root: write(root / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3, 10], np.uint8)), False),
     "label 10 out of range"),
    (lambda root: write(root / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros((4, 1), np.uint8)), False),
     "expected uint8 labels"),
    (lambda root: write(root / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((4, 15), np.uint8)), True),
     "expected uint8 images"),
    (lambda root: write(root / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((4, 5, 3), np.uint8)), True),
     "differ in shape"),
])
def test_structure_errors(tiny_mnist, break_it, match):
    root, _ = tiny_mnist
    break_it(root)
    with pytest.raises(ValueError, match=match):
        load_mnist(root, verify=False)


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be 'mnist' or 'fashion'"):
        load_mnist("/nonexistent", kind="cifar")


def test_download_is_atomic_and_verified(tmp_path, monkeypatch, tiny_mnist):
    """The download path, with urlopen replaced by in-memory bytes (no network)."""
    root, _ = tiny_mnist
    payload = {f"{s}.gz": gzip.compress(idx_bytes(read_idx(next(root.glob(s + "*"))))) for s in STEMS}
    src = mnist.SOURCES["mnist"]
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in payload.items()}
    fake = mnist.IdxSource(**{**src.__dict__, "sha256": sums, "mirrors": ("http://bad.invalid/", "http://good.invalid/")})
    monkeypatch.setitem(mnist.SOURCES, "mnist", fake)
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        if url.startswith("http://bad.invalid/"):
            return io.BytesIO(b"corrupted" + payload[name])  # a mirror serving the wrong bytes
        return io.BytesIO(payload[name])

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    target = tmp_path / "dl"
    _, y_tr, _, _ = load_mnist(target, download=True)
    assert len(y_tr) == 6 and len(calls) == 8
    assert sorted(p.name for p in target.iterdir()) == sorted(payload)  # no temporary files left
    # a second call finds the files and fetches nothing
    load_mnist(target, download=True)
    assert len(calls) == 8


def test_download_failure_leaves_nothing(tmp_path, monkeypatch):
    def urlopen(url, timeout):
        raise OSError("network unreachable")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", urlopen)
    with pytest.raises(OSError, match=r"could not download train-images-idx3-ubyte\.gz.*network unreachable"):
        load_mnist(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


def _real_mnist_dir() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    for d in (os.environ.get("DELTANET_MNIST_DIR"), here.parent / "shared" / "datasets" / "mnist",
              here / "shared" / "datasets" / "mnist"):
        if d and (Path(d) / "train-images-idx3-ubyte.gz").is_file():
            return Path(d)
    return None


@pytest.mark.skipif(_real_mnist_dir() is None, reason="the real MNIST files are not on this machine")
def test_real_mnist_files_verify_and_load():
    X_tr, y_tr, X_te, y_te = load_mnist(_real_mnist_dir(), normalize=False)  # verify=True: the published sums
    assert X_tr.shape == (60000, 784) and X_te.shape == (10000, 784) and X_tr.dtype == np.uint8
    assert np.bincount(y_tr).tolist()[:2] == [5923, 6742]  # published class counts of the training set
    assert np.bincount(y_te).tolist()[:2] == [980, 1135]
    assert X_te.max() == 255 and X_te.min() == 0
