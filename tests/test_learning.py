"""Small problems learned by the five plain steps: forward, loss, backward, update, repeat."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.optim import SGD


def spiral(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms in the plane, one per class."""
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    t = np.concatenate([np.linspace(4.0 * k, 4.0 * (k + 1), n_per_class) for k in range(n_classes)])
    t += rng.normal(0.0, noise, t.size)
    return np.c_[r * np.sin(t), r * np.cos(t)].astype(np.float32), np.repeat(np.arange(n_classes), n_per_class)


def accuracy(net: dn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return float((net.forward(x).argmax(axis=-1) == y).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_with_plain_gradient_descent(seed):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    net = dn.Sequential(dn.Linear(2, 8, init="xavier", rng=seed), dn.Tanh(), dn.Linear(8, 2, init="xavier", rng=seed + 10))
    loss_fn = dn.SoftmaxCrossEntropy()
    lr = 0.5
    initial = loss_fn.forward(net.forward(x), y)
    for _ in range(500):
        out = net.forward(x, training=True)          # 1. forward
        loss = loss_fn.forward(out, y)               # 2. loss
        net.zero_grad()
        net.backward(loss_fn.backward())             # 3. backward
        for p in net.parameters():                   # 4. update: W <- W - lr dL/dW
            p.value -= lr * p.grad
    assert accuracy(net, x, y) == 1.0
    assert loss < 0.05 < initial


def test_spiral_with_plain_gradient_descent():
    x, y = spiral(seed=0)
    net = dn.Sequential(dn.Linear(2, 64, rng=0), dn.ReLU(), dn.Linear(64, 64, rng=1), dn.ReLU(),
                        dn.Linear(64, 3, init="xavier", rng=2))
    loss_fn = dn.SoftmaxCrossEntropy()
    order = np.random.default_rng(0)
    assert accuracy(net, x, y) < 0.6
    for _ in range(150):
        idx = order.permutation(len(x))
        for start in range(0, len(x), 30):
            batch = idx[start:start + 30]
            out = net.forward(x[batch], training=True)
            loss_fn.forward(out, y[batch])
            net.zero_grad()
            net.backward(loss_fn.backward())
            for p in net.parameters():
                p.value -= 0.2 * p.grad
    assert accuracy(net, x, y) >= 0.97


def test_spiral_with_sgd_batchnorm_and_dropout():
    x, y = spiral(seed=1)
    net = dn.mlp([2, 64, 64, 3], activation="relu", batch_norm=True, dropout=0.05, rng=0)
    loss_fn = dn.SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    order = np.random.default_rng(1)
    for _ in range(100):
        idx = order.permutation(len(x))
        for start in range(0, len(x), 30):
            batch = idx[start:start + 30]
            out = net.forward(x[batch], training=True)
            loss_fn.forward(out, y[batch])
            opt.zero_grad()
            net.backward(loss_fn.backward())
            opt.step()
    assert accuracy(net, x, y) >= 0.97                # eval mode: running statistics, no dropout


def test_regression_with_mse_fits_a_smooth_function():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (200, 1)).astype(np.float32)
    t = np.sin(x)
    net = dn.Sequential(dn.Linear(1, 32, init="xavier", rng=0), dn.Tanh(), dn.Linear(32, 1, init="xavier", rng=1))
    loss_fn = dn.MeanSquaredError()
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
    first = loss_fn.forward(net.forward(x), t)
    for _ in range(400):
        loss = loss_fn.forward(net.forward(x, training=True), t)
        opt.zero_grad()
        net.backward(loss_fn.backward())
        opt.step()
    assert loss < 0.01 < first


def test_quickstart_example_runs_and_learns(capsys):
    path = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    runpy.run_path(str(path), run_name="__main__")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.search(r"training accuracy ([\d.]+)%$", last)
    assert match and float(match.group(1)) >= 97.0, last
