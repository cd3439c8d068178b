"""scikit-learn's MLPClassifier (Adam) against deltanet's Trainer (Adam + batch norm + dropout) on Fashion-sized data.

    python benchmarks/bench_fashion_sized.py [--epochs 15] [--rows 60000]

60,000 x 784 synthetic float32 rows (Fashion-MNIST's size), 10 classes, hidden
layers 512 and 256, batch 128, 15 epochs, lr 1e-3, both on the same BLAS
threads. scikit-learn: ``MLPClassifier(solver="adam", max_iter=15,
n_iter_no_change=15, tol=0)`` (no early stop, float32 input); deltanet:
``Trainer`` with Adam, ``mlp(..., batch_norm=True, dropout=0.2)``. Prints both
fit times and their ratio (the performance issue's target: deltanet <= 0.5x).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--rows", type=int, default=60_000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.rows)

    import deltanet as dn
    from deltanet.training import Trainer

    net = dn.mlp([784, 512, 256, 10], batch_norm=True, dropout=0.2, rng=0, dtype="float32")
    trainer = Trainer(net, optimizer="adam", lr=1e-3, batch_size=128, epochs=args.epochs, seed=0)
    t0 = time.perf_counter()
    trainer.fit(x, y)
    deltanet_s = time.perf_counter() - t0

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(512, 256), solver="adam", learning_rate_init=1e-3, batch_size=128,
                        max_iter=args.epochs, n_iter_no_change=args.epochs, tol=0.0, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    sklearn_s = time.perf_counter() - t0
    print(f"{args.rows} x 784, 512-256, {args.epochs} epochs, batch 128: scikit-learn MLPClassifier (adam) {sklearn_s:.1f} s, "
          f"deltanet Trainer (adam + batch norm + dropout 0.2) {deltanet_s:.1f} s, ratio {deltanet_s / sklearn_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
