"""MNIST as sequences: each image is 28 rows of 28 pixels, read by a small Transformer encoder.

The model (``deltanet.transformer_classifier``)::

    Linear(28, d_model)                      each row of pixels -> one token
    PositionalEmbedding(28, d_model)         learned, one vector per row index
    n_blocks x TransformerEncoderBlock       pre-norm, n_heads heads, GELU MLP of width d_ff
    LayerNorm(d_model) -> MeanPool -> Linear(d_model, 10)

trained by ``deltanet.training.Trainer`` (Adam, cosine learning-rate schedule,
mini-batches of 128) on the 60000 training images; the 10000 test images are
scored after every epoch (no model selection: the reported accuracy is the last
epoch's). Prints one line per epoch and writes ``<out>/mnist_transformer.json``.

Run from the repository root::

    python benchmarks/mnist_transformer.py                 # the full run (minutes per epoch on one core)
    python benchmarks/mnist_transformer.py --quick         # seconds: 2000 images, one epoch (smoke test)

Data: the four gzipped IDX files in ``--data`` (default /work/shared/datasets/mnist,
or ``$DELTANET_MNIST``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

import deltanet as dn

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = os.environ.get("DELTANET_MNIST", "/work/shared/datasets/mnist")


def load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test), images as float32 (n, 28, 28) in [0, 1]."""
    try:
        from deltanet.data import load_mnist
    except ImportError:          # an older checkout: read the IDX files directly
        def read(name: str, offset: int) -> np.ndarray:
            with gzip.open(Path(path) / name, "rb") as f:
                return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)

        xtr = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28).astype(np.float32) / 255
        xte = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28).astype(np.float32) / 255
        ytr = read("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
        return xtr, ytr, xte, read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    xtr, ytr, xte, yte = load_mnist(path, flatten=False)
    return xtr.astype(np.float32), ytr, xte.astype(np.float32), yte


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--d-ff", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2000 training and 1000 test images, one epoch")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    from deltanet.training import Callback, Trainer

    x_train, y_train, x_test, y_test = load(args.data)
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train = (x_train - mean) / std                 # standardized pixels, (n, 28 rows, 28 columns)
    x_test = (x_test - mean) / std
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:1000], y_test[:1000]
        args.epochs = 1

    model = dn.transformer_classifier(28, 10, 28, d_model=args.d_model, n_heads=args.heads, d_ff=args.d_ff,
                                      n_blocks=args.blocks, rng=args.seed)
    print(f"model: {model.num_parameters()} parameters, {dn.count_flops(model, (1, 28, 28)) / 1e6:.1f} MFLOP per image (forward)")

    class EpochLine(Callback):
        def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
            print(f"epoch {epoch:2d}  lr {record['lr']:.2e}  train loss {record['train_loss']:.4f}  "
                  f"train acc {record['train_accuracy']:.4f}  test loss {record['val_loss']:.4f}  "
                  f"test acc {record['val_accuracy']:.4f}  {record['time']:.1f} s", flush=True)

    trainer = Trainer(model, loss="cross_entropy", optimizer="adam", lr=args.lr, schedule="cosine",
                      batch_size=args.batch_size, epochs=args.epochs, seed=args.seed, record_layers=False,
                      callbacks=[EpochLine()])
    start = time.perf_counter()
    history = trainer.fit(x_train, y_train, validation_data=(x_test, y_test))
    total = time.perf_counter() - start
    final = trainer.evaluate(x_test, y_test)
    times = history["time"]
    result = {
        "test_accuracy": float(final["accuracy"]), "test_loss": float(final["loss"]),
        "seconds_per_epoch": float(np.mean(times)), "seconds_per_epoch_each": [float(t) for t in times],
        "total_seconds": total, "epochs": args.epochs, "parameters": model.num_parameters(),
        "model": model.config(), "args": {k: str(v) for k, v in vars(args).items()},
        "history": history.to_dict(), "machine": f"{platform.machine()}, {os.cpu_count()} cpus, numpy {np.__version__}",
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }
    print(f"test accuracy {result['test_accuracy']:.4f} after {args.epochs} epochs; "
          f"{result['seconds_per_epoch']:.1f} s per epoch (train + test scoring), {total:.0f} s in all")
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mnist_transformer.json").write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
