"""``deltanet evaluate MODEL`` and ``deltanet predict MODEL``: use a trained model on data."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy

from ..config import DataConfig
from ..inference import predict
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


def add_parsers(sub: Any) -> None:
    e = sub.add_parser("evaluate", help="loss and accuracy of a trained model on data",
                       description="Evaluate a trained model: loss, accuracy and per-class recall (classifiers), or "
                       "RMSE and R^2 (regression). Without --data it uses the model's own data and the same test split "
                       "as training (same seeds); with --data it uses all rows of that data.",
                       epilog="examples:\n  deltanet evaluate runs/20250101-120000\n"
                       "  deltanet evaluate model.safetensors --data holdout.csv --target label")
    _model_and_data(e)
    e.add_argument("--split", choices=_SPLITS, default=None,
                   help="which part of the data (default: test without --data, all with --data)")
    e.set_defaults(func=run_evaluate)

    p = sub.add_parser("predict", help="predictions (labels and class probabilities) of a trained model",
                       description="Predict with a trained model and write CSV: one row per sample with the predicted "
                       "label and, for classifiers, the probability of every class. A CSV input needs the model's "
                       "feature columns (by name; other columns, such as the target, are ignored).",
                       epilog="examples:\n  deltanet predict runs/20250101-120000 --data new.csv --output predictions.csv\n"
                       "  deltanet predict model.safetensors --data spiral --n-samples 10")
    _model_and_data(p)
    p.add_argument("--output", "-o", metavar="FILE", help="write the CSV here (default: standard output)")
    p.add_argument("--split", choices=_SPLITS, default="all", help="which part of the data")
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


def _inputs(args: argparse.Namespace, mf: Any, split: str) -> tuple[numpy.ndarray, numpy.ndarray | None, Any, str]:
    """Raw inputs, targets (None when the file has none), the dataset (or None) and a description."""
    meta = mf.metadata or {}
    feature_names = meta.get("feature_names")
    data, _ = _data_config(args, mf)
    path = data.path
    if path is not None and path.lower().endswith(".csv") and isinstance(feature_names, list):
        header = csv_header(Path(_strip_prefix(path)))
        if data.target is not None and data.target in header:
            pass  # labelled: read with the target column
        elif all(name in header for name in feature_names):
            if split != "all":
                fail(f"--split {split} needs the target column{f' {data.target!r}' if data.target else ''} in {path}")
            X = read_feature_csv(Path(_strip_prefix(path)), feature_names)
            return X, None, None, f"{path} ({len(X)} rows, no target column)"
    ds = load_data(data)
    if split == "all":
        X, y = ds.X, ds.y
    else:
        parts, _ = split_and_scale(ds, replace(data, standardize=False))
        X, y = {"train": (parts.X_train, parts.y_train), "val": (parts.X_val, parts.y_val),
                "test": (parts.X_test, parts.y_test)}[split]
    if len(X) == 0:
        fail(f"the {split} split of {ds.name} is empty")
    return X, y, ds, f"{ds.name}, {split} {'split' if split != 'all' else 'rows'} ({len(X)} samples)"


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
    X, y, _, what = _inputs(args, mf, split)
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
    X, _, _, what = _inputs(args, mf, args.split)
    out = _outputs(mf, X)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if _task(mf) == "classification":
        k = out.shape[1]
        names = _class_names(mf, k)
        proba = _softmax(out)
        writer.writerow(["row", "prediction", *(f"prob_{n}" for n in names)])
        pred = out.argmax(axis=1)
        for i in range(len(out)):
            writer.writerow([i, names[pred[i]], *(f"{p:.6g}" for p in proba[i])])
    else:
        cols = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])]
        writer.writerow(["row", *cols])
        for i in range(len(out)):
            writer.writerow([i, *(f"{v:.8g}" for v in out[i])])
    text = buf.getvalue()
    if args.output:
        target = Path(args.output)
        if target.is_dir():
            fail(f"--output {target} is a directory; give a file name")
        try:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
        info(args, f"wrote {len(out)} predictions for {what} to {target}")
    else:
        sys.stdout.write(text)
    return 0
