"""Vanishing gradients in a deep sigmoid MLP, and how skip connections fix them.

Two networks with the same 20 sigmoid layers of width 32 on the three-arm
spiral (``deltanet.data.make_spiral``):

- plain:    h_l = sigma(W_l h_{l-1} + b_l), l = 1..20
- residual: the same layers, with the reference's skip connection
            h_l = sigma(W_l h_{l-1} + b_l) + h_{l-2} after every second layer
            (``Residual(Sequential(Linear, Sigmoid, Linear, Sigmoid))``; the
            first block maps 2 -> 32 and takes a ``Linear(2, 32)`` projection
            on its skip path).

Both start from the same weights (Xavier normal, same seed) and are trained
with the same optimizer (the reference's plain mini-batch gradient descent
with momentum) for the same number of epochs. The script measures

1. the L2 norm of dL/dW_l for every layer at initialization (full data set),
2. the training loss and accuracy, epoch by epoch, and the test accuracy,

prints them, and draws ``benchmarks/results/depth_demo.png`` (and writes the
numbers to ``depth_demo.json`` next to it). Run from the repository root::

    python benchmarks/depth_demo.py            # about half a minute on one core
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet.data.synthetic import make_spiral
from deltanet.optim import SGD

HERE = Path(__file__).resolve().parent
DEPTH = 20          # sigmoid layers
WIDTH = 32


def build(residual: bool, seed: int) -> tuple[dn.Sequential, list[dn.Linear]]:
    """The network and its ``DEPTH`` hidden Linear layers, in order (the same weights for either kind)."""
    gen = np.random.default_rng(seed)
    hidden = [dn.Linear(2 if i == 0 else WIDTH, WIDTH, init="xavier", rng=gen) for i in range(DEPTH)]
    head = dn.Linear(WIDTH, 3, init="xavier", rng=gen)
    if not residual:
        layers: list[dn.Module] = [m for lin in hidden for m in (lin, dn.Sigmoid())]
    else:
        projection = dn.Linear(2, WIDTH, bias=False, init="xavier", rng=gen)
        layers = [dn.Residual(dn.Sequential(hidden[i], dn.Sigmoid(), hidden[i + 1], dn.Sigmoid()),
                              projection if i == 0 else None) for i in range(0, DEPTH, 2)]
    return dn.Sequential(*layers, head), hidden


def grad_norms_at_init(net: dn.Module, hidden: list[dn.Linear], x: np.ndarray, y: np.ndarray) -> list[float]:
    """||dL/dW_l||_2 for l = 1..DEPTH from one forward/backward pass over all of x."""
    loss = dn.SoftmaxCrossEntropy()
    net.zero_grad()
    loss.forward(net.forward(x, training=True), y)
    net.backward(loss.backward())
    return [float(np.linalg.norm(lin.weight.grad)) for lin in hidden]


def train(net: dn.Module, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, *, epochs: int,
          lr: float, batch_size: int, seed: int) -> dict[str, list[float]]:
    opt = SGD(net.parameters(), lr=lr, momentum=0.9)
    loss_fn = dn.SoftmaxCrossEntropy()
    order = np.random.default_rng(seed)
    curves: dict[str, list[float]] = {"loss": [], "accuracy": [], "test_accuracy": []}
    for _ in range(epochs):
        idx = order.permutation(len(x))
        total = 0.0
        for i in range(0, len(x), batch_size):
            b = idx[i:i + batch_size]
            net.zero_grad()
            total += loss_fn.forward(net.forward(x[b], training=True), y[b]) * len(b)
            net.backward(loss_fn.backward())
            opt.step()
        curves["loss"].append(total / len(x))
        curves["accuracy"].append(float((net.forward(x).argmax(1) == y).mean()))
        curves["test_accuracy"].append(float((net.forward(x_test).argmax(1) == y_test).mean()))
    return curves


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "tab:red", "residual": "tab:blue"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    for name, r in results.items():
        ax.semilogy(range(1, DEPTH + 1), r["grad_norms"], "o-", color=colors[name], label=name)
    ax.set_xlabel("layer l (1 = next to the input)")
    ax.set_ylabel("||dL/dW_l|| at initialization")
    ax.set_title(f"Gradient norm per layer, {DEPTH} sigmoid layers")
    ax.set_xticks(range(1, DEPTH + 1, 2))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax = axes[1]
    for name, r in results.items():
        ax.semilogy(range(1, len(r["loss"]) + 1), r["loss"], color=colors[name], label=name)
    ax.axhline(np.log(3), color="gray", ls=":", label="chance: log 3")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy, epoch mean)")
    ax.set_title("Training loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax = axes[2]
    for name, r in results.items():
        ax.plot(range(1, len(r["accuracy"]) + 1), r["accuracy"], color=colors[name], label=f"{name}, train")
        ax.plot(range(1, len(r["test_accuracy"]) + 1), r["test_accuracy"], color=colors[name], ls="--", label=f"{name}, test")
    ax.axhline(1 / 3, color="gray", ls=":", label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Accuracy (3-arm spiral)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("Plain vs residual (h_l = sigma(W_l h_{l-1} + b_l) + h_{l-2}) deep sigmoid MLP: "
                 "same layers, same init, SGD + momentum")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    x_all, y_all = make_spiral(n_samples=900, n_classes=3, noise=0.2, seed=args.seed)
    x_all = ((x_all - x_all.mean(0)) / x_all.std(0)).astype(np.float32)
    x, y, x_test, y_test = x_all[:600], y_all[:600], x_all[600:], y_all[600:]
    results: dict[str, dict] = {}
    for name in ("plain", "residual"):
        net, hidden = build(name == "residual", args.seed)
        norms = grad_norms_at_init(net, hidden, x, y)
        start = time.perf_counter()
        curves = train(net, x, y, x_test, y_test, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
        results[name] = {"grad_norms": norms, **curves, "seconds": time.perf_counter() - start}

    print(f"{'layer':>5}  {'plain ||dW||':>13}  {'residual ||dW||':>15}")
    for l in range(DEPTH):
        print(f"{l + 1:>5}  {results['plain']['grad_norms'][l]:>13.3e}  {results['residual']['grad_norms'][l]:>15.3e}")
    for name, r in results.items():
        g = r["grad_norms"]
        print(f"{name:>8}: ||dW_1|| / ||dW_{DEPTH}|| = {g[0] / g[-1]:.2e}; after {args.epochs} epochs: "
              f"loss {r['loss'][-1]:.4f}, train accuracy {r['accuracy'][-1]:.3f}, test accuracy {r['test_accuracy'][-1]:.3f} "
              f"({r['seconds']:.1f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "depth_demo.png")
    record = {"args": {k: str(v) for k, v in vars(args).items()}, **results}
    (args.out / "depth_demo.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out / 'depth_demo.png'} and depth_demo.json")
    return results


if __name__ == "__main__":
    main()
