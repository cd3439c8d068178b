"""The GPU check: parity with the CPU and throughput against PyTorch CUDA eager, on one NVIDIA GPU.

Run by ``benchmarks/gpu_check.sh`` (which installs CuPy and PyTorch); under 8 minutes on a recent GPU.

1. Gradient parity, float64: the same network (784-64-32-10 with batch norm) on the CPU and on the GPU,
   one forward and backward; the largest relative difference of every gradient. Plus ``dn.gradcheck`` on
   the GPU (finite differences against the GPU's backward).
2. Training parity, float64: ``Trainer`` with the same seed on both devices, 3 epochs of Adam; the
   per-epoch training losses side by side.
3. Throughput, float32, samples per second of one training epoch (Adam, cross-entropy, ReLU): deltanet
   on the GPU against PyTorch CUDA eager, on 784-512-256-10 (batch 128 and 1024) and 4096-4096-4096-10
   (batch 1024). The floor is the cuBLAS time of the epoch's matrix products alone (``cupy.matmul`` of
   the same shapes: the forward products, the weight gradients, the input gradients but the first
   layer's), the time no framework can go under.

Results go to ``$OUT/gpu.md`` when ``OUT`` is set, else ``benchmarks/results/gpu.md``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import deltanet as dn
from deltanet import backend

LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


# -- 1. gradient parity -------------------------------------------------------------------------------------------
def gradient_parity() -> bool:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 784))
    y = rng.integers(0, 10, size=256)
    grads = {}
    for device in ("cpu", "cuda"):
        backend.select_device("cpu")
        model = dn.mlp([784, 64, 32, 10], batch_norm=True, rng=0, dtype="float64")
        model.to(device)
        xp = backend.xp
        loss = dn.get_loss("cross_entropy")
        out = model.forward(xp.asarray(X), training=True)
        loss.forward(out, xp.asarray(y))
        model.zero_grad()
        model.backward(loss.backward())
        grads[device] = {name: backend.to_numpy(p.grad).copy() for name, p in model.named_parameters()}
    worst = max(rel(grads["cpu"][k], grads["cuda"][k]) for k in grads["cpu"])
    say("## 1. Gradient parity (float64, 784-64-32-10 + batch norm, batch 256)")
    say("")
    say(f"largest relative difference CPU vs GPU over {len(grads['cpu'])} gradients: {worst:.2e}")
    backend.select_device("cpu")
    small = dn.mlp([6, 8, 4], batch_norm=True, rng=0, dtype="float64").to("cuda")
    result = dn.gradcheck(small, backend.xp.asarray(rng.standard_normal((8, 6))), training=True, raise_on_fail=False)
    say(f"dn.gradcheck on the GPU (6-8-4 + batch norm, training mode): worst relative error {result.worst:.2e}")
    say("")
    return worst < 1e-9 and result.passed


# -- 2. training parity -------------------------------------------------------------------------------------------
def training_parity() -> bool:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4096, 64))
    y = (X[:, :10].argmax(axis=1) + (X[:, 10] > 1)) % 10
    losses = {}
    for device in ("cpu", "cuda"):
        backend.select_device("cpu")
        model = dn.mlp([64, 128, 64, 10], rng=0, dtype="float64", dropout=0.1)
        trainer = dn.Trainer(model, optimizer="adam", lr=1e-3, batch_size=128, epochs=3, seed=0, device=device)
        history = trainer.fit(X, y)
        losses[device] = [r["train_loss"] for r in history.records]
    worst = max(abs(a - b) / abs(a) for a, b in zip(losses["cpu"], losses["cuda"], strict=True))
    say("## 2. Training parity (float64, 64-128-64-10 + dropout, Adam, 3 epochs, seed 0)")
    say("")
    say("| epoch | CPU train loss | GPU train loss |")
    say("|---|---|---|")
    for i, (a, b) in enumerate(zip(losses["cpu"], losses["cuda"], strict=True), 1):
        say(f"| {i} | {a:.10f} | {b:.10f} |")
    say("")
    say(f"largest relative difference: {worst:.2e}")
    say("")
    return worst < 1e-6


# -- 3. throughput ------------------------------------------------------------------------------------------------
def deltanet_epoch(sizes: list[int], batch: int, X: np.ndarray, y: np.ndarray, epochs: int = 3) -> float:
    backend.select_device("cpu")
    model = dn.mlp(sizes, rng=0, dtype="float32")
    trainer = dn.Trainer(model, optimizer="adam", lr=1e-3, batch_size=batch, epochs=epochs, seed=0,
                         record_layers=False, device="cuda")
    history = trainer.fit(X, y)
    return min(r["time"] for r in history.records[1:])          # the first epoch warms the kernels up


def torch_epoch(sizes: list[int], batch: int, X: np.ndarray, y: np.ndarray, epochs: int = 3) -> float:
    import torch

    dev = torch.device("cuda")
    layers: list = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
    n = Xt.shape[0]
    best = float("inf")
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        for s in range(0, n, batch):
            idx = perm[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def cublas_floor(sizes: list[int], batch: int, n: int) -> float:
    """The cuBLAS time of one epoch's products: per step, ``X W`` per layer, ``X^T G`` per layer and ``G W^T``
    for every layer but the first; timed with CUDA events over the epoch's steps."""
    import cupy

    rng = cupy.random.default_rng(0)
    steps = -(-n // batch)
    mats = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        x = rng.standard_normal((batch, a), dtype=cupy.float32)
        w = rng.standard_normal((a, b), dtype=cupy.float32)
        g = rng.standard_normal((batch, b), dtype=cupy.float32)
        mats.append((x, w, g, i > 0))

    def step() -> None:
        for x, w, g, input_grad in mats:
            cupy.matmul(x, w)
            cupy.matmul(x.T, g)
            if input_grad:
                cupy.matmul(g, w.T)

    for _ in range(3):
        step()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / 1000.0


def throughput() -> None:
    say("## 3. Throughput (float32, Adam, one training epoch, best of the epochs after the first)")
    say("")
    say("samples per second (higher is better); the floor is the cuBLAS time of the same products")
    say("")
    say("| network | batch | rows | deltanet (GPU) | PyTorch CUDA eager | cuBLAS floor | deltanet / floor |")
    say("|---|---|---|---|---|---|---|")
    for sizes, batch, n in (([784, 512, 256, 10], 128, 60_000), ([784, 512, 256, 10], 1024, 60_000),
                            ([4096, 4096, 4096, 10], 1024, 32_768)):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], size=n)
        t_dn = deltanet_epoch(sizes, batch, X, y)
        t_torch = torch_epoch(sizes, batch, X, y)
        t_floor = cublas_floor(sizes, batch, n)
        name = "-".join(map(str, sizes))
        say(f"| {name} | {batch} | {n} | {n / t_dn:,.0f} | {n / t_torch:,.0f} | {n / t_floor:,.0f} | {t_floor / t_dn:.2f} |")
    say("")


def main() -> int:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    say("# deltanet on the GPU")
    say("")
    say(f"GPU: {gpu}; CuPy {cupy.__version__}; PyTorch {torch_version}; NumPy {np.__version__}; "
        f"Python {platform.python_version()}")
    say("")
    start = time.perf_counter()
    ok = gradient_parity()
    ok = training_parity() and ok
    throughput()
    say(f"parity: {'passed' if ok else 'FAILED'}; total {time.perf_counter() - start:.0f} s")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.md").write_text("\n".join(LINES) + "\n")
    print(f"written: {out / 'gpu.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
