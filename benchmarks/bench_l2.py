"""What the L2 term costs: the same Trainer run with ``l2=1e-4`` and ``l2=0``, epochs alternating, in one process.

    python benchmarks/bench_l2.py [--rows 20000] [--epochs 6]

784-1024-1024-10, Adam, dropout 0.3, batch 128, float32, synthetic data: the
MNIST recipe's shapes. Prints the median epoch time of each and their ratio.
With L2 the optimizer adds ``lambda W`` to the weight gradients (in its compiled
step) and the reported loss adds ``lambda/2 sum ||W||^2`` (one BLAS dot over the
flat weights per batch).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import deltanet as dn
from deltanet.training import Trainer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.rows)
    trainers = {}
    for l2 in (1e-4, 0.0):
        net = dn.mlp([784, 1024, 1024, 10], dropout=0.3, rng=0, dtype="float32")
        trainers[l2] = Trainer(net, optimizer="adam", lr=1e-3, l2=l2, batch_size=128, epochs=1, seed=0)
        trainers[l2].fit(x[:2560], y[:2560])                               # warm-up: kernels compiled, caches
    times: dict[float, list[float]] = {1e-4: [], 0.0: []}
    for _ in range(args.epochs):
        for l2, trainer in trainers.items():
            times[l2].append(trainer.fit(x, y, epochs=1).records[-1]["time"])
    on, off = statistics.median(times[1e-4]), statistics.median(times[0.0])
    print(f"784-1024-1024-10, {args.rows} rows, median of {args.epochs} epochs: L2 1e-4 {on:.3f} s, "
          f"L2 0 {off:.3f} s, ratio {on / off:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
