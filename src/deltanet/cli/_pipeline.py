"""From a configuration to data, a model and a trainer; and back from a model file or run directory.

Every step that reads user input (files, dataset names, layer tables) turns
the library's ``ValueError``/``TypeError``/``OSError`` into a
:class:`~deltanet.cli._common.UsageError` with the library's message, so the
command prints one line and exits 2.
"""

from __future__ import annotations

import copy
import csv
import inspect
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy

from .. import backend
from ..config import DEFAULT_DATASET, ConfigError, DataConfig, ModelConfig, RunConfig, load_config
from ..modules.base import _REGISTRY, Module, build
from ._common import UsageError, fail, warn

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.toml"


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def _strip_prefix(source: str) -> str:
    low = source.lower()
    return source[4:] if low.startswith(("csv:", "npz:")) else source


def load_data(data: DataConfig) -> Any:
    """Load the configured data set (a :class:`deltanet.data.Dataset`)."""
    from ..data import DATASETS, load_dataset

    source = data.source()
    options: dict[str, Any] = {}
    if data.path is not None:
        path = Path(_strip_prefix(data.path))
        if not path.exists():
            fail(f"data file not found: {path}")
        if path.is_dir():
            fail(f"{path} is a directory; --data takes a .csv or .npz file or a dataset name")
        if not source.lower().endswith((".csv", ".npz")) and not source.lower().startswith(("csv:", "npz:")):
            fail(f"cannot tell the format of {path}: name a .csv or .npz file (or write csv:PATH / npz:PATH)")
        if data.target is not None:
            if source.lower().endswith(".npz") or source.lower().startswith("npz:"):
                options["y_key"] = data.target
            else:
                options["target"] = data.target
        if data.task is not None:
            options["task"] = data.task
        for key in ("n_samples", "noise", "data_dir"):
            if getattr(data, key) is not None:
                fail(f"[data] {key} (--{key.replace('_', '-')}) applies to named datasets, not to a data file ({path})")
    else:
        info = DATASETS.get(source.lower())
        accepted = info.options if info is not None else ()
        if data.target is not None:
            fail(f"[data] target (--target) names a CSV column; it does not apply to the dataset {source!r}")
        if data.n_samples is not None:
            options["n_samples"] = data.n_samples
        if data.noise is not None:
            options["noise"] = data.noise
        if "seed" in accepted:
            options["seed"] = data.seed
        if data.data_dir is not None:
            if "path" not in accepted:
                fail(f"[data] data_dir (--data-dir) applies to datasets read from files (mnist, fashion-mnist), not to {source!r}")
            options["path"] = data.data_dir
        for key in ("n_samples", "noise"):
            if key in options and info is not None and key not in accepted:
                fail(f"[data] {key} (--{key.replace('_', '-')}) applies to generated datasets (spiral, moons, ...), not to {source!r}")
    try:
        return load_dataset(source, **options)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        info = DATASETS.get(source.lower())
        if info is not None and info.kind == "files":
            where = "in --data-dir " + str(data.data_dir) if data.data_dir is not None else "found"
            raise UsageError(f"the {info.name} files were not {where}: pass --data {info.name} --data-dir DIR (a directory "
                             f"holding its files) or set DELTANET_DATA; the loader said: {cli_terms(str(exc))}") from None
        raise UsageError(cli_terms(str(exc))) from None


def cli_terms(message: str) -> str:
    """A library message in command-line terms: ``path=DIR`` -> ``--data-dir DIR``."""
    message = message.replace("path=DIR", "--data-dir DIR").replace("pass path=", "pass --data-dir ")
    message = re.sub(r",?\s*(or )?(pass |use )?download=True( on a machine with a network)?", "", message)
    return message


#: The minimum hidden width below which the heuristic's choice is probably a mistake.
MIN_HEURISTIC_WIDTH = 8


def check_data(ds: Any, data: DataConfig) -> None:
    """Refuse data that cannot train anything; warn about a probable mistake (with the option that fixes it)."""
    if ds.task != "classification":
        return
    y = numpy.asarray(ds.y)
    if y.ndim == 1:
        classes = numpy.unique(y) if y.size else y
        if len(classes) < 2:
            shown = ds.class_names[0] if ds.class_names else (classes[0] if len(classes) else "none")
            fail(f"the target has one class ({shown!r}) in {ds.name}: there is nothing to learn (a constant "
                 "prediction is 100% right); check --target, or the data")
        names = list(ds.class_names or [])
        integer = all(re.fullmatch(r"[+-]?\d+(\.0*)?", str(n).strip()) for n in names)
        if data.task is None and len(classes) > 50 and integer:
            warn(f"the target of {ds.name} has {len(classes)} distinct integer values, trained as a {len(classes)}-class "
                 "classification; if it is a quantity, pass --task regression")


def check_heuristic_widths(model: ModelConfig, n_in: int, n_out: int) -> None:
    """Warn when ``--layers N`` picks hidden widths too narrow to learn (a geometric progression of small ends)."""
    if model.explicit or model.hidden is not None or not model.layers:
        return
    widths = model.hidden_sizes(n_in, n_out)
    if widths and min(widths) < MIN_HEURISTIC_WIDTH:
        warn(f"--layers {model.layers} picks hidden widths {widths} for {n_in} inputs and {n_out} outputs (the heuristic "
             f"d_l = sqrt(d_(l-1) d_(l+1))); widths under {MIN_HEURISTIC_WIDTH} rarely learn"
             + (f", and dropout {model.dropout:g} removes more" if model.dropout else "")
             + "; give the widths with --hidden, e.g. --hidden " + ",".join(["32"] * model.layers))


#: Input and output widths of the named datasets, from the registry (no data files needed).
def known_shape(data: DataConfig) -> tuple[int, int, str] | None:
    """``(n_features, n_outputs, task)`` of a named dataset without loading it, or None (a file, or unknown)."""
    from ..data import DATASETS

    if data.path is not None:
        return None
    info = DATASETS.get((data.name or DEFAULT_DATASET).lower())
    if info is None or not info.n_features or (info.task == "classification" and not info.n_classes):
        return None
    return int(info.n_features), int(info.n_classes or 1), info.task


def parameter_count(sizes: list[int], batch_norm: bool = False) -> int:
    """Parameters of ``mlp(sizes)`` from the widths alone (weights and biases; batch norm's gamma and beta)."""
    total = 0
    hidden = len(sizes) - 2
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        is_hidden = i < hidden
        total += a * b + (0 if (batch_norm and is_hidden) else b) + (2 * b if batch_norm and is_hidden else 0)
    return total


def available_memory() -> int | None:
    """Physical memory in bytes (None where the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_params: int, dtype: str, copies: int = 4, what: str = "training") -> None:
    """Refuse a network whose parameters (weights, gradients, Adam's two moments) would not fit in memory."""
    need = n_params * numpy.dtype(dtype).itemsize * copies
    have = available_memory()
    if have is not None and need > have:
        fail(f"the network has {n_params:,} parameters: {what} needs about {need / 2**30:,.1f} GiB ({copies} copies in "
             f"{dtype}: weights, gradients, optimizer state), more than this machine's {have / 2**30:,.1f} GiB; "
             "choose smaller --hidden widths")


@dataclass
class Prepared:
    """The data of a run, split and scaled."""

    X_train: numpy.ndarray
    y_train: numpy.ndarray
    X_val: numpy.ndarray
    y_val: numpy.ndarray
    X_test: numpy.ndarray
    y_test: numpy.ndarray
    scaler: Any  # a fitted Standardizer or None
    raw_test: numpy.ndarray  # the test inputs before scaling (decision-boundary plots)


def needs_standardizing(X: numpy.ndarray) -> bool:
    """The ``standardize`` default: True unless every feature already lies in [0, 1]."""
    return not (X.size and float(X.min()) >= 0.0 and float(X.max()) <= 1.0)


def split_and_scale(ds: Any, data: DataConfig) -> tuple[Prepared, bool]:
    """Split ``ds`` into training/validation/test parts and standardize (fitted on training only).

    A dataset with an official test split (MNIST) keeps it; ``test_fraction`` is then unused.
    Returns the parts and whether they were standardized.
    """
    from ..data import Standardizer, train_val_test_split

    try:
        if ds.X_test is not None:
            parts = train_val_test_split(ds.X, ds.y, data.val_fraction, 0.0, seed=data.seed)
            parts = parts._replace(X_test=ds.X_test, y_test=ds.y_test)
        else:
            parts = train_val_test_split(ds.X, ds.y, data.val_fraction, data.test_fraction, seed=data.seed)
    except ValueError as exc:
        raise UsageError(f"cannot split {ds.name}: {exc}") from None
    standardize = data.standardize if data.standardize is not None else needs_standardizing(parts.X_train)
    scaler = Standardizer().fit(parts.X_train) if standardize else None

    def f(X: numpy.ndarray) -> numpy.ndarray:
        return scaler.transform(X) if scaler is not None and len(X) else X

    prepared = Prepared(f(parts.X_train), parts.y_train, f(parts.X_val), parts.y_val, f(parts.X_test), parts.y_test,
                        scaler, parts.X_test)
    return prepared, standardize


def n_outputs(ds: Any) -> int:
    """Output width: the number of classes, or of regression targets."""
    if ds.task == "classification":
        return int(ds.n_classes)
    return 1 if ds.y.ndim == 1 else int(ds.y.shape[1])


def resolve(config: RunConfig, ds: Any, standardize: bool) -> RunConfig:
    """The configuration with every run-time default written out (the form saved as ``config.toml``)."""
    d = config.data
    if d.path is None and d.name is None:
        d = replace(d, name=DEFAULT_DATASET)
    d = replace(d, standardize=standardize)
    # absolute paths, so that the saved config.toml repeats the run from any directory
    if d.path is not None:
        prefix = d.path[:4] if d.path.lower().startswith(("csv:", "npz:")) else ""
        file = Path(_strip_prefix(d.path))
        if d.target is None and file.suffix.lower() == ".csv":  # name the column that was the target (the last one)
            rest = [c for c in csv_header(file) if c not in ds.feature_names]
            if len(rest) == 1:
                d = replace(d, target=rest[0])
        d = replace(d, path=prefix + str(file.resolve()))
    if d.data_dir is not None:
        d = replace(d, data_dir=str(Path(d.data_dir).resolve()))
    m = config.model.resolved(ds.n_features, n_outputs(ds))
    t = replace(config.train, lr=config.train.learning_rate(), loss=config.train.loss_name(ds.task))
    return RunConfig(model=m, data=d, train=t)


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

def _seed_layers(layer: Any, gen: numpy.random.Generator) -> Any:
    """A copy of a module description with a generator given to every module that takes ``rng``."""
    if isinstance(layer, list):
        return [_seed_layers(e, gen) for e in layer]
    if not isinstance(layer, dict):
        return layer
    out = {k: _seed_layers(v, gen) for k, v in layer.items()}
    cls = _REGISTRY.get(out.get("type")) if isinstance(out.get("type"), str) else None
    if cls is not None and "rng" not in out and "rng" in inspect.signature(cls.__init__).parameters:
        out["rng"] = gen.spawn(1)[0]
    return out


def build_model(model: ModelConfig, n_in: int, n_out: int, seed: int) -> Module:
    """The network of the configuration, its weights drawn from ``seed``.

    The short form is :func:`deltanet.mlp`; an explicit layer list is
    :func:`deltanet.build` of a ``Sequential``, checked against the data's
    input and output widths.
    """
    from ..architecture import mlp

    if not model.explicit:
        sizes = [n_in, *model.hidden_sizes(n_in, n_out), n_out]
        check_memory(parameter_count(sizes, model.batch_norm), model.dtype)
        return mlp(sizes, model.activation, dropout=model.dropout, batch_norm=model.batch_norm, init=model.init,
                   rng=seed, dtype=model.dtype, input_dropout=model.input_dropout)
    layers = _seed_layers(copy.deepcopy(model.layers), numpy.random.default_rng(seed))
    try:
        net = build({"type": "Sequential", "layers": layers})
    except (ValueError, TypeError) as exc:
        raise UsageError(f"[[model.layers]]: {exc}") from None
    check_widths(net, n_in, n_out)
    return net


def check_widths(net: Module, n_in: int, n_out: int) -> None:
    """Run two zero rows through ``net``: the first layer must take ``n_in`` features, the last give ``n_out``."""
    dtype = next((p.value.dtype for p in net.parameters()), backend.get_default_dtype())
    try:
        out = net.forward(backend.xp.zeros((2, n_in), dtype=dtype), training=False)
    except ValueError as exc:
        raise UsageError(f"[[model.layers]] do not fit the data ({n_in} features): {exc}") from None
    if out.shape[-1] != n_out:
        raise UsageError(f"[[model.layers]]: the last layer gives {out.shape[-1]} outputs, the data needs {n_out}")


def input_width(net: Module) -> int | None:
    """The input width of the first ``Linear``-like module (``in_features``), if any."""
    for m in net.modules():
        width = getattr(m, "in_features", None)
        if isinstance(width, int):
            return width
    return None


# ---------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------

#: The losses that fit each task of a dataset (the network's output is always one column per class or target).
TASK_LOSSES = {"classification": ("cross_entropy", "softmax_cross_entropy"), "regression": ("mse",)}


def make_trainer(config: RunConfig, model: Module, task: str, *, progress: bool, has_validation: bool = True,
                 log_every: int | None = None, callbacks: list[Any] | None = None, distributed: Any = None) -> Any:
    """A :class:`deltanet.training.Trainer` with every setting of ``[train]``.

    ``distributed``: the trainer's data-parallel context (``deltanet train`` under ``mpiexec``), or None.

    ``log_every``: with ``progress``, print every N-th epoch's line (and the last) where the progress bar supports it.
    """
    from ..training import EarlyStopping, ProgressBar, Trainer

    t = config.train
    loss = t.loss_name(task)
    if loss not in TASK_LOSSES.get(task, (loss,)):
        fail(f"[train] loss (--loss) {loss!r} does not fit a {task} dataset; use {' or '.join(TASK_LOSSES[task])}")
    if t.patience is not None and not has_validation:
        fail("[train] patience (--patience) stops on the validation loss; set [data] val_fraction (--val-fraction) > 0")
    optimizer_kwargs: dict[str, Any] = {}
    if t.momentum is not None and t.optimizer in ("sgd", "rmsprop"):
        optimizer_kwargs["momentum"] = t.momentum
    elif t.optimizer == "sgd":
        optimizer_kwargs["momentum"] = 0.9
    schedule: str | None = None if t.schedule == "none" else t.schedule
    schedule_kwargs: dict[str, Any] = {}
    if schedule is not None:
        if t.warmup_epochs:
            schedule_kwargs["warmup_epochs"] = t.warmup_epochs
        if schedule == "step":
            schedule_kwargs["step_size"] = t.step_size or max(1, t.epochs // 3)
            schedule_kwargs["gamma"] = t.gamma if t.gamma is not None else 0.1
        elif schedule == "exponential":
            schedule_kwargs["gamma"] = t.gamma if t.gamma is not None else 0.95
        elif schedule == "plateau" and t.gamma is not None:
            schedule_kwargs["factor"] = t.gamma
    elif t.warmup_epochs:
        schedule, schedule_kwargs = "constant", {"warmup_epochs": t.warmup_epochs}
    early = None
    if t.patience is not None:
        early = EarlyStopping(patience=t.patience, min_delta=t.min_delta, restore_best=t.restore_best)
    callbacks = list(callbacks or [])
    if progress and log_every is not None:  # the Trainer's own bar logs at its default interval
        callbacks.append(ProgressBar(log_every=log_every))
        progress = False
    try:
        return Trainer(model, loss=loss, optimizer=t.optimizer, lr=t.learning_rate(), schedule=schedule,
                       batch_size=t.batch_size, epochs=t.epochs, l2=t.l2, clip_norm=t.clip, seed=t.seed, progress=progress,
                       callbacks=callbacks,
                       stop_loss_below=t.loss_below, stop_grad_norm_below=t.grad_norm_below, early_stopping=early,
                       task=task, optimizer_kwargs=optimizer_kwargs or None, schedule_kwargs=schedule_kwargs or None,
                       distributed=distributed)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"[train]: {exc}") from None


# ---------------------------------------------------------------------------
# Model files and run directories
# ---------------------------------------------------------------------------

def model_path(source: str) -> Path:
    """The model file of ``source``: a model file, or a run directory holding ``model.safetensors``."""
    p = Path(source)
    if p.is_dir():
        p = p / MODEL_FILE
        if not p.exists():
            fail(f"{source} is a directory without {MODEL_FILE}; give a model file or a run directory")
    elif not p.exists():
        fail(f"model file not found: {source}")
    return p


def load_model(source: str) -> Any:
    """Load a model file (or a run directory's) as a :class:`deltanet.io.ModelFile`."""
    from ..io import load_model_file

    p = model_path(source)
    try:
        return load_model_file(p)
    except (ValueError, TypeError, OSError) as exc:
        raise UsageError(str(exc)) from None


def run_config_of(model_file: Any) -> RunConfig | None:
    """The configuration a model was trained with (from its metadata), if it has one."""
    raw = model_file.metadata.get("config")
    if not isinstance(raw, dict):
        return None
    try:
        return RunConfig.from_dict(raw)
    except ConfigError:
        return None


def load_config_or_fail(path: str | None) -> RunConfig:
    if path is None:
        return RunConfig()
    if path.lower().endswith((".csv", ".npz", ".tsv")):
        fail(f"{path} is a data file, not a configuration: pass it as --data {path} (the positional argument is a "
             ".toml configuration)")
    try:
        return load_config(path)
    except ConfigError as exc:
        hint = ""
        if "not valid TOML" in str(exc) and not path.lower().endswith(".toml"):
            hint = f"; to train on a data file, pass --data {path}"
        raise UsageError(str(exc) + hint) from None


def standardizer_of(model_file: Any) -> Any:
    """The fitted Standardizer stored with a model (None when the model takes raw inputs)."""
    from ..data import Standardizer

    d = (model_file.preprocessing or {}).get("standardizer")
    if not d:
        return None
    try:
        return Standardizer.from_dict(d)
    except ValueError as exc:
        raise UsageError(f"the model file's preprocessing is damaged: {exc}") from None


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file (its first non-blank line)."""
    if not path.exists():
        fail(f"data file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for row in csv.reader(f):
                if row and any(c.strip() for c in row):
                    return [c.strip() for c in row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        fail(f"cannot read {path}: {exc}")
    fail(f"{path}: the file is empty; expected a header line of column names")


def read_feature_csv(path: Path, feature_names: list[str], target: str | None = None
                     ) -> tuple[numpy.ndarray, numpy.ndarray | None, dict[str, numpy.ndarray]]:
    """The model's feature columns of a CSV file with a header, matched by name, and the file's other columns.

    Returns ``(X, target_cells, others)``: ``X`` float64 of shape ``(n_rows, len(feature_names))`` with the
    columns in the order of ``feature_names`` (wherever they stand in the file); the target column's cells
    (stripped strings), or None when ``target`` is None; ``others``: every other column of the file, name ->
    stripped strings, in file order (never parsed). A missing feature or target column is refused by name.
    """
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for record in reader:
                if not record or not any(c.strip() for c in record):
                    continue
                if header is None:
                    header = [c.strip() for c in record]
                    continue
                if len(record) != len(header):
                    fail(f"{path} line {reader.line_num}: expected {len(header)} fields as in the header, got {len(record)}")
                rows.append(record)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if header is None:
        fail(f"{path}: the file is empty; expected a header line of column names")
    wanted = [*feature_names, *([target] if target is not None else [])]
    missing = [n for n in feature_names if n not in header]
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        fail(f"{path}: the model's feature column(s) {shown} are missing (columns are matched by name); the file has "
             f"columns {', '.join(header[:10])}" + (" ..." if len(header) > 10 else ""))
    if target is not None and target not in header:
        fail(f"{path}: no target column {target!r}; the file has columns {', '.join(header[:10])}"
             + (" ..." if len(header) > 10 else ""))
    dup = sorted({n for n in wanted if header.count(n) > 1})
    if dup:
        fail(f"{path}: the column name(s) {', '.join(dup)} appear more than once in the header")
    if not rows:
        fail(f"{path}: no data rows after the header line")
    cells = numpy.char.strip(numpy.array(rows, dtype=str).reshape(len(rows), len(header)))
    cols = [header.index(n) for n in feature_names]
    raw = cells[:, cols]
    try:
        X = raw.astype(numpy.float64)
        ok = bool(numpy.isfinite(X).all())
    except ValueError:
        ok = False
    if not ok:  # the error path only: find the first bad cell
        for i in range(raw.shape[0]):
            for j in range(raw.shape[1]):
                cell = str(raw[i, j])
                try:
                    good = bool(numpy.isfinite(float(cell)))
                except ValueError:
                    good = False
                if not good:
                    what = "missing or non-finite value" if cell == "" or cell.lower() in (
                        "nan", "na", "null", "none", "inf", "-inf", "+inf", "infinity") else f"{cell!r} is not a number"
                    fail(f"{path} line {lines[i]}, column {feature_names[j]!r}: {what}")
    used = set(wanted)
    others = {h: cells[:, j] for j, h in enumerate(header) if h not in used}
    target_cells = cells[:, header.index(target)] if target is not None else None
    return X, target_cells, others
