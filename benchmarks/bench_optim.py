"""Time of one optimizer step on the parameters of a 784-512-256-10 MLP: fused (flat buffers) against per parameter.

Run from the repository root::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_optim.py            # the table (about a minute)
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_optim.py --chunks   # also the fused step per chunk size
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_optim.py --train    # also whole training batches
    python benchmarks/bench_optim.py --quick                           # seconds: a smoke test

"before" is ``fused=False`` (one update per parameter, the original path),
"after" is the default ``fused=True`` (one update per dtype over flat buffers,
in chunks of ``FusedStep.chunk_bytes``, deltanet.accel.fused). Both run in this one process and
alternate within every repeat (the order rotates from repeat to repeat), so a
slow spell of a shared machine hits all of them; each repeat runs one untimed
step (caches warm again, as in training) and times ``--steps`` steps one by
one, and the table gives the median over all timed steps. The floor is one ``value -= grad`` over all parameters
in one flat buffer: the cheapest possible update (one pass, no state).
Each variant works on its own copy of the parameters, with fixed random
gradients.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import deltanet as dn
from deltanet.optim import SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm

SIZES = (784, 512, 256, 10)
CONFIGS: list[tuple[str, type[Optimizer], dict[str, Any]]] = [
    ("SGD(momentum=0.9)", SGD, {"lr": 0.01, "momentum": 0.9}),
    ("SGD(momentum=0.9, nesterov, wd=1e-4)", SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}),
    ("Adam()", Adam, {"lr": 1e-3}),
    ("Adam(L2 1e-4)", Adam, {"lr": 1e-3, "weight_decay": 1e-4}),
    ("AdamW(wd=1e-2)", AdamW, {"lr": 1e-3}),
    ("RMSprop()", RMSprop, {"lr": 1e-3}),
    ("RMSprop(momentum=0.9)", RMSprop, {"lr": 1e-3, "momentum": 0.9}),
]
CHUNK_SIZES: list[int | None] = [1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, None]


def make_params(sizes: tuple[int, ...], seed: int = 0) -> list[dn.Parameter]:
    """The parameters of an MLP, float32, with fixed random gradients of a realistic scale."""
    params = dn.mlp(list(sizes), rng=seed, dtype="float32").parameters()
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = (rng.standard_normal(p.shape) * 1e-2).astype(np.float32)
    return params


def block(fn: Callable[[], Any], steps: int) -> Callable[[], list[float]]:
    """A callable that runs ``fn`` once untimed, then ``steps`` times timed; returns the seconds of each timed call.

    The untimed call brings this variant's arrays back into the caches after the
    other variants ran, as they are during training, where only a forward and a
    backward pass run between two steps.
    """
    def run() -> list[float]:
        fn()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    return run


def measure(variants: dict[str, Callable[[], list[float]]], repeats: int) -> dict[str, list[float]]:
    """Run every variant's block once per repeat, in an order rotating from repeat to repeat."""
    names = list(variants)
    for name in names:                                  # warm up: first-step state allocation
        variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name] += variants[name]()
    return times


def optimizer_variants(sizes: tuple[int, ...], steps: int, chunks: bool) -> dict[str, Callable[[], list[float]]]:
    variants: dict[str, Callable[[], list[float]]] = {}
    params = make_params(sizes)
    value = np.concatenate([p.value.ravel() for p in params])
    grad = np.concatenate([p.grad.ravel() for p in params])
    variants["floor"] = block(lambda: np.subtract(value, grad, out=value), steps)
    for label, cls, hyper in CONFIGS:
        for fused in (False, True):
            opt = cls(make_params(sizes), fused=fused, **hyper)
            variants[f"{label}|{'after' if fused else 'before'}"] = block(opt.step, steps)
        if chunks:
            for chunk in CHUNK_SIZES:
                opt = cls(make_params(sizes), **hyper)
                opt._engine.chunk_bytes = chunk
                opt._engine.regroup()                       # re-chunk with this size (same buffers)
                variants[f"{label}|chunk {chunk}"] = block(opt.step, steps)
    for fused in (False, True):
        ps = make_params(sizes)
        SGD(ps, fused=fused)                                 # flattens the parameters when fused
        variants[f"clip_grad_norm|{'after' if fused else 'before'}"] = block(lambda ps=ps: clip_grad_norm(ps, 1e9), steps)
    return variants


def train_variants(sizes: tuple[int, ...], batch: int, steps: int) -> dict[str, Callable[[], list[float]]]:
    """One training batch (forward, loss, zero_grad + backward, SGD(momentum=0.9) step), fused and not,
    and the matrix products alone (the floor of ``benchmarks/bench_train.py``)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch)
    variants: dict[str, Callable[[], list[float]]] = {}
    for fused in (False, True):
        net = dn.mlp(list(sizes), rng=0, dtype="float32")
        loss_fn = dn.SoftmaxCrossEntropy()
        opt = SGD(net.parameters(), lr=0.01, momentum=0.9, fused=fused)

        def batch_step(net: Any = net, loss_fn: Any = loss_fn, opt: Optimizer = opt) -> None:
            loss_fn.forward(net.forward(x, training=True), y)
            opt.zero_grad()
            net.backward(loss_fn.backward())
            opt.step()
        variants[f"train {batch}|{'after' if fused else 'before'}"] = block(batch_step, steps)
    ws = [rng.standard_normal((o, i)).astype(np.float32) for i, o in zip(sizes[:-1], sizes[1:], strict=True)]
    hs = [np.empty((batch, o), np.float32) for o in sizes[1:]]
    dws = [np.empty_like(w) for w in ws]
    dxs = [np.empty((batch, i), np.float32) for i in sizes[:-1]]

    def products() -> None:
        h = x
        for w, out in zip(ws, hs, strict=True):
            h = np.matmul(h, w.T, out=out)                    # forward
        for w, dw, dx, a, d in zip(ws[::-1], dws[::-1], dxs[::-1], [x, *hs[:-1]][::-1], hs[::-1], strict=True):
            np.matmul(d.T, a, out=dw)                         # dW = delta^T h_prev
            np.matmul(d, w, out=dx)                           # dh_prev = delta W
    variants[f"train {batch}|floor"] = block(products, steps)
    return variants


def report(times: dict[str, list[float]], chunks: bool) -> str:
    med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    floor = med["floor"]
    n = sum(p.size for p in make_params(SIZES))
    lines = [f"Optimizer step on the {'-'.join(map(str, SIZES))} parameters ({n:,} float32), median ms per step",
             f"(numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
             f"load average {os.getloadavg()[0]:.1f} at the end)", "",
             "| update | before (fused=False) | after (fused=True) | speed-up | after / floor |",
             "|---|---:|---:|---:|---:|",
             f"| floor `value -= grad` | | {floor:.3f} | | 1.00 |"]
    for label in [c[0] for c in CONFIGS] + ["clip_grad_norm"]:
        before, after = med[f"{label}|before"], med[f"{label}|after"]
        lines.append(f"| {label} | {before:.3f} | {after:.3f} | {before / after:.2f}x | {after / floor:.2f} |")
    batches = sorted({int(name.split("|")[0].split()[1]) for name in med if name.startswith("train ")})
    if batches:
        lines += ["", "One training batch, SGD(momentum=0.9) (forward, loss, zero_grad + backward, step), median ms", "",
                  "| batch | matrix products (floor) | before (fused=False) | after (fused=True) | before / floor | after / floor |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for b in batches:
            fl, before, after = (med[f"train {b}|{k}"] for k in ("floor", "before", "after"))
            lines.append(f"| {b} | {fl:.3f} | {before:.3f} | {after:.3f} | {before / fl:.2f} | {after / fl:.2f} |")
    if chunks:
        heads = ["whole" if c is None else f"{c // 1024} KiB" for c in CHUNK_SIZES]
        lines += ["", "Fused step per chunk size (bytes per array), median ms per step", "",
                  "| update | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for label in [c[0] for c in CONFIGS]:
            lines.append(f"| {label} | " + " | ".join(f"{med[f'{label}|chunk {c}']:.3f}" for c in CHUNK_SIZES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed blocks per variant (default 40)")
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per block (default 5)")
    parser.add_argument("--chunks", action="store_true", help="also time the fused step for several chunk sizes")
    parser.add_argument("--train", action="store_true",
                        help="also time whole training batches (batch 32 and 128) against their matrix products")
    parser.add_argument("--quick", action="store_true", help="a few repeats of one step: a smoke test")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    repeats, steps = (2, 1) if args.quick else (args.repeats, args.steps)
    variants = optimizer_variants(SIZES, steps, args.chunks)
    if args.train:
        for batch in (32, 128):
            variants.update(train_variants(SIZES, batch, steps))
    times = measure(variants, repeats)
    text = report(times, args.chunks)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
