"""``deltanet tune [CONFIG.toml] [options]``: a hyper-parameter search by successive halving.

Started by ``mpiexec -n N``, the trials of every rung are spread over the N
ranks (each trains whole trials, one BLAS thread pool of cores / N each) and
rank 0 writes the results; the search and its results are the same as in one
process.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import RunConfig, save_config
from ..tuning import best, grid_trials, random_trials, rungs, successive_halving
from ._common import add_config_options, apply_overrides, fail, info, plural
from ._pipeline import build_model, check_data, load_config_or_fail, load_data, make_trainer, n_outputs, resolve, split_and_scale

DESCRIPTION = """\
Search learning rate, depth, width, dropout and L2 over the course text's ranges (lr 0.001-0.1, 2-5 layers,
widths from d_l = sqrt(d_(l-1) d_(l+1)) or 64-512, lambda 0.0001-0.01; dropout 0-0.5) by successive halving:
every trial trains --min-epochs epochs, the best 1/eta by validation loss train eta times longer, and so on up
to --max-epochs. The other settings come from the configuration and options, as for 'deltanet train'. Writes
RUN_DIR/tune.csv (every trial of every rung), tune.md (the table), tune.json, tune.png (the plot) and best.toml
(the best trial's configuration: 'deltanet train RUN_DIR/best.toml' trains it). Under 'mpiexec -n N' the trials
are spread over the N processes."""

EPILOG = """\
examples:
  deltanet tune --data spiral --trials 27 --max-epochs 27
  deltanet tune --data digits --search grid --max-epochs 9
  mpiexec -n 2 deltanet tune --data digits --trials 27"""

#: The files a search writes into its run directory.
FILES = ("tune.csv", "tune.md", "tune.json", "tune.png", "best.toml")
COLUMNS = ("rung", "epochs", "id", "lr", "depth", "width", "dropout", "l2", "val_loss", "val_accuracy", "train_loss",
           "epochs_run", "stop_reason", "seconds", "rank")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="search hyper-parameters by successive halving", description=DESCRIPTION,
                       epilog=EPILOG)
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="a TOML configuration; default: the default job")
    add_config_options(p, ["model", "data", "train"])
    s = p.add_argument_group("search")
    s.add_argument("--search", choices=("random", "grid"), default="random",
                   help="random: --trials draws from the ranges; grid: 72 trials (lr 1e-3/1e-2/1e-1, 1-3 hidden layers, "
                   "the heuristic or 256 wide, dropout 0/0.3, l2 1e-4/1e-2)")
    s.add_argument("--trials", type=int, default=27, metavar="N", help="number of random trials")
    s.add_argument("--eta", type=int, default=3, metavar="K", help="keep the best 1/K of a rung, train them K times longer")
    s.add_argument("--min-epochs", type=int, default=1, metavar="N", help="epochs of the first rung")
    s.add_argument("--max-epochs", type=int, default=None, metavar="N", help="epochs of the last rung (default: [train] epochs)")
    out = p.add_argument_group("output")
    out.add_argument("--name", help="name of the run directory (default: the date and time, 20250131-142501)")
    out.add_argument("--out-dir", default="runs", metavar="DIR", help="where run directories are made")
    out.add_argument("--overwrite", action="store_true", help="reuse an existing run directory of the same --name")
    out.add_argument("--quiet", "-q", action="store_true", help="print only the best trial")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``deltanet tune``; started by ``mpiexec -n N`` (N > 1), the trials go over the N ranks."""
    from ._mpi import mpi_launched, run_on_ranks

    if mpi_launched():
        return run_on_ranks(_run, args)
    return _run(args, None) or 0


def _checked(args: argparse.Namespace, config: RunConfig) -> int:
    if args.trials < 1:
        fail(f"--trials must be >= 1, got {args.trials}")
    if args.eta < 2:
        fail(f"--eta must be >= 2, got {args.eta}")
    max_epochs = args.max_epochs if args.max_epochs is not None else config.train.epochs
    if not 1 <= args.min_epochs <= max_epochs:
        fail(f"need 1 <= --min-epochs <= --max-epochs, got {args.min_epochs} and {max_epochs}")
    if config.model.explicit:
        fail("deltanet tune varies the depth and widths of an MLP; this configuration lists its layers ([[model.layers]])")
    return max_epochs


def _run(args: argparse.Namespace, job: Any) -> int | None:
    from .train import make_run_dir, plan_run_dir

    start = time.perf_counter()
    root = job is None or job.is_root
    config = apply_overrides(load_config_or_fail(args.config), args)
    max_epochs = _checked(args, config)
    run_dir = plan_run_dir(args) if root else None
    ds = load_data(config.data)
    check_data(ds, config.data)
    parts, standardize = split_and_scale(ds, config.data)
    if not len(parts.X_val):
        fail("deltanet tune ranks the trials by their validation loss; set [data] val_fraction (--val-fraction) > 0")
    base = resolve(config, ds, standardize)
    n_in, n_out = ds.n_features, n_outputs(ds)
    trials = random_trials(args.trials, base.train.seed) if args.search == "random" else grid_trials()
    plan = rungs(len(trials), args.min_epochs, max_epochs, args.eta)
    info(args, f"data: {ds.name}: {len(parts.X_train)} training, {len(parts.X_val)} validation samples")
    info(args, f"search: {args.search}, {plural(len(trials), 'trial')}, successive halving eta {args.eta}: "
               + ", ".join(f"{n} x {plural(e, 'epoch')}" for n, e in plan)
               + (f"; trials spread over {job.dp.size} MPI ranks" if job is not None else ""))
    val = (parts.X_val, parts.y_val)
    rank = job.dp.rank if job is not None else 0

    def trial_config(trial: Any, epochs: int) -> RunConfig:
        hidden = None if trial.width is None else [trial.width] * trial.depth
        model = replace(base.model, hidden=hidden, layers=trial.depth if hidden is None else None,
                        dropout=trial.dropout).resolved(n_in, n_out)
        return RunConfig(model=model, data=base.data, train=replace(base.train, lr=trial.lr, l2=trial.l2, epochs=epochs))

    def evaluate(item: tuple[Any, int]) -> dict[str, Any]:
        trial, epochs = item
        cfg = trial_config(trial, epochs)
        trainer = make_trainer(cfg, build_model(cfg.model, n_in, n_out, cfg.train.seed), ds.task, progress=False)
        trainer.handle_interrupt = False           # Ctrl-C ends the search, not one trial
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # a diverged trial is a result (an infinite loss), not a warning
            history = trainer.fit(parts.X_train, parts.y_train, validation_data=val)
        last = history.records[-1] if history.records else {}
        return {"val_loss": _finite(last.get("val_loss")), "val_accuracy": last.get("val_accuracy"),
                "train_loss": _finite(last.get("train_loss")), "epochs_run": len(history),
                "stop_reason": history.stop_reason, "seconds": round(time.perf_counter() - t0, 3), "rank": rank}

    def run_rung(alive: list[Any], epochs: int) -> list[dict[str, Any]]:
        items = [(t, epochs) for t in alive]
        if job is None:
            return [evaluate(i) for i in items]
        from ..distributed import map_over_ranks

        return map_over_ranks(job.dp.comm, evaluate, items)

    def on_rung(k: int, epochs: int, rows: list[dict[str, Any]]) -> None:
        top = min(rows, key=lambda r: (r["val_loss"] if r["val_loss"] is not None else math.inf, r["id"]))
        info(args, f"rung {k}/{len(plan)}: {plural(len(rows), 'trial')} x {plural(epochs, 'epoch')}; best: trial "
                   f"{top['id']} ({_describe(top)}) val_loss {_fmt(top['val_loss'])}{_acc(top)}  "
                   f"[{time.perf_counter() - start:.1f} s]")

    results = successive_halving(trials, run_rung, min_epochs=args.min_epochs, max_epochs=max_epochs, eta=args.eta,
                                 on_rung=on_rung)
    if job is not None:
        job.trained = True
    if not root:
        return None
    winner = best(results)
    chosen = next(t for t in trials if t.id == winner["id"])
    run_dir = make_run_dir(run_dir)
    _write(run_dir, results, trial_config(chosen, max_epochs), args)
    print(f"best: trial {winner['id']} ({_describe(winner)}): val_loss {_fmt(winner['val_loss'])}{_acc(winner)} "
          f"after {plural(winner['epochs'], 'epoch')}")
    print(f"run directory: {run_dir}  ({plural(len(results), 'training run')}, {time.perf_counter() - start:.1f} s); "
          f"train the best: deltanet train {run_dir / 'best.toml'}")
    return 0


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _fmt(v: Any) -> str:
    return "diverged" if v is None else f"{v:.4g}"


def _acc(r: dict[str, Any]) -> str:
    return f", val_acc {100 * r['val_accuracy']:.2f}%" if r.get("val_accuracy") is not None else ""


def _describe(r: dict[str, Any]) -> str:
    width = "sqrt" if r["width"] is None else str(r["width"])
    return f"lr {r['lr']:.3g}, {r['depth']} x {width}, dropout {r['dropout']:.2f}, l2 {r['l2']:.2g}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown table: the last rung's trials first, each rung ranked by validation loss."""
    rows = sorted(results, key=lambda r: (-r["rung"], r["val_loss"] if r["val_loss"] is not None else math.inf, r["id"]))
    lines = ["| rung | epochs | trial | lr | hidden layers | width | dropout | l2 | val loss | val accuracy | seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        acc = f"{100 * r['val_accuracy']:.2f}%" if r.get("val_accuracy") is not None else ""
        width = "sqrt" if r["width"] is None else r["width"]
        lines.append(f"| {r['rung']} | {r['epochs']} | {r['id']} | {r['lr']:.3g} | {r['depth']} | {width} | "
                     f"{r['dropout']:.2f} | {r['l2']:.2g} | {_fmt(r['val_loss'])} | {acc} | {r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def _write(run_dir: Path, results: list[dict[str, Any]], best_config: RunConfig, args: argparse.Namespace) -> None:
    from ..io import atomic_write
    from ..report import figures

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLUMNS})
    with atomic_write(run_dir / "tune.csv", "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    with atomic_write(run_dir / "tune.json", "w", encoding="utf-8") as f:
        f.write(json.dumps({"search": args.search, "eta": args.eta, "results": results}, indent=1) + "\n")
    with atomic_write(run_dir / "tune.md", "w", encoding="utf-8") as f:
        f.write(f"# deltanet tune: {args.search} search, successive halving (eta {args.eta})\n\n" + table(results))
    save_config(best_config, run_dir / "best.toml")
    if figures.matplotlib_available():
        png = figures.to_png(figures.plot_tuning(results))
        with atomic_write(run_dir / "tune.png", "wb") as f:
            f.write(png)
    else:
        info(args, "deltanet: tune.png skipped: matplotlib is not installed (pip install 'deltanet[plot]')")


__all__ = ["add_parser", "run", "table"]
