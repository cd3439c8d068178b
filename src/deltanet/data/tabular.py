"""Tables of numbers: CSV files with a header, and NPZ archives of arrays.

Both readers return a :class:`Table` ``(X, y, feature_names, class_names)``:
``X`` float64 of shape ``(n_samples, n_features)``; for classification ``y``
holds int64 class indices ``0..C-1`` into ``class_names`` (the sorted
distinct labels, as strings); for regression ``y`` is float64 and
``class_names`` is ``None``.
"""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy

from ..io import ARCHIVE_ERRORS, check_npz_members


class Table(NamedTuple):
    """Features, targets and their names, as read from a file."""

    X: numpy.ndarray
    y: numpy.ndarray
    feature_names: list[str]
    class_names: list[str] | None


_TASKS = ("auto", "classification", "regression")


def _check_task(task: str) -> None:
    if task not in _TASKS:
        raise ValueError(f"task must be one of {_TASKS}, got {task!r}")


def encode_labels(values: numpy.ndarray, task: str = "auto", where: str = "target") -> tuple[numpy.ndarray, list[str] | None]:
    """Turn a column of target values into ``(y, class_names)``.

    Strings are class labels. Numbers are class labels when ``task`` is
    ``"classification"``, or when ``task="auto"`` and every value is an
    integer; otherwise they are regression targets (float64, ``class_names``
    ``None``). Class labels are mapped to ``0..C-1`` in sorted order (numbers
    sorted numerically), and ``class_names`` lists them as strings.
    """
    _check_task(task)
    values = numpy.asarray(values)
    numeric: numpy.ndarray | None = None
    if values.dtype.kind in "biuf":
        numeric = values.astype(numpy.float64)
    elif values.dtype.kind in "US":
        try:
            numeric = values.astype(numpy.float64)
        except ValueError:
            numeric = None
    else:
        raise TypeError(f"{where}: expected numbers or strings, got dtype {values.dtype}")
    if numeric is not None and not numpy.isfinite(numeric).all():
        i = int(numpy.flatnonzero(~numpy.isfinite(numeric))[0])
        raise ValueError(f"{where}: value {values[i]!r} at row {i + 1} is not a finite number")
    if numeric is None:
        if task == "regression":
            raise ValueError(f"{where}: task='regression' needs numeric targets, got labels such as {values[0]!r}")
        names, y = numpy.unique(values.astype(str), return_inverse=True)
        return y.astype(numpy.int64), [str(n) for n in names]
    is_integer = bool(numpy.all(numeric == numpy.round(numeric)))
    if task == "regression" or (task == "auto" and not is_integer):
        return numeric, None
    uniq, y = numpy.unique(numeric, return_inverse=True)
    names = [str(int(v)) if v == round(v) else repr(float(v)) for v in uniq]
    return y.astype(numpy.int64), names


def load_csv(path: str | os.PathLike[str], target: str | None = None, *, delimiter: str = ",",
             task: str = "auto") -> Table:
    """Read a CSV file with a header line and one target column.

    Parameters
    ----------
    path : str or path-like
    target : str, optional
        Name of the target column (default: the last column).
    delimiter : str
        Field separator.
    task : {"auto", "classification", "regression"}
        How to read the target (see :func:`encode_labels`): ``"auto"`` makes
        text labels and integer values classes, other numbers regression targets.

    Returns
    -------
    Table
        ``(X, y, feature_names, class_names)``; features are every column but
        the target, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        An empty file or one without data rows, duplicate column names, a
        missing target column (the message lists the columns), a row with the
        wrong number of fields, or a missing or non-numeric feature value
        (the message names the line of the file, 1-based, and the column).

    Notes
    -----
    Blank lines are skipped; fields are stripped of surrounding spaces; a
    UTF-8 byte-order mark is ignored. ``nan``/``inf`` count as missing values.
    """
    path = Path(path)
    _check_task(task)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header: list[str] | None = None
        rows: list[list[str]] = []
        lines: list[int] = []
        try:
            for record in reader:
                if not record or all(not field.strip() for field in record):
                    continue
                if header is None:
                    header = [field.strip() for field in record]
                    header_line = reader.line_num
                    continue
                if len(record) != len(header):
                    raise ValueError(f"{path} line {reader.line_num}: expected {len(header)} fields (as in the header "
                                     f"on line {header_line}), got {len(record)}")
                rows.append(record)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise ValueError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text file ({exc})") from exc
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header line of column names, then one row per sample")
    if not rows:
        raise ValueError(f"{path}: no data rows after the header line")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise ValueError(f"{path}: duplicate column names {dup}")
    if any(not h for h in header):
        raise ValueError(f"{path}: column {header.index('') + 1} of the header has no name")
    if len(header) < 2:
        raise ValueError(f"{path}: need at least one feature column and a target column, got columns {header}")
    if target is None:
        t = len(header) - 1
    elif target in header:
        t = header.index(target)
    else:
        raise ValueError(f"{path}: target column {target!r} not found; columns: {', '.join(header)}")

    cells = numpy.char.strip(numpy.array(rows, dtype=str))
    feature_cols = [j for j in range(len(header)) if j != t]
    raw = cells[:, feature_cols]
    try:
        X = raw.astype(numpy.float64)
        bad = ~numpy.isfinite(X)
    except ValueError:
        X = None
        bad = None
    if X is None or bad.any():
        _raise_first_bad_cell(path, raw, lines, [header[j] for j in feature_cols])
    ycol = cells[:, t]
    empty = numpy.flatnonzero(ycol == "")
    if empty.size:
        raise ValueError(f"{path} line {lines[empty[0]]}, column {header[t]!r}: missing target value")
    try:
        numeric = ycol.astype(numpy.float64)
    except ValueError:
        numeric = None
    if numeric is None and task == "regression":
        i = next(i for i, cell in enumerate(ycol) if _parse(str(cell)) is None)
        raise ValueError(f"{path} line {lines[i]}, column {header[t]!r}: target {str(ycol[i])!r} is not a number "
                         "(task='regression' needs numeric targets)")
    if numeric is not None and not numpy.isfinite(numeric).all():
        i = int(numpy.flatnonzero(~numpy.isfinite(numeric))[0])
        raise ValueError(f"{path} line {lines[i]}, column {header[t]!r}: target {str(ycol[i])!r} is not a finite number")
    y, class_names = encode_labels(ycol, task, where=f"{path} column {header[t]!r}")
    return Table(X, y, [header[j] for j in feature_cols], class_names)


def _parse(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if numpy.isfinite(v) else None


def _raise_first_bad_cell(path: Path, raw: numpy.ndarray, lines: list[int], names: list[str]) -> None:
    # Only on the error path: find the first offending cell, row by row.
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            cell = str(raw[i, j])
            if _parse(cell) is None:
                what = "missing value" if cell == "" or cell.lower() in ("nan", "na", "null", "none") else (
                    f"{cell!r} is not a finite number" if cell.lower().lstrip("+-") in ("inf", "infinity")
                    else f"{cell!r} is not a number")
                raise ValueError(f"{path} line {lines[i]}, column {names[j]!r}: {what}; features must be numeric "
                                 f"(encode categories as numbers or drop the column)")
    raise ValueError(f"{path}: features could not be read as numbers")  # pragma: no cover - defensive


def load_npz(path: str | os.PathLike[str], *, x_key: str = "X", y_key: str = "y", task: str = "auto") -> Table:
    """Read features and targets from a NumPy ``.npz`` archive (never unpickles).

    Parameters
    ----------
    path : str or path-like
    x_key, y_key : str
        Names of the feature and target arrays (``"x"``/``"Y"`` are accepted
        when the exact name is absent). Optional arrays ``feature_names`` and
        ``class_names`` (strings) name the columns and classes.
    task : {"auto", "classification", "regression"}
        How to read ``y`` (see :func:`encode_labels`).

    Returns
    -------
    Table
        ``X`` is float64 ``(n_samples, n_features)``; arrays of images
        ``(n, h, w)`` are flattened to ``(n, h*w)``.

    Raises
    ------
    ValueError
        Not an NPZ archive, a missing key (the message lists the keys
        present), object arrays, mismatched lengths, non-finite features.
    """
    path = Path(path)
    _check_task(task)
    not_npz = f"{path} is not a valid .npz file (NumPy zip archive); write one with numpy.savez(path, X=features, y=targets)"
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except IsADirectoryError as exc:
        raise ValueError(f"{path} is a directory, not a .npz file") from exc
    # numpy.load's own message for a file that is neither a zip nor .npy is advice to unpickle it (unsafe):
    # a zip archive starts "PK\x03\x04" (or "PK\x05\x06" when empty), a single .npy array "\x93NUMPY"
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        raise ValueError(not_npz)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path}: expected an .npz archive holding arrays {x_key!r} and {y_key!r}, got a single array")
    check_npz_members(path, f"{path} is not a valid .npz file (NumPy zip archive); not a readable .npz archive: ")
    try:
        archive = numpy.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, *ARCHIVE_ERRORS) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        reason = "" if "pickle" in str(exc) else f": {exc}"
        raise ValueError(f"{path} is not a valid .npz file (NumPy zip archive); not a readable .npz archive{reason}") from exc
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an .npz archive holding arrays {x_key!r} and {y_key!r}, got a single array")
    with archive:
        keys = list(archive.files)
        X = _npz_array(path, archive, _npz_key(path, keys, x_key, x_key, y_key))
        y = _npz_array(path, archive, _npz_key(path, keys, y_key, x_key, y_key))
        fkey, ckey = _npz_key(path, keys, "feature_names"), _npz_key(path, keys, "class_names")
        feature_names = _npz_array(path, archive, fkey) if fkey else None
        class_names = _npz_array(path, archive, ckey) if ckey else None
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: {x_key!r} must be numeric, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{path}: {x_key!r} must have shape (n_samples, n_features), got {X.shape}; "
                         "store a single feature as X[:, None]")
    X = X.reshape(X.shape[0], -1).astype(numpy.float64)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{path}: {y_key!r} must have shape ({len(X)},) to match {x_key!r}, got {y.shape}")
    bad = ~numpy.isfinite(X)
    if bad.any():
        i, j = (int(v) for v in numpy.argwhere(bad)[0])
        raise ValueError(f"{path}: {x_key!r} holds NaN or infinity (first at row {i}, column {j})")
    y_enc, names = encode_labels(y, task, where=f"{path} array {y_key!r}")
    if class_names is not None and names is not None and y.dtype.kind in "iu":
        # integer labels 0..C-1 with stored names: keep the stored names
        if y.min() >= 0 and y.max() < len(class_names):
            y_enc, names = y.astype(numpy.int64), [str(c) for c in class_names]
    if feature_names is not None:
        fn = [str(c) for c in numpy.asarray(feature_names).ravel()]
        if len(fn) != X.shape[1]:
            raise ValueError(f"{path}: 'feature_names' has {len(fn)} names for {X.shape[1]} features")
    else:
        fn = [f"x{j}" for j in range(X.shape[1])]
    return Table(X, y_enc, fn, names)


def _npz_key(path: Path, keys: list[str], key: str, x_key: str | None = None, y_key: str | None = None) -> str | None:
    """The archive's name for ``key`` (exact, else case-insensitive); raises when a required key is absent."""
    if key in keys:
        return key
    name = next((k for k in keys if k.lower() == key.lower()), None)
    if name is None and x_key is not None:
        raise ValueError(f"{path}: no array named {key!r}; the archive holds {keys}; "
                         f"save with numpy.savez(path, {x_key}=features, {y_key}=targets)")
    return name


def _npz_array(path: Path, archive: Any, name: str) -> numpy.ndarray:
    try:
        return archive[name]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise ValueError(f"{path}: array {name!r} cannot be read without unpickling ({exc}); "
                         "store plain numeric or string arrays") from exc
    except (zipfile.BadZipFile, *ARCHIVE_ERRORS) as exc:
        raise ValueError(f"{path}: array {name!r} is damaged ({type(exc).__name__}: {exc})") from exc
