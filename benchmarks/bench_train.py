"""Training and inference speed of deltanet against the matrix-product floor, PyTorch and scikit-learn.

Run from the repository root::

    python benchmarks/bench_train.py            # the full table (about 10-20 minutes on 2 cores)
    python benchmarks/bench_train.py --quick    # seconds: tiny shapes, one repeat (the CI smoke test)

Every measurement runs in a fresh process (``benchmarks/_workers.py``); the
frameworks alternate within each repeat (the order rotates from repeat to
repeat) so that a slow spell of the machine hits all of them; the table
reports medians over the repeats and ratios of those medians, all measured
in this one run. The floor is the time of just the matrix products an MLP of
the same shapes needs (see ``_workers.py``). Results are printed as markdown
and written to ``<out>/train_bench.md`` and ``<out>/train_bench.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_workers.py"
FRAMEWORKS = ("floor", "floor-F", "torch-floor", "deltanet", "deltanet-trainer", "deltanet-command", "deltanet-numpy",
              "deltanet-trainer-numpy", "deltanet-ref", "deltanet-trainer-ref", "torch", "sklearn")
#: deltanet's rows again without the compiled kernels (``-numpy``: ``DELTANET_KERNELS=numpy``) and with the whole
#: fast path off (``-ref``: ``DELTANET_FAST=0``, the reference path alone); only on request.
REFERENCE_FRAMEWORKS = ("deltanet-numpy", "deltanet-trainer-numpy", "deltanet-ref", "deltanet-trainer-ref")
COMPARED = ("deltanet", "deltanet-trainer", "deltanet-command", "torch", "sklearn")
#: (numerator, denominator) of every ratio reported, in table order. torch-floor/floor compares the two
#: BLAS libraries on the same products; torch/torch-floor is PyTorch's overhead over its own BLAS;
#: floor-F/floor is what the column-major layout gains on the same products, and deltanet/floor-F is
#: deltanet's overhead over the products it actually runs.
RATIOS = (*((fw, "floor") for fw in COMPARED), ("floor-F", "floor"), ("deltanet", "floor-F"), ("deltanet-trainer", "floor-F"),
          ("deltanet-command", "floor-F"), ("torch-floor", "floor"), ("torch", "torch-floor"),
          ("deltanet", "torch"), ("deltanet", "sklearn"), ("deltanet-trainer", "torch"), ("deltanet-trainer", "sklearn"),
          ("deltanet-command", "torch"), ("deltanet", "deltanet-numpy"), ("deltanet-trainer", "deltanet-trainer-numpy"), ("deltanet", "deltanet-ref"),
          ("deltanet-trainer", "deltanet-trainer-ref"))

#: Training recipes as users run them (the rows with a ``recipe``): deltanet-trainer is the Trainer with its
#: defaults, deltanet-command is ``deltanet train`` itself, torch the same recipe. The plain SGD loop ("deltanet")
#: and scikit-learn (no dropout) have no such rows. ``default`` is the command's default job (its digits-sized
#: network, on 10x the rows so that an epoch is long enough to time); ``mnist`` is examples/mnist_mlp.toml.
RECIPES: dict[str, dict[str, Any]] = {
    # the performance issue's recipes: the Trainer with its defaults and Adam; then with batch norm and dropout
    "adam": {"optimizer": "adam", "lr": 1e-3, "l2": 0.0, "dropout": 0.0, "schedule": None, "val_fraction": 0.0},
    "adam-bn-dropout": {"optimizer": "adam", "lr": 1e-3, "l2": 0.0, "dropout": 0.2, "batch_norm": True, "schedule": None,
                        "val_fraction": 0.0},
    "default": {"optimizer": "adam", "lr": 0.003, "l2": 1e-4, "dropout": 0.2, "schedule": "cosine", "val_fraction": 0.1},
    "mnist": {"optimizer": "adam", "lr": 1e-3, "l2": 1e-4, "dropout": 0.3, "schedule": "cosine", "val_fraction": 0.1},
}
NOT_FOR_RECIPES = ("deltanet", "deltanet-numpy", "deltanet-ref", "sklearn")


@dataclass(frozen=True)
class Case:
    """One row: a network, a batch size and a sample count, with the issue's targets for deltanet."""

    name: str
    sizes: tuple[int, ...]
    n_samples: int
    batch: int
    mode: str = "train"                      # "train" (one epoch) or "predict" (forward over n_samples)
    epochs: int = 1                          # timed epochs per process at least (short epochs need several)
    recipe: str | None = None                # a key of RECIPES: the recipe rows; None: SGD with momentum 0.9
    floor_target: float | None = None        # deltanet time / floor time
    torch_target: float | None = None        # deltanet time / PyTorch time
    sklearn_target: float | None = None      # deltanet time / scikit-learn time
    notes: list[str] = field(default_factory=list, compare=False)


MNIST = (784, 512, 256, 10)
DEEP = (100, 256, 256, 256, 256, 10)
DIGITS = (64, 32, 10)

FULL_CASES = [
    Case("784-512-256-10", MNIST, 60_000, 32, floor_target=1.35, torch_target=0.8, sklearn_target=0.5),
    Case("784-512-256-10", MNIST, 60_000, 128, floor_target=1.15, torch_target=0.8, sklearn_target=0.5),
    Case("784-512-256-10", MNIST, 60_000, 512, floor_target=1.15, sklearn_target=0.5),
    # an epoch of the floor takes ~15 ms here: 20 timed epochs per process keep one slow moment from deciding the row
    Case("64-32-10 (digits-sized)", DIGITS, 17_970, 32, epochs=20, floor_target=3.0, torch_target=0.8, sklearn_target=0.5),
    Case("100-256-256-256-256-10", DEEP, 60_000, 128, floor_target=1.15, torch_target=0.8, sklearn_target=0.5),
    Case("784-512-256-10 (Adam)", MNIST, 60_000, 128, recipe="adam", floor_target=1.2, torch_target=0.5),
    Case("784-512-256-10 (Adam + BN + dropout)", MNIST, 60_000, 128, recipe="adam-bn-dropout", floor_target=1.4,
         torch_target=0.5),
    # what users run: the MNIST recipe of examples/ (issue target: the command within 1.5x the floor, 2x ahead of
    # PyTorch) and the command's default job; n_samples counts training + validation rows, the floor the training rows
    Case("784-1024-1024-10 (MNIST recipe)", (784, 1024, 1024, 10), 60_000, 128, recipe="mnist", floor_target=1.5,
         torch_target=0.5),
    Case("64-256-128-10 (default job)", (64, 256, 128, 10), 17_970, 64, epochs=5, recipe="default", floor_target=3.0,
         torch_target=0.5),
    Case("784-512-256-10", MNIST, 10_000, 1024, mode="predict", floor_target=1.1),
    Case("100-256-256-256-256-10", DEEP, 10_000, 1024, mode="predict", floor_target=1.1),
]

QUICK_CASES = [
    Case("20-16-16-10", (20, 16, 16, 10), 500, 64, floor_target=1.15, torch_target=0.8, sklearn_target=0.5),
    Case("20-16-16-10 (default job)", (20, 16, 16, 10), 500, 64, recipe="default"),
    Case("20-16-16-10", (20, 16, 16, 10), 500, 128, mode="predict", floor_target=1.1),
]


def available_frameworks() -> list[str]:
    """The frameworks this machine can run: the floor and deltanet always, the others when installed."""
    found = ["floor", "floor-F", "deltanet", "deltanet-numpy", "deltanet-ref"]
    try:
        if hasattr(importlib.import_module("deltanet.training"), "Trainer"):
            found += ["deltanet-trainer", "deltanet-command", "deltanet-trainer-numpy", "deltanet-trainer-ref"]
    except ImportError:
        pass
    if importlib.util.find_spec("torch") is not None:
        found[2:2] = ["torch-floor"]
        found.append("torch")
    if importlib.util.find_spec("sklearn") is not None:
        found.append("sklearn")
    return found


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a worker: every BLAS/OpenMP pool limited to ``threads``."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_worker(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process; return its JSON, or ``{"error": ...}``."""
    try:
        proc = subprocess.run([sys.executable, str(WORKER), json.dumps(spec)], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def measure(cases: list[Case], frameworks: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run every case: ``repeats`` rounds, each running every framework once, in a rotating order."""
    env = worker_env(args.threads)
    rows = []
    for case in cases:
        recipe = RECIPES[case.recipe] if case.recipe else None
        fws = [f for f in frameworks if not (recipe and f in NOT_FOR_RECIPES) and (recipe or f != "deltanet-command")]
        if recipe and not any(f in fws for f in ("deltanet-trainer", "deltanet-command")):
            continue                                  # a recipe row needs one of the frameworks that run recipes
        runs: dict[str, list[dict[str, Any]]] = {f: [] for f in fws}
        for rep in range(args.repeats):
            order = fws[rep % len(fws):] + fws[: rep % len(fws)]
            for fw in order:
                n = case.n_samples
                if recipe and "floor" in fw:                  # the products of the training rows only
                    n -= round(n * recipe.get("val_fraction", 0.0))
                spec = {"framework": fw, "mode": case.mode, "sizes": list(case.sizes), "batch": case.batch,
                        "n_samples": n, "dtype": args.dtype, "threads": args.threads, "seed": rep,
                        "epochs": max(args.epochs, case.epochs) if case.mode == "train" else args.predict_repeats,
                        "warmup": args.warmup, "lr": 0.01, "momentum": 0.9, "recipe": recipe}
                result = run_worker(spec, env, args.timeout)
                runs[fw].append(result)
                if args.verbose:
                    shown = result.get("error") or " ".join(f"{t:.3f}" for t in result["times"])
                    print(f"  {case.name} {case.mode} b={case.batch} rep {rep} {fw}: {shown}", file=sys.stderr, flush=True)
        rows.append(summarize(case, runs, args.dtype))
    return rows


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(case: Case, runs: dict[str, list[dict[str, Any]]], dtype: str) -> dict[str, Any]:
    """Medians per framework (over every timed epoch of every repeat), ratios and memory for one case."""
    itemsize = 8 if dtype == "float64" else 4
    sizes = case.sizes
    row: dict[str, Any] = {"case": asdict(case), "times": {}, "spread": {}, "memory": {}, "errors": {}, "blas": {}}
    for fw, results in runs.items():
        ok = [r for r in results if "error" not in r]
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            row["errors"][fw] = errors
        times = [t for r in ok for t in r["times"]]
        if not times:
            continue
        # the minimum seconds per pass in a process for predict (it repeats within the process), every epoch for train
        per_run = [min(r["times"]) for r in ok] if case.mode == "predict" else times
        row["times"][fw] = _median(per_run)
        row["spread"][fw] = [min(per_run), max(per_run)]
        row["memory"][fw] = {"peak_delta_mb": _median([r["peak_delta_mb"] for r in ok]),
                             "peak_rss_mb": _median([r["peak_rss_mb"] for r in ok])}
        row["blas"][fw] = ok[0].get("blas", [])
        if fw == "deltanet-command":                  # the whole command: data, splits, epochs, model, report
            row["command_seconds"] = _median([r["command_seconds"] for r in ok])
    t = row["times"]
    row["ratios"] = {f"{a}/{b}": t[a] / t[b] for a, b in RATIOS if a in t and b in t}
    n_params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    row["sizes_mb"] = {
        "data": case.n_samples * (sizes[0] * itemsize + 8) / 2**20,
        "parameters": n_params * itemsize / 2**20,
        # input + pre- and post-activation of every layer, for one batch
        "batch_activations": case.batch * (sizes[0] + 2 * sum(sizes[1:])) * itemsize / 2**20,
    }
    return row


# -- report ---------------------------------------------------------------------------
def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _seconds(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _ratio_cell(v: float | None, target: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" + ("" if target is None else (" ok" if v <= target else " MISS"))


def environment(frameworks: list[str], rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                            "processor": _cpu_model(), "threads": args.threads, "dtype": args.dtype,
                            "repeats": args.repeats, "epochs_per_process": args.epochs,
                            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"), "frameworks": frameworks}
    info["load_average"] = _load_average()
    for mod in ("numpy", "deltanet", "torch", "sklearn"):
        try:
            info[f"{mod}_version"] = importlib.import_module(mod).__version__ if mod in ("numpy", "deltanet") \
                else _dist_version(mod)
        except Exception:  # a missing or broken package is only reported
            info[f"{mod}_version"] = None
    blas = {}
    for row in rows:
        for fw, libs in row["blas"].items():
            blas.setdefault(fw, [f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture', '?')}, "
                                 f"{lib.get('num_threads')} threads)" for lib in libs])
    info["blas"] = blas
    return info


def _load_average() -> float | None:
    """The 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # pragma: no cover - not on Linux/macOS
        return None


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version({"sklearn": "scikit-learn"}.get(name, name))
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor()


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], frameworks: list[str]) -> str:
    lines = ["# deltanet training benchmark", "", f"Command: `{env['command']}`", "",
             f"{env['processor']}, {env['cpus']} CPUs, {env['threads']} threads, {env['dtype']}, "
             f"median of {env['repeats']} processes x {env['epochs_per_process']} epoch(s)"
             + "".join(f" ({r['case']['name']}: x {r['case']['epochs']})" for r in rows
                       if r["case"]["mode"] == "train" and r["case"]["epochs"] > env["epochs_per_process"]) + "; "
             f"Python {env['python']}, NumPy {env['numpy_version']}, deltanet {env['deltanet_version']}, "
             f"PyTorch {env['torch_version']}, scikit-learn {env['sklearn_version']}; "
             f"1-minute load average before {_fmt(env.get('load_average_before'), 2)}, after {_fmt(env.get('load_average'), 2)} "
             "(anything above ~0.3 means other work shared the cores).", ""]
    lines.append("BLAS per framework (threadpoolctl): " + "; ".join(f"{fw}: {', '.join(v) or '?'}" for fw, v in env["blas"].items())
                 + f". OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}.")
    lines.append("")
    for mode, what in (("train", "Training: seconds per epoch of SGD (momentum 0.9; rows marked as a recipe: that "
                                 "recipe, see RECIPES in bench_train.py)"),
                       ("predict", "Inference: seconds to predict (forward pass, in chunks of `batch` rows; "
                                   "deltanet: `deltanet.predict`, deltanet-trainer: `net.forward` on each chunk)")):
        mrows = [r for r in rows if r["case"]["mode"] == mode]
        if not mrows:
            continue
        shown = [f for f in FRAMEWORKS if f in frameworks and any(f in r["times"] or f in r["errors"] for r in mrows)]
        head = ["network", "batch", "samples", *(f"{fw} s" for fw in shown)]
        lines += [f"## {what}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in mrows:
            c = r["case"]
            cells = [c["name"], str(c["batch"]), f"{c['n_samples']:,}", *(_seconds(r["times"].get(fw)) for fw in shown)]
            lines.append("| " + " | ".join(cells) + " |")
        ratio_cols = [f"{a}/{b}" for a, b in RATIOS if a in shown and b in shown]
        head = ["network", "batch", *ratio_cols]
        lines += ["", f"## {what.split(':')[0]}: ratios (of the medians above)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in mrows:
            c = r["case"]
            cells = [c["name"], str(c["batch"])]
            for col in ratio_cols:
                target = None
                # the targets apply to deltanet's plain loop and, in training, to its Trainer (the product's own path)
                if col.startswith("deltanet/") or (col.split("/")[0] in ("deltanet-trainer", "deltanet-command")
                                                   and c["mode"] == "train"):
                    target = {"floor": c["floor_target"], "torch": c["torch_target"], "sklearn": c["sklearn_target"]}.get(col.split("/")[1])
                cells.append(_ratio_cell(r["ratios"].get(col), target))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        walls = [(r["case"]["name"], r["case"]["batch"], r["command_seconds"]) for r in mrows if r.get("command_seconds")]
        if walls:
            lines += ["Whole `deltanet train` runs of the recipe rows (one untimed first epoch + the timed ones, data "
                      "loading, splits, model file and report included), seconds: "
                      + "; ".join(f"{n} batch {b}: {w:.1f}" for n, b, w in walls), ""]
    trows = [r for r in rows if r["case"]["mode"] == "train"]
    if trows:
        mem_fws = [f for f in ("deltanet", "deltanet-trainer", "torch", "sklearn") if f in frameworks]
        head = ["network", "batch", "data", "parameters", "1 batch activations",
                *(f"{fw} peak-before" for fw in mem_fws), *(f"{fw} peak" for fw in mem_fws)]
        lines += ["## Memory during training (MiB)", "",
                  "`peak-before`: peak resident memory of the worker process minus its resident memory after loading "
                  "the data and importing the framework (model, buffers and training); `peak`: absolute peak. "
                  "Activations: input + pre- and post-activation of every layer for one batch.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in trows:
            c, s = r["case"], r["sizes_mb"]
            cells = [c["name"], str(c["batch"]), _fmt(s["data"], 1), _fmt(s["parameters"], 2), _fmt(s["batch_activations"], 2)]
            cells += [_fmt(r["memory"].get(fw, {}).get("peak_delta_mb"), 1) for fw in mem_fws]
            cells += [_fmt(r["memory"].get(fw, {}).get("peak_rss_mb"), 1) for fw in mem_fws]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    errors = [(r["case"]["name"], r["case"]["batch"], fw, e) for r in rows for fw, es in r["errors"].items() for e in es]
    if errors:
        lines += ["## Errors", ""] + [f"- {n} batch {b} {fw}: {e}" for n, b, fw, e in errors] + [""]
    lines.append("`ok`/`MISS`: deltanet's ratio (plain loop, and in training the `Trainer`) against the issue's target "
                 "for that row.")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny shapes and one repeat: a seconds-long smoke run")
    p.add_argument("--repeats", type=int, default=None, help="processes per framework and row (default 5; 1 with --quick)")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per training process (default 1)")
    p.add_argument("--predict-repeats", type=int, default=20, help="timed passes per inference process; the fastest counts")
    p.add_argument("--warmup", type=int, default=20, help="batches run before timing (default 20)")
    p.add_argument("--threads", type=int, default=2, help="BLAS / PyTorch threads (default 2)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--frameworks", default=None,
                   help=f"comma-separated subset of {','.join(FRAMEWORKS)} (default: every one installed)")
    p.add_argument("--cases", default=None, help="only rows whose network name contains one of these comma-separated strings")
    p.add_argument("--mode", choices=("train", "predict", "all"), default="all")
    p.add_argument("--samples", type=int, default=None, help="override the sample count of every row (short trial runs)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before a worker is abandoned")
    p.add_argument("--out", type=Path, default=HERE / "results", help="folder for train_bench.md and train_bench.json")
    p.add_argument("-v", "--verbose", action="store_true", help="print every measurement to stderr as it comes")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    for name in ("repeats", "epochs", "predict_repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.quick:
        args.warmup = min(args.warmup, 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    installed = available_frameworks()
    if args.frameworks:
        wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        unknown = [f for f in wanted if f not in FRAMEWORKS]
        if unknown:
            print(f"bench_train: unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}", file=sys.stderr)
            return 2
        missing = [f for f in wanted if f not in installed]
        if missing:
            print(f"bench_train: not installed, skipped: {', '.join(missing)}", file=sys.stderr)
        frameworks = [f for f in FRAMEWORKS if f in wanted and f in installed]
    else:
        frameworks = [f for f in installed if f not in REFERENCE_FRAMEWORKS]
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.mode != "all":
        cases = [c for c in cases if c.mode == args.mode]
    if args.cases:
        keys = [k.strip() for k in args.cases.split(",")]
        cases = [c for c in cases if any(k in c.name for k in keys)]
    if args.samples:
        cases = [Case(**{**asdict(c), "n_samples": args.samples}) for c in cases]
    if not cases:
        print("bench_train: no rows selected", file=sys.stderr)
        return 2
    load_before = _load_average()
    if load_before is not None and load_before > 0.5 and not args.quick:
        print(f"bench_train: the machine is busy (load average {load_before:.2f}); timings with several threads suffer "
              "most from other work on the cores: run the table on a quiet machine", file=sys.stderr)
    start = time.perf_counter()
    rows = measure(cases, frameworks, args)
    env = environment(frameworks, rows, args)
    env["wall_seconds"] = time.perf_counter() - start
    env["load_average_before"] = load_before
    env["command"] = " ".join(["python", "benchmarks/bench_train.py", *(argv if argv is not None else sys.argv[1:])])
    text = markdown(rows, env, frameworks)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_bench.md").write_text(text)
    (args.out / "train_bench.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out / 'train_bench.md'} and train_bench.json ({env['wall_seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
