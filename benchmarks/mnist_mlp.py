"""MNIST with a 784-512-256-10 ReLU MLP, Adam and dropout: test accuracy and seconds per epoch.

Quality bar: >= 98.3 % test accuracy within 10 epochs.

    python benchmarks/mnist_mlp.py [--data DIR] [--epochs 10] [--threads N]

The test set is only measured after each epoch (outside the timed training);
it takes part in no decision (no early stopping, no model selection, a cosine
schedule that ignores metrics), so the last epoch's number is an honest test
accuracy.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

import deltanet as dn

DEFAULT_DATA = Path(os.environ.get("DELTANET_MNIST", "/work/shared/datasets/mnist"))


def read_idx_gz(path: Path) -> np.ndarray:
    """A gzipped IDX file as an array (big-endian header: magic, then one uint32 per dimension)."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from deltanet.data import load_mnist
    except ImportError:
        load_mnist = None
    if load_mnist is not None:
        return load_mnist(data)
    out = []
    for split in ("train", "t10k"):
        X = read_idx_gz(data / f"{split}-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
        y = read_idx_gz(data / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
        out += [X, y]
    return out[0], out[1], out[2], out[3]


class Report(dn.Callback):
    """Test accuracy after every epoch, measured outside the epoch's timed training."""

    def __init__(self, X_test: np.ndarray, y_test: np.ndarray) -> None:
        self.X_test, self.y_test = X_test, y_test
        self.rows: list[tuple[int, float, float, float, float]] = []
        self._cpu = 0.0

    def on_epoch_begin(self, trainer: dn.Trainer, epoch: int) -> None:
        self._cpu = time.process_time()

    def on_epoch_end(self, trainer: dn.Trainer, epoch: int, record: dict) -> None:
        cpu = time.process_time() - self._cpu          # CPU seconds of all threads: meaningful on a loaded machine
        acc = trainer.evaluate(self.X_test, self.y_test)["accuracy"]
        self.rows.append((epoch, record["time"], cpu, record["train_loss"], acc))
        print(f"epoch {epoch:2d}  train_loss {record['train_loss']:.4f}  train_acc {record['train_accuracy']:.4f}  "
              f"test_acc {acc:.4f}  lr {record['lr']:.2e}  {record['time']:.2f} s/epoch wall  {cpu:.2f} s CPU",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (threadpoolctl)")
    args = parser.parse_args(argv)

    if args.threads is not None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=args.threads)      # for the rest of the process

    t0 = time.perf_counter()
    X_train, y_train, X_test, y_test = load(args.data)
    print(f"loaded MNIST from {args.data} in {time.perf_counter() - t0:.1f} s: "
          f"train {X_train.shape}, test {X_test.shape}", flush=True)

    net = dn.mlp([784, 512, 256, 10], activation="relu", dropout=args.dropout, rng=args.seed)
    report = Report(X_test, y_test)
    trainer = dn.Trainer(net, loss="cross_entropy", optimizer="adam", lr=args.lr, schedule="cosine",
                         batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, callbacks=[report])
    history = trainer.fit(X_train, y_train)

    times = [r[1] for r in report.rows]
    cpu = [r[2] for r in report.rows]
    final = report.rows[-1][4]
    best = max(r[4] for r in report.rows)
    print(f"\nfinal test accuracy {final:.4f} (best epoch {best:.4f}); wall {np.mean(times):.2f} s/epoch mean, "
          f"{np.median(times):.2f} median; CPU {np.mean(cpu):.2f} s/epoch mean over {len(times)} epochs "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); stop: {history.stop_message}")
    print(f"quality bar (>= 0.983 within {args.epochs} epochs): {'PASS' if final >= 0.983 else 'FAIL'}")
    return 0 if final >= 0.983 else 1


if __name__ == "__main__":
    sys.exit(main())
