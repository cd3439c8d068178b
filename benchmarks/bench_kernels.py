"""The elementwise kernels of deltanet.accel.kernels against their NumPy references, one process, interleaved.

    python benchmarks/bench_kernels.py [--repeats 7] [--out benchmarks/results/kernels.md]

For each kernel and shape: microseconds per call of the NumPy reference (what
the module runs with ``DELTANET_KERNELS=numpy``), of the kernel's parallel
build and of its serial build (the kernels pick one by size: below
``compiled.PARALLEL_MIN_SIZE`` elements the serial one), each the fastest of
``--repeats`` blocks, the variants timed in turn within each block so that
load on the machine touches all alike. Also: the cost of one parallel launch
(an empty kernel) under the threading layer in use.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import prange

from deltanet.accel.kernels import batch_norm, compiled, dropout
from deltanet.modules.dropout import keep_mask, keep_threshold

SHAPES = [((128, 1024), "F"), ((128, 256), "F"), ((32, 64), "F"), ((1024, 1024), "C")]


def _launch(x):                                                                  # pragma: no cover - compiled
    for i in prange(x.shape[0]):
        x[i] = x[i]


_launch_parallel = compiled.parallel(_launch)


def per_call_us(fns: dict[str, Callable[[], Any]], repeats: int, min_seconds: float = 0.02) -> dict[str, float]:
    """Fastest block time per call of each function, in microseconds, the functions timed in turn."""
    calls = {}
    for name, fn in fns.items():
        fn()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < min_seconds:
            fn()
            n += 1
        calls[name] = max(n, 3)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls[name] * 1e6)
    return best


def numpy_dropout_with_generator(x: Any, rng: np.random.Generator, rate: float) -> tuple[Any, Any]:
    """What a plain NumPy dropout does (uniforms from a Generator, compare, scale, multiply): a baseline."""
    u = rng.random(x.shape, dtype=x.dtype)
    mask = np.asarray(u >= rate, dtype=x.dtype)
    mask *= 1.0 / (1.0 - rate)
    return x * mask, mask


def dropout_rows(x: Any, g: Any) -> dict[str, Callable[[], Any]]:
    key, thr, scale = 0x1234, keep_threshold(0.3), x.dtype.type(1 / 0.7)
    rng = np.random.default_rng(0)
    flat, sa, sb = dropout._plain_2d(x)
    out = np.empty_like(x)
    out_flat = out.reshape(flat.shape) if x.flags.c_contiguous else out.T

    def reference() -> Any:                   # the module's reference path, forward + backward
        mask = np.empty_like(x)
        mask[...] = keep_mask(key, x.shape, 0.3)
        mask *= scale
        return x * mask, g * mask

    def generator_baseline() -> Any:
        _, mask = numpy_dropout_with_generator(x, rng, 0.3)
        return g * mask

    def run(kernel: Any) -> Callable[[], Any]:
        def both() -> None:
            with compiled.LOCK:
                kernel(flat, out_flat, np.uint64(key), np.uint64(thr), scale, sa, sb)
                kernel(flat, out_flat, np.uint64(key), np.uint64(thr), scale, sa, sb)
        return both

    return {"numpy reference": reference, "numpy Generator baseline": generator_baseline,
            "kernel parallel": run(dropout._apply_parallel), "kernel serial": run(dropout._apply_serial)}


def batch_norm_rows(x: Any, g: Any) -> dict[str, Callable[[], Any]] | None:
    if not batch_norm.takes(x):
        return None
    gamma, beta = np.ones(x.shape[1], x.dtype), np.zeros(x.shape[1], x.dtype)
    t = x.dtype
    y, dx = np.empty_like(x), np.empty_like(x)
    mean, inv_std, var, sg, sgx = (np.empty(x.shape[1], t) for _ in range(5))

    def reference() -> Any:                   # the module's reference forward + backward
        mu = x.mean(axis=0)
        xc = x - mu
        v = (xc * xc).mean(axis=0)
        r = 1.0 / np.sqrt(v + 1e-5)
        xh = xc
        xh *= r
        out = xh * gamma
        out += beta
        s_g, s_gx = g.sum(axis=0), (g * xh).sum(axis=0)
        d = g * x.shape[0]
        d -= s_g
        d -= xh * s_gx
        d *= gamma * r / x.shape[0]
        return out, d

    def run(fwd: Any, bwd: Any) -> Callable[[], Any]:
        def both() -> None:
            with compiled.LOCK:
                fwd(x.T, y.T, gamma, beta, t.type(1e-5), t.type(1), mean, inv_std, var)
                bwd(g.T, x.T, gamma, mean, inv_std, t.type(x.shape[0]), dx.T, sg, sgx)
        return both

    return {"numpy reference": reference,
            "kernel parallel": run(batch_norm._forward_parallel, batch_norm._backward_parallel),
            "kernel serial": run(batch_norm._forward_serial, batch_norm._backward_serial)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="also write the table as markdown here")
    args = p.parse_args()
    import numba

    empty = np.zeros(2, np.float32)
    launch = per_call_us({"launch": lambda: _launch_parallel(empty)}, args.repeats)["launch"]
    lines = ["# Elementwise kernels against their NumPy references (microseconds per forward + backward)", "",
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, float32, numba {numba.__version__}, "
             f"threading layer {numba.threading_layer()}, one parallel launch {launch:.1f} us; the kernels take "
             f"their parallel build from {compiled.PARALLEL_MIN_SIZE} elements.", "",
             "| kernel | shape | order | variant | us | reference / variant |", "|---|---|---|---|---|---|"]
    for shape, order in SHAPES:
        rng = np.random.default_rng(1)
        x = np.asarray(rng.standard_normal(shape), dtype=np.float32, order=order)
        g = np.asarray(rng.standard_normal(shape), dtype=np.float32, order=order)
        for name, rows in (("dropout", dropout_rows(x, g)), ("batch norm", batch_norm_rows(x, g))):
            if rows is None:
                continue
            times = per_call_us(rows, args.repeats)
            ref = times["numpy reference"]
            for variant, us in times.items():
                lines.append(f"| {name} | {shape[0]}x{shape[1]} | {order} | {variant} | {us:.1f} | {ref / us:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
