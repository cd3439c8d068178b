"""``deltanet train [CONFIG.toml] [options]``: train a network and write a run directory."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy

from ..config import dumps_toml, save_config
from ..errors import NonFiniteError
from ..training import ModelCheckpoint
from ._common import FromConfig, add_config_options, apply_overrides, fail, info, option_name, plural
from ._pipeline import (
    CONFIG_FILE,
    MODEL_FILE,
    build_model,
    check_data,
    check_heuristic_widths,
    load_config_or_fail,
    load_data,
    make_trainer,
    n_outputs,
    resolve,
    split_and_scale,
)

#: The checkpoint of a run (the full training state after the last completed epoch), for ``--resume``.
CHECKPOINT_FILE = "checkpoint.npz"
#: Exit codes of ``deltanet train`` besides 0 and 2 (see :mod:`deltanet.cli`).
EXIT_FAILED = 1         # the run directory could not be written (disk full, permissions)
EXIT_DIVERGED = 3       # training diverged (NaN or infinite loss or gradients)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it; the run directory is written
EXIT_TERMINATED = 143   # SIGTERM; the run directory is written

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
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to train: cpu (NumPy) or cuda (an NVIDIA GPU through CuPy: pip install 'deltanet[gpu]'); "
                        "the model files hold host arrays either way")
    out = p.add_argument_group("output")
    out.add_argument("--name", help="name of the run directory (default: the date and time, 20250131-142501)")
    out.add_argument("--out-dir", default="runs", metavar="DIR", help="where run directories are made")
    out.add_argument("--overwrite", action="store_true", help="reuse an existing run directory of the same --name")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress display; print only the final result")
    out.add_argument("--no-report", action="store_true", help="skip report.html and the figures")
    out.add_argument("--log-every", type=int, default=None, metavar="N",
                     help="without a terminal, print the progress line every N epochs and the last (default: automatic)")
    out.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                     help=f"save the training state to RUN_DIR/{CHECKPOINT_FILE} every N epochs (0: never); "
                     "kept after an interruption for --resume, removed when the run ends")
    out.add_argument("--resume", metavar="RUN_DIR",
                     help="continue an interrupted or killed run from its last checkpoint (or from the start if it "
                     "has none), with the settings of RUN_DIR/config.toml; the result is the same as an uninterrupted run")
    mpi = p.add_argument_group("data-parallel (under mpiexec -n N)")
    mpi.add_argument("--mpi-overlap", action=argparse.BooleanOptionalAction, default=None,
                     help="send the gradient in buckets during the backward pass instead of in one all-reduce after "
                     "it (the same result; default: off, measured no faster on one machine); ignored without mpiexec")
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
            unfinished = not (run_dir / "metrics.json").exists() or (run_dir / CHECKPOINT_FILE).exists()
            hint = (f" (a run that did not finish: continue it with 'deltanet train --resume {run_dir}')"
                    if unfinished and (run_dir / CONFIG_FILE).exists() else "")
            fail(f"run directory {run_dir} already exists{hint}; choose another --name or pass --overwrite")
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
    """``64-256-128-10 (N parameters)`` for a plain chain of layers; the top-level modules otherwise."""
    from ..modules.containers import Sequential
    from ..modules.linear import Linear

    children = [m for _, m in model.named_children()]
    plain = isinstance(model, Sequential) and all(not list(m.named_children()) for m in children)
    params = f"{model.num_parameters():,} parameters"
    if plain and any(isinstance(m, Linear) for m in children):
        widths = [n_in] + [m.out_features for m in children if isinstance(m, Linear)]
        return f"{'-'.join(str(w) for w in widths)} ({params})"
    names = [type(m).__name__ for m in children]
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{type(model).__name__}({shown}): {params}" if names else f"{type(model).__name__}: {params}"


def _percent(v: float) -> str:
    return f"{100 * v:.2f}%"


def _check_resume(args: argparse.Namespace) -> Path:
    """The run directory to continue: its config.toml is the configuration; nothing else may change it."""
    run_dir = Path(args.resume)
    given = [a for a in ("config",) if getattr(args, a) is not None]
    given += [k for k, v in vars(args).items() if k.startswith("cfg__") and not isinstance(v, FromConfig)]
    if not isinstance(getattr(args, "data_source", None), FromConfig):
        given.append("data")
    if args.name is not None or args.overwrite:
        given.append("name/overwrite")
    if given:
        names = ", ".join(option_name(*k.split("__")[1:]) if k.startswith("cfg__") else
                          ("CONFIG.toml" if k == "config" else "--name/--overwrite" if k == "name/overwrite" else "--data")
                          for k in given)
        fail(f"--resume continues {run_dir} with the settings of its {CONFIG_FILE}; drop {names} (or start a new run)")
    if not run_dir.is_dir():
        fail(f"--resume {run_dir}: no such run directory")
    if not (run_dir / CONFIG_FILE).is_file():
        fail(f"--resume {run_dir}: the directory has no {CONFIG_FILE}, so it is not a run directory")
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            reason = json.loads(metrics.read_text(encoding="utf-8")).get("stop_reason")
        except (OSError, ValueError, AttributeError):
            reason = None
        if reason != "interrupted" and not (run_dir / CHECKPOINT_FILE).exists():
            fail(f"the run in {run_dir} already finished ({reason or 'complete'}); to train longer start a new run: "
                 f"deltanet train {run_dir / CONFIG_FILE} --epochs N --name NEW")
    return run_dir


def _weights_epoch(trainer: Any, history: Any) -> tuple[int, str]:
    """The epoch whose weights the model holds now, and why."""
    es = trainer.early_stopping
    if es is not None and es.restore_best and getattr(es, "best_state", None) is not None and es.best_epoch is not None:
        return int(es.best_epoch), "the best validation loss (restore_best)"
    last = int(history.records[-1]["epoch"]) if history.records else 0
    if history.stop_reason == "diverged":
        return last, "the last epoch before the divergence"
    if history.stop_reason == "interrupted":
        return last, "where the interruption stopped it"
    return last, "the last epoch"


def _swap_into_place(new: Path, final: Path) -> None:
    """Replace the directory ``final`` by ``new``: rename the old one aside, the new one in, delete the old.

    The files in ``new`` were each written with :func:`deltanet.io.atomic_write`
    (fsynced); the renames are made durable here by fsyncing the parent folder.
    """
    from ..io import _fsync_directory

    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        os.replace(old, final)
        raise
    _fsync_directory(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def _remove_temporaries(run_dir: Path) -> None:
    for tmp in run_dir.glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    """``deltanet train``; started by ``mpiexec -n N`` (N > 1), a data-parallel run over the N ranks."""
    from ._mpi import mpi_launched, run_on_ranks

    if mpi_launched():
        return run_on_ranks(_run, args)
    return _run(args, None)


def _run(args: argparse.Namespace, job: Any) -> int | None:
    """The command on one process, or on one rank of a data-parallel job (``job``: a :class:`._mpi.MPIRun`):
    every rank trains; rank 0 alone makes, writes and reports the run directory, the others return after ``fit``."""
    start = time.perf_counter()
    root = job is None or job.is_root
    if args.log_every is not None and args.log_every < 1:
        fail(f"--log-every must be >= 1, got {args.log_every}")
    if args.checkpoint_every < 0:
        fail(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {args.checkpoint_every}")
    resume_dir = _check_resume(args) if args.resume is not None else None
    if resume_dir is not None:
        config = load_config_or_fail(str(resume_dir / CONFIG_FILE))
    else:
        config = apply_overrides(load_config_or_fail(args.config), args)
    final_dir = resume_dir if resume_dir is not None else plan_run_dir(args) if root else None
    ds = load_data(config.data)
    check_data(ds, config.data)
    parts, standardize = split_and_scale(ds, config.data)
    n_in, n_out = ds.n_features, n_outputs(ds)
    check_heuristic_widths(config.model, n_in, n_out)
    config = resolve(config, ds, standardize)
    model = build_model(config.model, n_in, n_out, config.train.seed)
    if args.device != "cpu":
        try:
            model.to(args.device)                 # the trainer builds its optimizer state there; the data follows per fit
        except RuntimeError as exc:
            fail(str(exc))
    # a directory to replace (--overwrite) is built beside it and swapped in at the end: no stale files survive
    replace_old = root and resume_dir is None and final_dir.exists() and any(final_dir.iterdir())
    run_dir = final_dir.with_name(f".{final_dir.name}.new-{os.getpid()}") if replace_old else final_dir
    checkpoint = run_dir / CHECKPOINT_FILE if run_dir is not None else None
    callbacks = []
    if args.checkpoint_every and root:
        callbacks.append(ModelCheckpoint(checkpoint, every=args.checkpoint_every, save_on_end=False,
                                         complete_epochs_only=True))
    trainer = make_trainer(config, model, ds.task, progress=not args.quiet, has_validation=len(parts.X_val) > 0,
                           log_every=args.log_every, callbacks=callbacks, distributed=job.dp if job else None)
    if resume_dir is not None and checkpoint.exists():
        try:
            trainer.resume(checkpoint)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            fail(f"cannot resume from {checkpoint}: {exc}")
    val = (parts.X_val, parts.y_val) if len(parts.X_val) else None
    if not root:
        return _train_on_rank(trainer, parts, val, job)
    if replace_old and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir = make_run_dir(run_dir)
    try:
        save_config(config, run_dir / CONFIG_FILE)
    except OSError as exc:
        return _write_failed(run_dir, final_dir, replace_old, exc)
    kind = f", {plural(n_out, 'class')}" if ds.task == "classification" else f", {ds.task}"
    info(args, f"data: {ds.name}: {len(parts.X_train)} training, {len(parts.X_val)} validation, {len(parts.X_test)} test "
               f"samples, {plural(n_in, 'feature')}{kind}" + (", standardized" if standardize else ""))
    info(args, f"model: {_describe_model(model, n_in)}, {config.train.optimizer} lr {config.train.lr:g}, "
               f"{config.train.schedule} schedule, batch {config.train.batch_size}, up to "
               f"{plural(config.train.epochs, 'epoch')}")
    if resume_dir is not None:
        info(args, f"resuming {run_dir} " + (f"after epoch {trainer.epoch} (from {CHECKPOINT_FILE})" if trainer.epoch
                                            else "from the start (no checkpoint yet)"))
    else:
        info(args, f"run directory: {final_dir}")
    if job is not None:
        info(args, job.describe(config.train.batch_size))

    terminated: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        trainer.interrupt()

    in_main = job is None and threading.current_thread() is threading.main_thread()   # MPI: signals end every rank
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main else None
    with warnings.catch_warnings():
        # divergence is reported below from history.stop_message, once, without a warning's source line
        warnings.filterwarnings("ignore", message="training diverged", category=RuntimeWarning)
        try:
            history = trainer.fit(parts.X_train, parts.y_train, validation_data=val)
            if args.device != "cpu":
                model.to("cpu")                   # the report and the model file work on host arrays
        except NonFiniteError as exc:
            print(f"deltanet: error: training diverged: {exc}; {_divergence_advice(config)} (run directory {final_dir} "
                  "holds the configuration only)", file=sys.stderr)
            return EXIT_DIVERGED
        except BrokenPipeError:
            raise
        except OSError as exc:  # a checkpoint could not be written (disk full): the previous one is intact
            return _write_failed(run_dir, final_dir, replace_old, exc)
        finally:
            if job is not None:
                job.trained = True
            if in_main:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    train_time = sum(r["time"] for r in history.records)
    weights_epoch, weights_why = _weights_epoch(trainer, history)
    diverged = history.stop_reason == "diverged"
    interrupted = history.stop_reason == "interrupted"

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
            y_pred = outputs
            target = numpy.asarray(parts.y_test, dtype=numpy.float64).reshape(outputs.shape)
            resid = outputs - target
            metrics["test_rmse"] = float(numpy.sqrt(numpy.mean(resid**2)))
            var = float(numpy.sum((target - target.mean(axis=0)) ** 2))
            metrics["test_r2"] = 1.0 - float(numpy.sum(resid**2)) / var if var > 0 else float("nan")
        metrics["test_samples"] = len(parts.X_test)
    last = history.last or {}
    metrics.update({"epochs": len(history), "stop_reason": history.stop_reason, "train_seconds": round(train_time, 3),
                    "weights_epoch": weights_epoch})
    for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        if last.get(key) is not None:
            metrics[f"final_{key}"] = last[key]

    from ..io import atomic_write, save

    labels = layer_labels(model)
    health = _health(history, model, parts.X_train, labels)

    preprocessing: dict[str, Any] = {}
    if parts.scaler is not None:
        preprocessing["standardizer"] = parts.scaler.to_dict()
    if ds.class_names is not None:
        preprocessing["class_names"] = list(ds.class_names)
    metadata = {"config": config.to_dict(), "task": ds.task, "dataset": ds.name, "source": ds.source,
                "feature_names": list(ds.feature_names), "class_names": ds.class_names, "metrics": metrics,
                "weights_epoch": weights_epoch}
    try:
        try:
            save(model, run_dir / MODEL_FILE, preprocessing=preprocessing, metadata=metadata)
        except ValueError as exc:  # weights went non-finite although the trainer restores the last good ones
            print(f"deltanet: warning: model not saved: {exc}", file=sys.stderr)
        history.to_json(run_dir / "history.json")
        history.to_csv(run_dir / "history.csv")
        with atomic_write(run_dir / "metrics.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(_json_safe(metrics), indent=1) + "\n")
        if not args.no_report:
            _write_report(args, run_dir, config, ds, parts, history, metrics, model, y_pred, trainer, labels, health)
        if not interrupted:
            checkpoint.unlink(missing_ok=True)  # the run is over: the model file holds its result
        if replace_old:
            _swap_into_place(run_dir, final_dir)
    except OSError as exc:
        return _write_failed(run_dir, final_dir, replace_old, exc)

    elapsed = time.perf_counter() - start
    if history.stop_reason not in (None, "max_epochs"):
        message = history.stop_message or history.stop_reason
        if diverged:  # the library's advice names its own arguments (clip_norm); the advice in option names follows
            message = re.sub(r"[.;]?\s*Lower the learning rate.*$", "", message, flags=re.S)
        print(f"stopped after {plural(len(history), 'epoch')}: {message}")
    if diverged and weights_epoch == 0:
        print("no epoch completed: the saved model holds the initial (untrained) weights")
    elif "test_accuracy" in metrics:
        n = metrics["test_samples"]
        correct = round(metrics["test_accuracy"] * n)
        print(f"test accuracy: {_percent(metrics['test_accuracy'])} ({correct}/{n})  test loss: {metrics['test_loss']:.4f}")
    elif "test_rmse" in metrics:
        print(f"test RMSE: {metrics['test_rmse']:.4g}  R^2: {metrics['test_r2']:.4f}  test loss (MSE): {metrics['test_loss']:.4g}")
    else:
        print(f"final training loss: {last.get('train_loss', float('nan')):.4g} (no test split: test_fraction = 0)")
    print(f"saved weights: epoch {weights_epoch} ({weights_why})")
    if health and not args.quiet:
        print("backprop health:")
        for line in health:
            print(f"  - {line}")
    print(f"run directory: {final_dir}  ({plural(len(history), 'epoch')}; training {train_time:.2f} s, "
          f"total {elapsed:.1f} s)")
    if diverged:
        print(f"deltanet: error: training diverged; {_divergence_advice(config)}", file=sys.stderr)
        return EXIT_DIVERGED
    if interrupted:
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        where = (f"from the checkpoint of epoch {_checkpoint_epoch(final_dir)}" if (final_dir / CHECKPOINT_FILE).exists()
                 else "from the start (no checkpoint yet)")
        print(f"deltanet: {how}; continue the run {where} with: deltanet train --resume {final_dir}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    return 0


def _train_on_rank(trainer: Any, parts: Any, val: Any, job: Any) -> None:
    """A rank other than 0: the same ``fit`` (its collectives pair with rank 0's); rank 0 reports and writes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # rank 0 reports divergence and everything else
        try:
            trainer.fit(parts.X_train, parts.y_train, validation_data=val)
        except NonFiniteError:
            pass
        finally:
            job.trained = True
    return None


def _checkpoint_epoch(run_dir: Path) -> str:
    from ..training.checkpoint import load_state

    try:
        return str(load_state(run_dir / CHECKPOINT_FILE)["epoch"])
    except (ValueError, OSError, KeyError):
        return "?"


def _divergence_advice(config: Any) -> str:
    t = config.train
    clip = f"lower --clip (now {t.clip:g})" if t.clip is not None else "set --clip 1 (gradient-norm clipping)"
    return f"lower --lr (now {t.learning_rate():g}) or {clip}"


def _write_failed(run_dir: Path, final_dir: Path, replace_old: bool, exc: OSError) -> int:
    """A write of the run directory failed (disk full, permissions): one line, no temporary files left."""
    with contextlib.suppress(OSError):
        if replace_old:
            shutil.rmtree(run_dir, ignore_errors=True)  # the previous run directory is left as it was
        else:
            _remove_temporaries(run_dir)
    reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    print(f"deltanet: error: cannot write the run directory {final_dir}: {reason}"
          + ("; the previous run there is unchanged" if replace_old else ""), file=sys.stderr)
    return EXIT_FAILED


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_safe(e) for k, e in v.items()}
    if isinstance(v, float) and not numpy.isfinite(v):
        return None
    return v


def layer_labels(model: Any) -> dict[str, str]:
    """One name per module path for the console and every figure: "hidden layer N (ReLU)", "output layer (Linear)".

    Layers are counted by the model's top-level chain: the N-th hidden layer is the N-th ``Linear`` (or other
    module with parameters) and the modules after it up to the next one; the last such module is the output layer.
    Nested modules take their top-level module's name with their own path.
    """
    top = list(model.named_children()) or [("", model)]
    weighted = [i for i, (_, m) in enumerate(top) if m.num_parameters() and not _is_norm(m)]
    labels: dict[str, str] = {}
    for i, (path, m) in enumerate(top):
        n = sum(1 for w in weighted if w <= i)
        layer = "output layer" if weighted and n == len(weighted) else (f"hidden layer {n}" if n else "input")
        labels[path] = f"{layer} ({type(m).__name__})"
        for sub, child in m.named_modules():
            if sub:
                labels[f"{path}.{sub}" if path else sub] = f"{layer}: {sub} ({type(child).__name__})"
    return labels


def _is_norm(m: Any) -> bool:
    """Modules with parameters that do not count as a layer of their own: normalization, positions, class tokens."""
    from ..modules.layernorm import LayerNorm
    from ..modules.normalization import BatchNorm
    from ..modules.pooling import ClassToken
    from ..modules.positional import PositionalEmbedding

    return isinstance(m, (BatchNorm, LayerNorm, ClassToken, PositionalEmbedding))


def _health(history: Any, model: Any, X_train: numpy.ndarray, labels: dict[str, str]) -> list[str]:
    """The backprop health verdicts (report.health), dead and saturated units measured on a fixed sample."""
    from ..report.health import health_summary
    from ..training.metrics import unit_health

    units = None
    if len(X_train) and len(history):
        try:
            units = unit_health(model, X_train[:512])
        except (ValueError, TypeError):  # a model whose activations cannot be read this way: gradients only
            units = None
    return health_summary(history, layer_labels=labels, unit_health=units)


def _write_report(args: argparse.Namespace, run_dir: Path, config: Any, ds: Any, parts: Any, history: Any,
                  metrics: dict[str, Any], model: Any, y_pred: Any, trainer: Any, labels: dict[str, str],
                  health: list[str]) -> None:
    from ..report import write_report
    shown = {}
    for key, value in metrics.items():
        if key in ("epochs", "train_seconds", "stop_reason", "weights_epoch"):
            continue  # in the facts below, in words
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
             ("epochs", len(history)), ("training time", f"{metrics['train_seconds']:.2f} s"),
             ("saved weights", f"from epoch {metrics['weights_epoch']}")]
    report = write_report(run_dir, history, config_text=dumps_toml(config.to_dict()), metrics=shown, facts=facts,
                          y_true=parts.y_test if y_pred is not None else None, y_pred=y_pred,
                          class_names=ds.class_names, predict=predict, X=ds.X if predict else None,
                          y=ds.y if predict else None, feature_names=ds.feature_names, layer_labels=labels, health=health,
                          title=f"deltanet run {run_dir.name}", task=ds.task,
                          target_names=[config.data.target] if ds.task == "regression" and config.data.target else None)
    for notice in report.notices:
        info(args, f"deltanet: {notice}")
