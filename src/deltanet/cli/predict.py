"""``deltanet evaluate MODEL`` and ``deltanet predict MODEL``: use a trained model on data."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy

from ..config import DataConfig
from ..inference import predict
from ..io import atomic_write
from ._common import fail, info, looks_like_path
from ._pipeline import (
    _strip_prefix,
    csv_header,
    load_data,
    load_model,
    read_feature_csv,
    run_config_of,
    split_and_scale,
    standardizer_of,
)

_SPLITS = ("all", "train", "val", "test")
_SPLIT_HELP = ("all: every row of the data set (for MNIST and Fashion-MNIST: the training rows and the official "
               "test rows); train, val, test: the parts training used (same seeds)")


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="loss and accuracy of a trained model on data",
                       description="Evaluate a trained model: loss, accuracy and per-class recall (classifiers), or "
                       "RMSE and R^2 (regression). Without --data it uses the model's own data and the same test split "
                       "as training (same seeds); with --data it uses all rows of that data. A CSV file's columns are matched by name "
                       "(any order; extra columns are ignored; the target column is read by its name too).",
                       epilog="examples:\n  deltanet evaluate runs/20250101-120000\n"
                       "  deltanet evaluate model.safetensors --data holdout.csv --target label")
    _model_and_data(e)
    e.add_argument("--split", choices=_SPLITS, default=None,
                   help=f"which part of the data ({_SPLIT_HELP}; default: test without --data, all with --data)")
    e.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="predictions (labels and class probabilities) of a trained model",
                       description="Predict with a trained model and write CSV: one row per sample with the predicted "
                       "label and, for classifiers, the probability of every class. A CSV input needs the model's "
                       "feature columns (matched by name, in any order); its other columns (an id, say) are copied to "
                       "the output as its first columns, and the target column, when present, as true_<target> beside "
                       "the prediction.",
                       epilog="examples:\n  deltanet predict runs/20250101-120000 --data new.csv --output predictions.csv\n"
                       "  deltanet predict model.safetensors --data spiral --n-samples 10")
    _model_and_data(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the CSV here (default: standard output)")
    p.add_argument("--split", choices=_SPLITS, default="all", help=f"which part of the data ({_SPLIT_HELP})")
    p.set_defaults(func=run_predict)


def _model_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file (model.safetensors) or a run directory")
    p.add_argument("--data", metavar="NAME|PATH", help="a dataset name or a .csv/.npz file (default: the model's own data)")
    p.add_argument("--target", metavar="COLUMN", help="the target column of a CSV file (default: the one used in training)")
    p.add_argument("--n-samples", type=int, metavar="N", help="points of a generated dataset (spiral, moons, ...)")
    p.add_argument("--data-seed", type=int, metavar="N", help="seed of a generated dataset and of the split")
    p.add_argument("--quiet", "-q", action="store_true", help="no informational lines on stderr")


def _data_config(args: argparse.Namespace, mf: Any) -> tuple[DataConfig, bool]:
    """The data to use and whether it is the model's own (then splits repeat training's)."""
    trained = run_config_of(mf)
    base = trained.data if trained is not None else DataConfig()
    own = args.data is None
    if own:
        if trained is None:
            fail("the model file does not say what data it was trained on; pass --data NAME|PATH")
        data = base
    else:
        same = args.data in (base.name, base.path)
        keep = {} if same else {"n_samples": None, "noise": None, "target": base.target if looks_like_path(args.data) else None}
        data = replace(base, **keep)
        data = replace(data, path=args.data, name=None) if looks_like_path(args.data) else replace(data, name=args.data, path=None)
    if args.target is not None:
        data = replace(data, target=args.target)
    if args.n_samples is not None:
        if args.n_samples < 2:
            fail(f"--n-samples must be >= 2, got {args.n_samples}")
        data = replace(data, n_samples=args.n_samples)
    if args.data_seed is not None:
        if args.data_seed < 0:
            fail(f"--data-seed must be >= 0, got {args.data_seed}")
        data = replace(data, seed=args.data_seed)
    return data, own


@dataclass
class _Inputs:
    """What ``evaluate`` and ``predict`` run the model on."""

    X: numpy.ndarray
    y: numpy.ndarray | None  # class indices into the model's classes, or float targets; None without a target
    what: str  # a description for messages
    truth: tuple[str, numpy.ndarray] | None = None  # (column name, true values as text) of a CSV's target column
    carried: dict[str, numpy.ndarray] = field(default_factory=dict)  # a CSV's other columns (ids), as text


def _encode_truth(cells: numpy.ndarray, mf: Any, path: str, column: str) -> numpy.ndarray:
    """A CSV's target cells as the model's class indices (matched by label) or as float regression targets."""
    if (empty := numpy.flatnonzero(cells == "")).size:
        fail(f"{path}: row {int(empty[0]) + 1} has no value in the target column {column!r}")
    if _task(mf) != "classification":
        try:
            t = cells.astype(numpy.float64)
        except ValueError:
            bad = next(c for c in cells if not _is_number(str(c)))
            fail(f"{path} column {column!r}: target {str(bad)!r} is not a number (the model is a regression model)")
        return t
    names = _stored_class_names(mf)
    if not names:  # no names stored: the labels are class indices
        try:
            codes = cells.astype(numpy.float64)
        except ValueError:
            codes = numpy.array([-1.0])
        if (codes < 0).any() or (codes != numpy.round(codes)).any():
            fail(f"{path} column {column!r}: the model stores no class names, so the labels must be class indices 0, 1, ...")
        return codes.astype(numpy.int64)
    index = {n: i for i, n in enumerate(names)}
    for i, n in enumerate(names):  # numeric labels: "1.0" in the file is the class "1"
        if _is_number(n):
            index.setdefault(repr(float(n)), i)
    uniq, inverse = numpy.unique(cells, return_inverse=True)
    codes = numpy.empty(len(uniq), dtype=numpy.int64)
    unknown = []
    for u, label in enumerate(uniq):
        label = str(label)
        code = index.get(label)
        if code is None and _is_number(label):
            code = index.get(repr(float(label)))
        if code is None:
            unknown.append(label)
        else:
            codes[u] = code
    if unknown:
        fail(f"{path} column {column!r}: label(s) {', '.join(unknown[:5])} are not classes of the model "
             f"({', '.join(names[:20]) or 'no class names stored'})")
    return codes[inverse.reshape(-1)]


def _stored_class_names(mf: Any) -> list[str]:
    names = (mf.preprocessing or {}).get("class_names") or (mf.metadata or {}).get("class_names")
    return [str(n) for n in names] if isinstance(names, list) else []


def _is_number(text: str) -> bool:
    try:
        return bool(numpy.isfinite(float(text)))
    except ValueError:
        return False


def _csv_inputs(args: argparse.Namespace, mf: Any, data: DataConfig, feature_names: list[str], split: str) -> _Inputs:
    """A CSV file read by column name: the model's features (any order), its target if present, other columns."""
    path = data.path
    assert path is not None
    file = Path(_strip_prefix(path))
    header = csv_header(file)
    target = data.target if data.target is not None and data.target in header else None
    if args.target is not None and target is None:
        fail(f"{path}: no target column {args.target!r} (--target); the file has columns {', '.join(header[:10])}"
             + (" ..." if len(header) > 10 else ""))
    if target is None and split != "all":
        fail(f"--split {split} needs the target column{f' {data.target!r}' if data.target else ''} in {path}")
    X, cells, others = read_feature_csv(file, feature_names, target)
    y = _encode_truth(cells, mf, path, target) if target is not None and cells is not None else None
    truth = None
    if target is not None and y is not None:
        if _task(mf) == "classification":
            names = _stored_class_names(mf)
            truth = (target, numpy.asarray(names, dtype=str)[y] if names else y.astype(str))
        else:
            truth = (target, cells)
    if split != "all":
        assert y is not None
        from ..data import Dataset

        # split the row numbers exactly as training split the rows (same labels, same seed)
        rows = numpy.arange(len(X), dtype=numpy.float64)[:, None]
        task = "classification" if _task(mf) == "classification" else "regression"
        k = int(y.max()) + 1 if len(y) else 1
        names = (_stored_class_names(mf) or [str(i) for i in range(k)]) if task == "classification" else None
        ds = Dataset(file.name, rows, y, ["row"], names, task)
        parts, _ = split_and_scale(ds, replace(data, standardize=False))
        idx = {"train": parts.X_train, "val": parts.X_val, "test": parts.X_test}[split][:, 0].astype(numpy.int64)
        if len(idx) == 0:
            fail(f"the {split} split of {path} is empty")
        X, y = X[idx], y[idx]
        truth = (truth[0], truth[1][idx]) if truth is not None else None
        others = {k: v[idx] for k, v in others.items()}
        what = f"{path}, {split} split ({len(X)} samples)"
    else:
        what = f"{path} ({len(X)} rows{'' if target is not None else ', no target column'})"
    return _Inputs(X, y, what, truth, others)


def _inputs(args: argparse.Namespace, mf: Any, split: str) -> _Inputs:
    """Raw inputs, targets (None when the data has none) and a description.

    A CSV file is read by column name whenever the model knows its feature names: the columns may stand in
    any order, extra columns are ignored (``predict`` carries them to its output), a missing one is refused.
    ``split="all"`` is every row of the data set, including an official test split (MNIST's 10,000).
    """
    meta = mf.metadata or {}
    feature_names = meta.get("feature_names")
    data, _ = _data_config(args, mf)
    path = data.path
    if (path is not None and isinstance(feature_names, list) and feature_names
            and (path.lower().endswith(".csv") or path.lower().startswith("csv:"))):
        return _csv_inputs(args, mf, data, [str(n) for n in feature_names], split)
    ds = load_data(data)
    if split == "all":
        X, y = ds.X, ds.y
        if ds.X_test is not None:  # every row: the training rows and the official test rows
            X, y = numpy.concatenate([X, ds.X_test]), numpy.concatenate([y, ds.y_test])
    else:
        parts, _ = split_and_scale(ds, replace(data, standardize=False))
        X, y = {"train": (parts.X_train, parts.y_train), "val": (parts.X_val, parts.y_val),
                "test": (parts.X_test, parts.y_test)}[split]
    if len(X) == 0:
        fail(f"the {split} split of {ds.name} is empty")
    return _Inputs(X, y, f"{ds.name}, {split} {'split' if split != 'all' else 'rows'} ({len(X)} samples)")


def _outputs(mf: Any, X: numpy.ndarray) -> numpy.ndarray:
    """The model's outputs (logits) for raw inputs, after the stored preprocessing, in batches."""
    from .. import backend

    scaler = standardizer_of(mf)
    net = mf.model
    n_in = scaler.n_features_in_ if scaler is not None else len((mf.metadata or {}).get("feature_names") or []) or None
    if n_in is not None and X.shape[1] != n_in:
        fail(f"the model takes {n_in} features, the data has {X.shape[1]}")
    if scaler is not None:
        X = scaler.transform(X)
    try:
        out = predict(net, X, 1024)
    except ValueError as exc:
        fail(f"the data does not fit the model: {exc}")
    return backend.to_numpy(out).astype(numpy.float64)


def _task(mf: Any) -> str:
    return (mf.metadata or {}).get("task") or ("classification" if (mf.preprocessing or {}).get("class_names") else "regression")


def _class_names(mf: Any, k: int) -> list[str]:
    names = (mf.preprocessing or {}).get("class_names") or (mf.metadata or {}).get("class_names")
    return [str(c) for c in names] if isinstance(names, list) and len(names) == k else [str(i) for i in range(k)]


def _softmax(z: numpy.ndarray) -> numpy.ndarray:
    e = numpy.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def run_evaluate(args: argparse.Namespace) -> int:
    mf = load_model(args.model)
    split = args.split or ("test" if args.data is None else "all")
    inp = _inputs(args, mf, split)
    X, y, what = inp.X, inp.y, inp.what
    if y is None:
        fail("evaluate needs targets: the data has no target column (use deltanet predict for unlabelled data)")
    out = _outputs(mf, X)
    task = _task(mf)
    print(f"model: {args.model}")
    print(f"data:  {what}")
    if task == "classification":
        from ..losses import SoftmaxCrossEntropy
        from ..report import confusion_matrix

        k = out.shape[1]
        names = _class_names(mf, k)
        y = numpy.asarray(y)
        if y.min(initial=0) < 0 or y.max(initial=0) >= k:
            fail(f"the data has class indices up to {int(y.max())}, the model knows {k} classes ({', '.join(names)})")
        loss = SoftmaxCrossEntropy().forward(out, y)
        pred = out.argmax(axis=1)
        correct = int((pred == y).sum())
        print(f"loss:     {loss:.4f} (cross-entropy)")
        print(f"accuracy: {100 * correct / len(y):.2f}% ({correct}/{len(y)})")
        cm = confusion_matrix(y, pred, k)
        support = cm.sum(axis=1)
        recall = numpy.divide(numpy.diag(cm), support, out=numpy.full(k, numpy.nan), where=support > 0)
        w = max(5, *(len(n) for n in names))
        print(f"{'class':<{w}}  {'samples':>7}  {'recall':>7}  most confused with")
        for i in range(k):
            off = cm[i].copy()
            off[i] = 0
            worst = f"{names[int(off.argmax())]} ({int(off.max())})" if off.max() > 0 else "-"
            rec = f"{100 * recall[i]:.1f}%" if support[i] else "-"
            print(f"{names[i]:<{w}}  {int(support[i]):>7}  {rec:>7}  {worst}")
    else:
        t = numpy.asarray(y, dtype=numpy.float64).reshape(out.shape)
        resid = out - t
        mse = float(numpy.mean(resid**2))
        var = float(numpy.sum((t - t.mean(axis=0)) ** 2))
        print(f"MSE:  {mse:.6g}")
        print(f"RMSE: {mse ** 0.5:.6g}")
        print(f"MAE:  {float(numpy.mean(numpy.abs(resid))):.6g}")
        if var > 0:
            print(f"R^2:  {1 - float(numpy.sum(resid**2)) / var:.4f}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    mf = load_model(args.model)
    inp = _inputs(args, mf, args.split)
    X, what = inp.X, inp.what
    out = _outputs(mf, X)
    n = len(out)
    # columns: the input's other columns (ids), the row number, the true value, the prediction, probabilities
    heads: list[str] = []
    cols: list[Any] = []
    if _task(mf) == "classification":
        k = out.shape[1]
        names = _class_names(mf, k)
        pred_head = ["prediction", *(f"prob_{c}" for c in names)]
        pred_cols = [numpy.asarray(names, dtype=str)[out.argmax(axis=1)],
                     *numpy.char.mod("%.6g", _softmax(out)).T]
    else:
        pred_head = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])]
        pred_cols = list(numpy.char.mod("%.8g", out).T)
    truth_head = [f"true_{inp.truth[0]}"] if inp.truth is not None else []
    taken = {"row", *truth_head, *pred_head}
    for name, values in inp.carried.items():
        heads.append(name if name not in taken else f"input_{name}")
        cols.append(values)
    heads.append("row")
    cols.append(range(n))
    if inp.truth is not None:
        heads += truth_head
        cols.append(inp.truth[1])
    heads += pred_head
    cols += pred_cols
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(heads)
    writer.writerows(zip(*cols, strict=True))
    text = buf.getvalue()
    if args.output:
        target = Path(args.output)
        if target.is_dir():
            fail(f"--output {target} is a directory; give a file name")
        try:
            with atomic_write(target, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            fail(str(exc))  # "cannot write <target>: <reason>"
        info(args, f"wrote {len(out)} predictions for {what} to {target}")
    else:
        sys.stdout.write(text)
    return 0
