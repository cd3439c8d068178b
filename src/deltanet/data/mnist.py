"""MNIST and Fashion-MNIST from the standard IDX files in a directory of the user's.

Where the files are looked for, in order:

1. the ``path`` argument (the directory itself, or a sub-directory of it
   named ``mnist`` / ``fashion-mnist``);
2. the environment variable ``DELTANET_MNIST_DIR`` (for ``kind="mnist"``) or
   ``DELTANET_FASHION_MNIST_DIR`` (for ``kind="fashion"``): the directory
   holding the four files;
3. ``$DELTANET_DATA/mnist`` or ``$DELTANET_DATA/fashion-mnist`` (and
   ``$DELTANET_DATA`` itself);
4. ``~/.cache/deltanet/<name>`` (``$XDG_CACHE_HOME/deltanet/<name>``), which is
   also where ``download=True`` puts the files when no ``path`` is given.

Each of the four files may be gzipped (``train-images-idx3-ubyte.gz``, as
published) or not (``train-images-idx3-ubyte``).

Integrity: the SHA-256 of every gzipped file is checked against the published
sum (MNIST: the canonical files; Fashion-MNIST: the sums published with the
TensorFlow Datasets catalogue for the files of Zalando Research, whose own
README publishes MD5 sums, also listed here). Uncompressed files cannot be
checked against those sums (they are sums of the ``.gz`` files); they are
checked by structure only (magic number, shapes, label range).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy

from .idx import read_idx

_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxSource:
    """Where a set of four IDX files comes from and how to check them."""

    name: str                       # directory name under the data home ("mnist", "fashion-mnist")
    title: str
    env: str                        # environment variable naming the directory
    sha256: dict[str, str]          # file name (with .gz) -> published SHA-256
    sizes: dict[str, int]           # file name (with .gz) -> size in bytes
    mirrors: tuple[str, ...]        # base URLs for download=True (the sums protect against a bad mirror)
    class_names: tuple[str, ...]
    reference: str


SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        name="mnist",
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        env="DELTANET_MNIST_DIR",
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        sizes={"train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881,
               "t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542},
        mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        class_names=tuple(str(d) for d in range(10)),
        reference="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion": IdxSource(
        name="fashion-mnist",
        title="Fashion-MNIST article images (Xiao, Rasul, Vollgraf 2017)",
        env="DELTANET_FASHION_MNIST_DIR",
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        sizes={"train-images-idx3-ubyte.gz": 26421880, "train-labels-idx1-ubyte.gz": 29515,
               "t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148},
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"),
        reference="https://github.com/zalandoresearch/fashion-mnist",
    ),
}

#: The MD5 sums in Zalando Research's README, for users who check by hand.
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_KIND_ALIASES = {"mnist": "mnist", "fashion": "fashion", "fashion-mnist": "fashion", "fashion_mnist": "fashion"}


def get_source(kind: str) -> IdxSource:
    """The :class:`IdxSource` of ``kind`` (``"mnist"`` or ``"fashion"``/``"fashion-mnist"``)."""
    key = _KIND_ALIASES.get(str(kind).lower())
    if key is None:
        raise ValueError(f"kind must be 'mnist' or 'fashion', got {kind!r}")
    return SOURCES[key]


def data_home() -> Path:
    """The default data directory: ``$DELTANET_DATA``, else ``$XDG_CACHE_HOME/deltanet`` or ``~/.cache/deltanet``."""
    env = os.environ.get("DELTANET_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "deltanet"


def _candidates(source: IdxSource, path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        base = Path(path).expanduser()
        return [base, base / source.name]
    out = []
    env = os.environ.get(source.env)
    if env:
        out.append(Path(env).expanduser())
    home = data_home()
    out += [home / source.name, home]
    return out


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        p = directory / name
        if p.is_file():
            return p
    return None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, source: IdxSource) -> None:
    expected = source.sha256.get(path.name)
    if expected is None:  # an uncompressed file: no published sum to compare with
        return
    got = sha256_file(path)
    if got != expected:
        raise ValueError(f"{path}: SHA-256 {got} does not match the published {source.title} sum {expected}; "
                         f"the file is corrupt or not the published one: delete it and download it again "
                         f"(or pass verify=False to skip the check)")


def _how_to_get(source: IdxSource, where: Path) -> str:
    files = ", ".join(f + ".gz" for f in _FILES)
    return (f"put the four files ({files}) from {source.reference} in {where}, or pass path=DIR, or set "
            f"{source.env}=DIR or DELTANET_DATA=DIR, or pass download=True on a machine with a network")


def download_idx(kind: str = "mnist", path: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> Path:
    """Download the four gzipped IDX files of ``kind`` into ``path`` (default: the data home).

    Each file is fetched from the first mirror that serves it, streamed into a
    temporary file in the target directory, checked against its published
    SHA-256 and only then renamed into place (atomically), so an interrupted
    or corrupted download never leaves a file that looks complete. Files
    already present with the right sum are kept.

    Returns
    -------
    Path
        The directory holding the files.
    """
    from ..io import atomic_write

    source = get_source(kind)
    directory = Path(path).expanduser() if path is not None else data_home() / source.name
    directory.mkdir(parents=True, exist_ok=True)
    for stem in _FILES:
        name = stem + ".gz"
        target = directory / name
        if target.is_file() and sha256_file(target) == source.sha256[name]:
            continue
        errors = []
        for base in source.mirrors:
            url = base + name
            try:
                with atomic_write(target) as f:
                    h = hashlib.sha256()
                    with urllib.request.urlopen(url, timeout=timeout) as response:  # fixed mirror URLs only
                        while block := response.read(1 << 20):
                            h.update(block)
                            f.write(block)
                    if h.hexdigest() != source.sha256[name]:
                        raise ValueError(f"SHA-256 {h.hexdigest()} != published {source.sha256[name]}")
                break
            except (OSError, ValueError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            raise OSError(f"could not download {name} for {source.title}: " + "; ".join(errors))
    return directory


def load_mnist(path: str | os.PathLike[str] | None = None, kind: str = "mnist", flatten: bool = True,
               normalize: bool = True, *, download: bool = False,
               verify: bool = True) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
    """Load MNIST or Fashion-MNIST: ``(X_train, y_train, X_test, y_test)``.

    Parameters
    ----------
    path : str or path-like, optional
        Directory holding the four IDX files (see the module docstring for
        the environment variables used when it is not given).
    kind : {"mnist", "fashion"}
        Which data set (``"fashion-mnist"`` is accepted too).
    flatten : bool
        Images as rows of 784 values (``(n, 784)``) instead of ``(n, 28, 28)``.
    normalize : bool
        float32 pixel values in [0, 1] (divided by 255); else the raw uint8.
    download : bool
        Fetch the files that are missing (needs a network; see :func:`download_idx`).
    verify : bool
        Check gzipped files against their published SHA-256 sums.

    Returns
    -------
    X_train : ndarray, (60000, 784) or (60000, 28, 28)
    y_train : ndarray, (60000,), int64 labels 0-9
    X_test : ndarray, (10000, 784) or (10000, 28, 28)
    y_test : ndarray, (10000,), int64

    Raises
    ------
    FileNotFoundError
        A file is missing: the message names it, the directories searched and
        how to get the files.
    ValueError
        A checksum mismatch, a malformed or truncated file, or train/test
        files whose shapes disagree.
    """
    source = get_source(kind)
    if download and find_mnist(kind, path) is None:
        download_idx(kind, path if path is not None else os.environ.get(source.env) or None)
    candidates = _candidates(source, path)
    found: dict[str, Path] = {}
    missing_by_dir: list[tuple[int, int, Path, list[str]]] = []
    for i, directory in enumerate(candidates):
        files = {stem: _find(directory, stem) for stem in _FILES}
        missing = [stem + ".gz" for stem, p in files.items() if p is None]
        if not missing:
            found = {stem: p for stem, p in files.items() if p is not None}
            break
        missing_by_dir.append((len(missing), i, directory, missing))
    if not found:
        _, _, directory, missing = min(missing_by_dir)  # report the directory that came closest
        searched = ", ".join(str(c) for c in candidates)
        raise FileNotFoundError(f"{source.title}: {missing[0]} not found in {directory} "
                                f"(missing: {', '.join(missing)}; searched: {searched}); {_how_to_get(source, directory)}")
    if verify:
        for p in found.values():
            _verify(p, source)
    arrays = {stem: read_idx(p) for stem, p in found.items()}
    for split in ("train", "t10k"):
        _check_split(arrays, found, split, len(source.class_names))
    train_shape, test_shape = arrays["train-images-idx3-ubyte"].shape[1:], arrays["t10k-images-idx3-ubyte"].shape[1:]
    if train_shape != test_shape:
        raise ValueError(f"train images {train_shape} and test images {test_shape} differ in shape")
    out = []
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        X: Any = images.reshape(len(images), -1) if flatten else images
        if normalize:
            X = X.astype(numpy.float32)
            numpy.divide(X, numpy.float32(255.0), out=X)
        out += [X, labels.astype(numpy.int64)]
    return out[0], out[1], out[2], out[3]


def _check_split(arrays: dict[str, numpy.ndarray], found: dict[str, Path], split: str, n_classes: int) -> None:
    images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
    ipath, lpath = found[f"{split}-images-idx3-ubyte"], found[f"{split}-labels-idx1-ubyte"]
    if images.ndim != 3 or images.dtype != numpy.uint8:
        raise ValueError(f"{ipath}: expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != numpy.uint8:
        raise ValueError(f"{lpath}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{ipath} holds {len(images)} images but {lpath} holds {len(labels)} labels")
    if labels.size and labels.max() >= n_classes:
        raise ValueError(f"{lpath}: label {int(labels.max())} out of range 0-{n_classes - 1}")


def find_mnist(kind: str = "mnist", path: str | os.PathLike[str] | None = None) -> Path | None:
    """The directory where :func:`load_mnist` would find all four files, or ``None``."""
    source = get_source(kind)
    for directory in _candidates(source, path):
        if all(_find(directory, stem) is not None for stem in _FILES):
            return directory
    return None
