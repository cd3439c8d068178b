"""The elementwise kernels of deltanet.accel.kernels against their NumPy references, one process, interleaved.

    python benchmarks/bench_kernels.py [--repeats 7] [--out benchmarks/results/kernels.md]

For each kernel and shape: microseconds per call of the NumPy reference (what
the module runs with ``DELTANET_KERNELS=numpy``), of the kernel's parallel
build and of its serial build (the kernels pick one by size: below
``compiled.PARALLEL_MIN_SIZE`` elements the serial one), each the fastest of
``--repeats`` blocks, the variants timed in turn within each block so that
load on the machine touches all alike. Also: the cost of one parallel launch
(an empty kernel) under the threading layer in use.

Then the fused pairs at the shapes of the training benchmark's rows (batch
32/128/512 x width 32/256/512/1024; column-major below 512 rows, as a Linear
produces them): the Linear's bias with the activation after it, forward and
backward (the reference: ``z += b``, the module's forward and backward, and
``dL/db`` by the Linear's product with a vector of ones), and softmax
cross-entropy, loss and gradient, on ``(batch, 10)`` logits (the reference:
the loss's own labels path).
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

import deltanet as dn
from deltanet.accel.kernels import activation, batch_norm, compiled, dropout, softmax_ce
from deltanet.modules.dropout import keep_mask, keep_threshold
from deltanet.parameter import Parameter

SHAPES = [((128, 1024), "F"), ((128, 256), "F"), ((32, 64), "F"), ((1024, 1024), "C")]
#: The training benchmark's batches and widths; a Linear's output is column-major below 512 rows.
PAIR_BATCHES = (32, 128, 512)
PAIR_WIDTHS = (32, 256, 512, 1024)
#: Activations timed at every shape; the others (tanh, sigmoid) at one, (128, 512), enough to show they lose.
PAIR_EVERYWHERE = ("relu", "leaky_relu")


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


def bias_activation_rows(z: Any, g: Any, name: str) -> dict[str, Callable[[], Any]]:
    module = {"relu": dn.ReLU, "leaky_relu": dn.LeakyReLU, "tanh": dn.Tanh, "sigmoid": dn.Sigmoid}[name]()
    alpha = getattr(module, "alpha", 0.0)
    b = np.zeros(z.shape[1], z.dtype) + 0.1
    bias = Parameter(b.copy(), decay=False)

    def reference() -> Any:                   # Linear's + b, the module's forward and backward, Linear's db
        x = z.copy(order="K")                 # (the product's new output, which the Linear adds b to)
        x += b
        module.forward(x, training=True)
        delta = module.backward(g)
        bias.zero_grad()
        bias.accumulate_sum(delta)
        return delta

    def kernel() -> Any:                      # the moved bias: one pass each way
        x = z.copy(order="K")
        h = activation.forward(x, b, name, alpha)
        delta, db = activation.backward(g, h, name, alpha)
        bias.zero_grad()
        bias.accumulate(db)
        return delta

    def copy_only() -> Any:                   # the copy both include, to subtract
        return z.copy(order="K")

    return {"numpy reference": reference, "kernel": kernel, "(the copy of z in both)": copy_only}


def softmax_ce_rows(z: Any, labels: Any) -> dict[str, Callable[[], Any]]:
    loss = dn.losses.SoftmaxCrossEntropy()
    loss.check_targets = False                # as in a trainer's fit

    def reference() -> Any:
        return loss._from_labels(z, labels, None)

    def kernel() -> Any:
        return softmax_ce.loss_and_grad(z, labels)

    return {"numpy reference": reference, "kernel": kernel}


def pair_lines(repeats: int) -> list[str]:
    lines = ["", "## Fused pairs at the training benchmark's shapes (microseconds per forward + backward)", "",
             "| kernel | shape | order | variant | us | reference / variant |", "|---|---|---|---|---|---|"]
    rng = np.random.default_rng(2)
    for batch in PAIR_BATCHES:
        order = "F" if batch < 512 else "C"
        for width in PAIR_WIDTHS:
            z = np.asarray(rng.standard_normal((batch, width)), dtype=np.float32, order=order)
            g = np.asarray(rng.standard_normal((batch, width)), dtype=np.float32, order=order)
            names = [n for n in activation.CODES if n in PAIR_EVERYWHERE or (batch, width) == (128, 512)]
            for name in names:
                times = per_call_us(bias_activation_rows(z, g, name), repeats)
                ref = times["numpy reference"]
                for variant, us in times.items():
                    lines.append(f"| bias + {name} | {batch}x{width} | {order} | {variant} | {us:.1f} | {ref / us:.2f} |")
        z = np.asarray(rng.standard_normal((batch, 10)) * 3, dtype=np.float32, order=order)
        labels = rng.integers(0, 10, batch)
        with _kernels_off():
            times = per_call_us(softmax_ce_rows(z, labels), repeats)
        ref = times["numpy reference"]
        for variant, us in times.items():
            lines.append(f"| softmax cross-entropy | {batch}x10 | {order} | {variant} | {us:.1f} | {ref / us:.2f} |")
    return lines


class _kernels_off:
    """The loss's reference path (its kernel hook off) inside the block; the kernel rows call the kernel directly."""

    def __enter__(self) -> None:
        from deltanet.accel import kernels

        kernels.set_enabled(False)

    def __exit__(self, *exc: Any) -> None:
        from deltanet.accel import kernels

        kernels.set_enabled(None)


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
    lines += pair_lines(args.repeats)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
