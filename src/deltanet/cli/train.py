"""``deltanet train [CONFIG.toml] [options]``: train a network and write a run directory."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy

from ..config import dumps_toml, save_config
from ..errors import NonFiniteError
from ._common import add_config_options, apply_overrides, fail, info
from ._pipeline import (
    CONFIG_FILE,
    MODEL_FILE,
    build_model,
    load_config_or_fail,
    load_data,
    make_trainer,
    n_outputs,
    resolve,
    split_and_scale,
)

DESCRIPTION = """\
Train a network and write a run directory: the model (model.safetensors, with its preprocessing), the exact
configuration used (config.toml: 'deltanet train runs/NAME/config.toml' repeats the run), the history
(history.json, history.csv), the test metrics (metrics.json) and a report (report.html and PNG figures).

With no arguments it runs the default job: the 8x8 digits bundled with scikit-learn, an MLP with ReLU hidden
layers 256-128 and a softmax output, Adam with a cosine schedule, 40 epochs. Options override the config file."""

EPILOG = """\
examples:
  deltanet train
  deltanet train --data spiral --hidden 64,64 --epochs 200 --lr 0.01
  deltanet train --data table.csv --target price --layers 3 --patience 10
  deltanet train runs/20250101-120000/config.toml --name again"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a network and write a run directory", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("config", nargs="?", metavar="CONFIG.toml",
                   help="a TOML configuration ([model], [data], [train]); default: the built-in default job")
    add_config_options(p, ["model", "data", "train"])
    out = p.add_argument_group("output")
    out.add_argument("--name", help="name of the run directory (default: the date and time, 20250131-142501)")
    out.add_argument("--out-dir", default="runs", metavar="DIR", help="where run directories are made")
    out.add_argument("--overwrite", action="store_true", help="reuse an existing run directory of the same --name")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress display; print only the final result")
    out.add_argument("--no-report", action="store_true", help="skip report.html and the figures")
    p.set_defaults(func=run)


def plan_run_dir(args: argparse.Namespace) -> Path:
    """``out_dir/name``, checked before any work: a timestamp name gets a suffix when taken, a given name needs --overwrite."""
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        fail(f"--out-dir {out} exists and is not a directory")
    if args.name is not None:
        if not args.name or args.name in (".", "..") or "/" in args.name or "\\" in args.name:
            fail(f"--name must be a plain directory name, got {args.name!r}")
        run_dir = out / args.name
        if run_dir.exists() and any(run_dir.iterdir()) and not args.overwrite:
            fail(f"run directory {run_dir} already exists; choose another --name or pass --overwrite")
        return run_dir
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir, k = out / stamp, 1
    while run_dir.exists():
        k += 1
        run_dir = out / f"{stamp}-{k}"
    return run_dir


def make_run_dir(run_dir: Path) -> Path:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create the run directory {run_dir}: {exc.strerror or exc}")
    return run_dir


def _describe_model(model: Any, n_in: int) -> str:
    from ..modules.linear import Linear

    widths = [n_in] + [m.out_features for m in model.modules() if isinstance(m, Linear)]
    return f"{'-'.join(str(w) for w in widths)} ({model.num_parameters():,} parameters)"


def _percent(v: float) -> str:
    return f"{100 * v:.2f}%"


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    config = apply_overrides(load_config_or_fail(args.config), args)
    planned = plan_run_dir(args)
    ds = load_data(config.data)
    parts, standardize = split_and_scale(ds, config.data)
    config = resolve(config, ds, standardize)
    n_in, n_out = ds.n_features, n_outputs(ds)
    model = build_model(config.model, n_in, n_out, config.train.seed)
    trainer = make_trainer(config, model, ds.task, progress=not args.quiet, has_validation=len(parts.X_val) > 0)
    run_dir = make_run_dir(planned)
    save_config(config, run_dir / CONFIG_FILE)
    info(args, f"data: {ds.name}: {len(parts.X_train)} training, {len(parts.X_val)} validation, {len(parts.X_test)} test "
               f"samples, {n_in} features" + (f", {n_out} classes" if ds.task == "classification" else f", {ds.task}")
               + (", standardized" if standardize else ""))
    info(args, f"model: {_describe_model(model, n_in)}, {config.train.optimizer} lr {config.train.lr:g}, "
               f"{config.train.schedule} schedule, batch {config.train.batch_size}, up to {config.train.epochs} epochs")
    info(args, f"run directory: {run_dir}")

    val = (parts.X_val, parts.y_val) if len(parts.X_val) else None
    with warnings.catch_warnings():
        # divergence is reported below from history.stop_message, once, without a warning's source line
        warnings.filterwarnings("ignore", message="training diverged", category=RuntimeWarning)
        try:
            history = trainer.fit(parts.X_train, parts.y_train, validation_data=val)
        except NonFiniteError as exc:
            print(f"deltanet: error: training diverged: {exc}; lower --lr or set --clip (run directory {run_dir} "
                  "holds the configuration only)", file=sys.stderr)
            return 1
    train_time = sum(r["time"] for r in history.records)

    metrics: dict[str, Any] = {}
    y_pred = None
    if len(parts.X_test):
        test = trainer.evaluate(parts.X_test, parts.y_test)
        metrics["test_loss"] = test["loss"]
        outputs = numpy.asarray(trainer.predict(parts.X_test), dtype=numpy.float64)
        if ds.task == "classification":
            metrics["test_accuracy"] = test["accuracy"]
            y_pred = outputs.argmax(axis=1)
        else:
            target = numpy.asarray(parts.y_test, dtype=numpy.float64).reshape(outputs.shape)
            resid = outputs - target
            metrics["test_rmse"] = float(numpy.sqrt(numpy.mean(resid**2)))
            var = float(numpy.sum((target - target.mean(axis=0)) ** 2))
            metrics["test_r2"] = 1.0 - float(numpy.sum(resid**2)) / var if var > 0 else float("nan")
        metrics["test_samples"] = len(parts.X_test)
    last = history.last or {}
    metrics.update({"epochs": len(history), "stop_reason": history.stop_reason, "train_seconds": round(train_time, 3)})
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        if last.get(key) is not None:
            metrics[f"final_{key}"] = last[key]

    from ..io import save

    preprocessing: dict[str, Any] = {}
    if parts.scaler is not None:
        preprocessing["standardizer"] = parts.scaler.to_dict()
    if ds.class_names is not None:
        preprocessing["class_names"] = list(ds.class_names)
    metadata = {"config": config.to_dict(), "task": ds.task, "dataset": ds.name, "source": ds.source,
                "feature_names": list(ds.feature_names), "class_names": ds.class_names, "metrics": metrics}
    try:
        save(model, run_dir / MODEL_FILE, preprocessing=preprocessing, metadata=metadata)
    except ValueError as exc:  # weights went non-finite although the trainer restores the last good ones
        print(f"deltanet: warning: model not saved: {exc}", file=sys.stderr)
    history.to_json(run_dir / "history.json")
    history.to_csv(run_dir / "history.csv")
    (run_dir / "metrics.json").write_text(json.dumps(_json_safe(metrics), indent=1) + "\n", encoding="utf-8")

    if not args.no_report:
        _write_report(args, run_dir, config, ds, parts, history, metrics, model, y_pred, trainer)

    elapsed = time.perf_counter() - start
    if history.stop_reason not in (None, "max_epochs"):
        print(f"stopped after {len(history)} epoch{'s' if len(history) != 1 else ''}: "
              f"{history.stop_message or history.stop_reason}")
    if "test_accuracy" in metrics:
        n = metrics["test_samples"]
        correct = round(metrics["test_accuracy"] * n)
        print(f"test accuracy: {_percent(metrics['test_accuracy'])} ({correct}/{n})  test loss: {metrics['test_loss']:.4f}")
    elif "test_rmse" in metrics:
        print(f"test RMSE: {metrics['test_rmse']:.4g}  R^2: {metrics['test_r2']:.4f}  test loss (MSE): {metrics['test_loss']:.4g}")
    else:
        print(f"final training loss: {last.get('train_loss', float('nan')):.4g} (no test split: test_fraction = 0)")
    epochs = f"{len(history)} epoch{'s' if len(history) != 1 else ''}"
    print(f"run directory: {run_dir}  ({epochs}, {elapsed:.1f} s)")
    return 0


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(e) for k, e in v.items()}
    if isinstance(v, float) and not numpy.isfinite(v):
        return None
    return v


def _write_report(args: argparse.Namespace, run_dir: Path, config: Any, ds: Any, parts: Any, history: Any,
                  metrics: dict[str, Any], model: Any, y_pred: Any, trainer: Any) -> None:
    from ..report import write_report
    labels = {path: f"layer {path} ({type(m).__name__})" for path, m in model.named_modules() if path}
    shown = {}
    for key, value in metrics.items():
        if key.endswith("accuracy") and isinstance(value, float):
            value = _percent(value)
        shown[key.replace("_", " ")] = value
    predict = None
    if ds.task == "classification" and ds.n_features == 2:
        scaler = parts.scaler

        def predict(X: numpy.ndarray) -> numpy.ndarray:
            Z = scaler.transform(X) if scaler is not None else X
            return numpy.asarray(trainer.predict(Z)).argmax(axis=1)

    facts = [("data", f"{ds.name}: {ds.source}"),
             ("samples", f"{len(parts.X_train)} training, {len(parts.X_val)} validation, {len(parts.X_test)} test"),
             ("model", _describe_model(model, ds.n_features)),
             ("epochs", len(history)), ("training time", f"{metrics['train_seconds']:.2f} s")]
    report = write_report(run_dir, history, config_text=dumps_toml(config.to_dict()), metrics=shown, facts=facts,
                          y_true=parts.y_test if y_pred is not None else None, y_pred=y_pred,
                          class_names=ds.class_names, predict=predict, X=ds.X if predict else None,
                          y=ds.y if predict else None, feature_names=ds.feature_names, layer_labels=labels,
                          title=f"deltanet run {run_dir.name}")
    for notice in report.notices:
        info(args, f"deltanet: {notice}")
