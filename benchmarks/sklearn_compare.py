"""deltanet.sklearn.MLPClassifier against scikit-learn's own MLPClassifier.

Same architecture, same solver settings (Adam, lr 1e-3, batches of 200,
alpha 1e-4, the same tol / n_iter_no_change rule), same data split, on
scikit-learn's digits and on MNIST. Reports test accuracy, fit time, epochs run,
time per epoch and the ratio of times per epoch, all measured in one run.

    python benchmarks/sklearn_compare.py                 # digits + MNIST
    python benchmarks/sklearn_compare.py --skip-mnist    # digits only
    python benchmarks/sklearn_compare.py --threads 2     # BLAS threads (default 1)

MNIST is read with :func:`deltanet.data.load_mnist` (set ``--mnist DIR`` or
the environment variables that function documents). Both libraries get the
same float32 MNIST arrays, so both compute in float32; on digits (float64
input) scikit-learn computes in float64 and deltanet in its float32 default
(a deltanet float64 row is shown as well). Timings on a shared machine are
noisy: compare the ratio, and rerun before drawing fine conclusions.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from typing import Any

import numpy as np

try:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLP
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits
except ImportError as exc:  # pragma: no cover - optional extras
    raise SystemExit(f"this benchmark needs scikit-learn and threadpoolctl: pip install deltanet[bench] ({exc})") from None

from deltanet.sklearn import MLPClassifier as DnMLP


def run(name: str, est: Any, X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, y_te: np.ndarray) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X_tr, y_tr)
        fit_s = time.perf_counter() - start
    return {"name": name, "accuracy": float(est.score(X_te, y_te)), "fit_s": fit_s, "epochs": int(est.n_iter_),
            "epoch_s": fit_s / est.n_iter_}


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds of one estimator: mean accuracy (and its spread), median times, mean epochs."""
    acc = np.array([r["accuracy"] for r in runs])
    return {"name": runs[0]["name"], "accuracy": float(acc.mean()), "accuracy_std": float(acc.std()),
            "fit_s": float(np.median([r["fit_s"] for r in runs])), "epochs": round(np.mean([r["epochs"] for r in runs])),
            "epoch_s": float(np.median([r["epoch_s"] for r in runs]))}


def report(title: str, rows: list[dict[str, Any]]) -> None:
    ref = rows[0]
    print(f"\n{title}")
    print(f"{'estimator':<34} {'test acc':>15} {'epochs':>6} {'fit s':>8} {'s/epoch':>9} {'epoch time / sklearn':>21}")
    for r in rows:
        ratio = r["epoch_s"] / ref["epoch_s"]
        acc = f"{r['accuracy']:.4f}" + (f" +- {r['accuracy_std']:.4f}" if "accuracy_std" in r else "")
        print(f"{r['name']:<34} {acc:>15} {r['epochs']:6d} {r['fit_s']:8.2f} {r['epoch_s']:9.4f} {ratio:21.2f}")


def digits_benchmark(seeds: list[int]) -> None:
    X, y = load_digits(return_X_y=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
        scaler = StandardScaler().fit(X_tr)
        X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        common = {"hidden_layer_sizes": (100,), "solver": "adam", "learning_rate_init": 1e-3, "batch_size": 200,
                  "alpha": 1e-4, "max_iter": 200, "random_state": seed}
        for name, est in [("sklearn MLPClassifier (float64)", SkMLP(**common)),
                          ("deltanet MLPClassifier (float32)", DnMLP(**common, dtype="float32")),
                          ("deltanet MLPClassifier (float64)", DnMLP(**common))]:   # dtype=None follows the data
            results.setdefault(name, []).append(run(name, est, X_tr, y_tr, X_te, y_te))
    report(f"digits: 1347 train / 450 test (stratified split), 64 -> 100 -> 10, Adam, batch 200, max_iter 200; "
           f"{len(seeds)} seeds (split and initialization): mean accuracy, median times", [combine(r) for r in results.values()])


def mnist_benchmark(seed: int, path: str | None, epochs: int) -> None:
    from deltanet.data import load_mnist

    X_tr, y_tr, X_te, y_te = load_mnist(path)           # float32 in [0, 1]
    common = {"hidden_layer_sizes": (256, 128), "solver": "adam", "learning_rate_init": 1e-3, "batch_size": 200,
              "alpha": 1e-4, "max_iter": epochs, "random_state": seed}
    rows = [
        run("sklearn MLPClassifier (float32)", SkMLP(**common), X_tr, y_tr, X_te, y_te),
        run("deltanet MLPClassifier (float32)", DnMLP(**common), X_tr, y_tr, X_te, y_te),
    ]
    report(f"MNIST: {len(X_tr)} train / {len(X_te)} test, 784 -> 256 -> 128 -> 10, Adam, batch 200, "
           f"max_iter {epochs}", rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both libraries (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="MNIST seed; digits uses seeds SEED..SEED+4")
    parser.add_argument("--mnist", default=os.environ.get("DELTANET_MNIST", "/work/shared/datasets/mnist"),
                        help="directory of the MNIST IDX files")
    parser.add_argument("--mnist-epochs", type=int, default=15)
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args(argv)
    import sklearn

    import deltanet

    print(f"deltanet {deltanet.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} BLAS thread(s)")
    with threadpool_limits(limits=args.threads):
        digits_benchmark(list(range(args.seed, args.seed + 5)))
        if not args.skip_mnist:
            mnist_benchmark(args.seed, args.mnist, args.mnist_epochs)


if __name__ == "__main__":
    main()
