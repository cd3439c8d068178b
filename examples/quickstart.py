"""Quickstart: train a small network on three interleaved spirals with five plain calls per step.

    python examples/quickstart.py

The loop is the whole of backpropagation training:

1. ``out = net.forward(x, training=True)``   -- the forward pass, layer by layer
2. ``loss = loss_fn.forward(out, y)``         -- softmax + cross-entropy on the logits
3. ``net.backward(loss_fn.backward())``       -- the deltas, from the output layer back
4. ``optimizer.step()``                       -- W <- W - lr dL/dW for every parameter
5. repeat over mini-batches and epochs.
"""

from __future__ import annotations

import time

import numpy as np

import deltanet as dn
from deltanet.optim import SGD


def make_spirals(n_per_class: int = 200, n_classes: int = 3, noise: float = 0.2, seed: int = 0):
    """Points on ``n_classes`` interleaved spiral arms in the plane, one label per arm."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    angle = np.concatenate([np.linspace(4.0 * k, 4.0 * (k + 1), n_per_class) for k in range(n_classes)])
    angle += rng.normal(0.0, noise, angle.size)
    x = np.c_[radius * np.sin(angle), radius * np.cos(angle)].astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x, y


def main() -> None:
    x, y = make_spirals()
    net = dn.Sequential(
        dn.Linear(2, 64, init="he", rng=0), dn.ReLU(),
        dn.Linear(64, 64, init="he", rng=1), dn.ReLU(),
        dn.Linear(64, 3, init="xavier", rng=2),       # logits; the loss applies the softmax
    )
    loss_fn = dn.SoftmaxCrossEntropy()
    optimizer = SGD(net.parameters(), lr=0.1, momentum=0.9)
    order = np.random.default_rng(0)
    batch_size, epochs = 32, 60

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        idx = order.permutation(len(x))
        total = 0.0
        for first in range(0, len(x), batch_size):
            batch = idx[first:first + batch_size]
            out = net.forward(x[batch], training=True)        # 1. forward
            loss = loss_fn.forward(out, y[batch])             # 2. loss
            optimizer.zero_grad()
            net.backward(loss_fn.backward())                  # 3. backward
            optimizer.step()                                  # 4. update
            total += loss * len(batch)                        # 5. repeat
        if epoch % 10 == 0:
            accuracy = (net.forward(x).argmax(axis=1) == y).mean()
            print(f"epoch {epoch:3d}  loss {total / len(x):.4f}  training accuracy {accuracy:.1%}")

    accuracy = (net.forward(x).argmax(axis=1) == y).mean()
    print(f"trained {net.num_parameters()} parameters in {time.perf_counter() - start:.1f} s: "
          f"training accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
