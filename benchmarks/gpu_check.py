"""The GPU check: the CUDA kernels, parity with the CPU and throughput against PyTorch CUDA eager, on one NVIDIA GPU.

Run by ``benchmarks/gpu_check.sh`` (which installs what is missing); under 8 minutes on a recent GPU.

0. Dispatch: CuPy arrays get the CUDA kernels (:mod:`deltanet.accel.kernels.cuda`) from the same hook and the
   same fused step as NumPy arrays get the Numba ones.
1. Kernel parity: every CUDA kernel against its NumPy reference on host copies of the same inputs -- the three
   optimizer steps in every variant (float32 and float64, weight decay on all, none, or the leading part of
   the buffer), dropout's mask (bit for bit: the CPU's mask for the same key), batch norm forward and backward
   (row- and column-major).
2. Gradient parity, float64: the same network (784-64-32-10 with batch norm and dropout) on the CPU and on the
   GPU, one forward and backward; the largest relative difference of every gradient. Plus ``dn.gradcheck`` on
   the GPU (finite differences against the GPU's backward).
3. Training parity, float64: ``Trainer`` with the same seed on both devices, 3 epochs (Adam with batch norm and
   dropout; SGD with Nesterov momentum and weight decay); the per-epoch training losses side by side and the
   final weights.
4. Throughput, float32, samples per second of one training epoch (Adam, cross-entropy, ReLU): deltanet on the
   GPU against PyTorch CUDA eager (skipped, with a line saying why, where PyTorch with CUDA is not installed),
   on 784-512-256-10 (batch 128 and 1024) and 4096-4096-4096-10 (batch 1024). The floor is the cuBLAS time of
   the epoch's matrix products alone (``cupy.matmul`` of the same shapes: the forward products, the weight
   gradients, the input gradients but the first layer's), the time no framework can go under. TF32 is off
   on both sides (CuPy's default; set for PyTorch).

``--dry-run`` runs the same code on the CPU with NumPy standing in for CuPy and the CUDA kernels compiled as C++
(:mod:`deltanet.accel.kernels.cuda.emulation`), tiny throughput shapes and no PyTorch: it proves the script runs, not
the GPU (``tests/test_gpu_check.py``).

Results go to ``$OUT/gpu.md`` and ``$OUT/gpu.json`` when ``OUT`` is set, else ``benchmarks/results/``; they are
written again after every section, so a run stopped by its time limit keeps what it measured. Exit status: 0
when sections 0-3 pass, 1 when one fails or raises (the error is in the report), 2 without a usable GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

import deltanet as dn
from deltanet import accel, backend
from deltanet.accel import kernels

OPTIM_CASES = [
    ("sgd", {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}, ()),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-2}, ("momentum_buffer",)),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}, ("momentum_buffer",)),
    ("adam", {"lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-2, "decoupled": False},
     ("exp_avg", "exp_avg_sq")),
    ("adam", {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1, "decoupled": True},
     ("exp_avg", "exp_avg_sq")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0, "centered": False},
     ("square_avg",)),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "weight_decay": 1e-2, "centered": False},
     ("square_avg", "momentum_buffer")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.0, "weight_decay": 0.0, "centered": True},
     ("square_avg", "grad_avg")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "weight_decay": 1e-2, "centered": True},
     ("square_avg", "grad_avg", "momentum_buffer")),
]
#: Largest relative difference from the reference: a handful of roundings per element and step, over 5 steps.
TOL = {"float32": 2e-6, "float64": 1e-12}


class Check:
    """The environment of one run: the device namespace, the report and its sections."""

    def __init__(self, dry: bool, budget: float, out: Path) -> None:
        self.dry, self.budget, self.out = dry, budget, out
        self.start = time.perf_counter()
        self.lines: list[str] = []
        self.results: dict[str, Any] = {"dry_run": dry, "sections": {}}
        if dry:
            self.device, self.xp = "cpu", np
        else:
            self.device = "cuda"
            self.xp = backend.select_device("cuda")          # raises RuntimeError without CuPy or a GPU
        backend.select_device("cpu")

    # -- the report --------------------------------------------------------------------------------------------
    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu.md").write_text("\n".join(self.lines) + "\n")
        (self.out / "gpu.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.budget - (time.perf_counter() - self.start)

    def section(self, name: str, fn: Callable[[], bool]) -> bool:
        """Run one section; an exception is reported (with its traceback) as a failure, and the next runs."""
        began = time.perf_counter()
        try:
            ok = bool(fn())
            error = None
        except Exception as exc:                              # report, and go on with the next section
            ok, error = False, f"{type(exc).__name__}: {exc}"
            self.say(f"**ERROR in {name}: {error}**")
            self.say("")
            self.say("```")
            for line in traceback.format_exc().rstrip().splitlines()[-25:]:
                self.say(line)
            self.say("```")
            self.say("")
        finally:
            backend.select_device("cpu")
        seconds = time.perf_counter() - began
        self.results["sections"][name] = {"ok": ok, "error": error, "seconds": round(seconds, 2)}
        self.say(f"{name}: **{'passed' if ok else 'FAILED'}** ({seconds:.1f} s)")
        self.say("")
        self.save()
        return ok

    # -- the device --------------------------------------------------------------------------------------------
    def to_device(self, a: Any) -> Any:
        """A device copy of the host array ``a`` (its memory order kept: column-major stays column-major)."""
        a = np.asarray(a)
        return self.xp.array(a, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C")

    def sync(self) -> None:
        if not self.dry:
            self.xp.cuda.Device().synchronize()

    @contextlib.contextmanager
    def kernels_on_device(self) -> Iterator[None]:
        """The CUDA kernels run on the GPU; in a dry run, compiled as C++ on the CPU."""
        if self.dry:
            from deltanet.accel.kernels.cuda import emulation as cuda_emulation

            with cuda_emulation.emulated():
                yield
        else:
            yield

    def seconds(self, fn: Callable[[], Any], repeat: int) -> float:
        """Device time of ``repeat`` calls of ``fn`` (CUDA events; a wall clock in a dry run)."""
        if self.dry:
            began = time.perf_counter()
            for _ in range(repeat):
                fn()
            return time.perf_counter() - began
        start, end = self.xp.cuda.Event(), self.xp.cuda.Event()
        start.record()
        for _ in range(repeat):
            fn()
        end.record()
        end.synchronize()
        return self.xp.cuda.get_elapsed_time(start, end) / 1000.0


def rel(a: Any, b: Any) -> float:
    """``max |a - b| / max(|a|, |b|)`` of two host arrays (0 for equal ones, NaN-aware: a NaN counts as inf)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return math.inf
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0 if np.array_equal(a, b, equal_nan=True) else math.inf
    scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)), 1e-300)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


# -- 0. dispatch --------------------------------------------------------------------------------------------------
def dispatch(c: Check) -> bool:
    from deltanet.accel.kernels.cuda import batch_norm, dropout, optim
    from deltanet.optim import SGD, Adam, RMSprop

    c.say("## 0. Dispatch")
    c.say("")
    want = ("numba" if kernels.enabled() else None) if c.dry else "cuda"
    xp = backend.select_device(c.device)
    x = xp.ones((64, 32), dtype=xp.float32)
    f = xp.asfortranarray(x)
    rows = [("kernels.family(device array)", kernels.family(x), want)]
    if not c.dry:
        rows += [("accel.kernel('dropout')", accel.kernel("dropout", x), dropout.dropout),
                 ("accel.kernel('batch_norm_forward')", accel.kernel("batch_norm_forward", f), batch_norm.forward),
                 ("accel.kernel('batch_norm_backward')", accel.kernel("batch_norm_backward", f, f), batch_norm.backward)]
        backend.select_device("cpu")
        model = dn.mlp([8, 16, 4], rng=0, dtype="float32").to("cuda")
        for make, name in ((Adam, "adam"), (SGD, "sgd"), (RMSprop, "rmsprop")):
            engine = make(model.parameters())._engine
            rows.append((f"{make.__name__} fused step kernel", engine.compiled_kernel(), optim.KERNELS[name][0]))
    c.say("| what | got | expected | |")
    c.say("|---|---|---|---|")
    ok = True
    for what, got, expected in rows:
        good = got is expected or got == expected
        ok &= good
        name = getattr(got, "__module__", "") + "." + getattr(got, "__name__", repr(got)) if callable(got) else got
        exp = (getattr(expected, "__module__", "") + "." + expected.__name__) if callable(expected) else expected
        c.say(f"| {what} | {name} | {exp} | {'ok' if good else '**WRONG**'} |")
    c.say("")
    c.results["dispatch"] = [(w, str(g), str(e)) for w, g, e in rows]
    return ok


# -- 1. kernel parity ---------------------------------------------------------------------------------------------
def kernel_parity(c: Check) -> bool:
    from deltanet.accel.kernels.cuda import batch_norm, dropout, optim
    from deltanet.modules.dropout import keep_mask, keep_threshold
    from deltanet.optim import rules

    c.say("## 1. Kernel parity (each CUDA kernel against its NumPy reference on host copies of the same inputs)")
    c.say("")
    c.say("| kernel | case | dtype | largest relative difference | tolerance | |")
    c.say("|---|---|---|---|---|---|")
    rows = []
    xp = backend.select_device(c.device)

    def row(kernel: str, case: str, dtype: str, diff: float, tol: float) -> bool:
        good = diff <= tol
        rows.append({"kernel": kernel, "case": case, "dtype": dtype, "diff": diff, "tol": tol, "ok": good})
        c.say(f"| {kernel} | {case} | {dtype} | {diff:.2e} | {tol:.0e} | {'ok' if good else '**FAIL**'} |")
        return good

    ok = True
    rng = np.random.default_rng(0)
    n = 100_003 if not c.dry else 1237                        # odd: no multiple of a block
    with c.kernels_on_device():
        for name, hyper, keys in OPTIM_CASES:
            label = " ".join(k if v is True else f"{k}={v:g}" for k, v in hyper.items() if v not in (0.0, False))
            for dtype in ("float32", "float64"):
                for decay in (True, n // 3):
                    w0 = rng.standard_normal(n).astype(dtype)
                    w_ref, st_ref = w0.copy(), {k: np.zeros(n, dtype) for k in keys}
                    w_dev, st_dev = c.to_device(w0), {k: xp.zeros(n, dtype=dtype) for k in keys}
                    work = [np.empty(n, dtype) for _ in range(2)]
                    sq = ref_sq = 0.0
                    for t in range(1, 6):
                        g = rng.standard_normal(n).astype(dtype)
                        extra = {"t": t} if name == "adam" else {}
                        sq = optim.KERNELS[name][0](w_dev, c.to_device(g), st_dev, decay=decay, measure=True,
                                                    **hyper, **extra)
                        ref_sq = float((g.astype(np.float64) ** 2).sum())
                        with backend.use_backend("numpy"):
                            parts = [(0, n, decay)] if decay is True else [(0, decay, True), (decay, n, False)]
                            for lo, hi, d in parts:
                                getattr(rules, name)(w_ref[lo:hi], g[lo:hi], {k: v[lo:hi] for k, v in st_ref.items()},
                                                     [a[:hi - lo] for a in work], decay=d, **hyper, **extra)
                    diff = max([rel(backend.to_numpy(w_dev), w_ref)]
                               + [rel(backend.to_numpy(st_dev[k]), st_ref[k]) for k in keys])
                    sq_diff = abs(float(sq) - ref_sq) / ref_sq       # one dot in the dtype: float32 sums round
                    sq_ok = sq_diff <= (1e-4 if dtype == "float32" else 1e-11)
                    what = f"{label}, decay={'all' if decay is True else 'first third'}"
                    ok &= sq_ok & row(name, what + ("" if sq_ok else f", **norm^2 off by {sq_diff:.1e}**"), dtype,
                                      diff, TOL[dtype])
        key, rate = 0xFEDCBA9876543210, 0.3                      # key + (i + 1) gamma wraps around 2^64
        rows_dropout = 4096 if not c.dry else 256
        for shape, order in (((rows_dropout, 513), "C"), ((rows_dropout, 513), "F"), ((7, 33, 65), "C")):
            for dtype in ("float32", "float64"):
                x = np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
                scale = np.dtype(dtype).type(1.0 / (1.0 - rate))
                with backend.use_backend("numpy"):
                    want = x * (keep_mask(key, shape, rate) * scale).astype(dtype)
                got = backend.to_numpy(dropout.dropout(c.to_device(x), key, keep_threshold(rate), scale))
                same = np.array_equal(got, want) and got.flags.f_contiguous == x.flags.f_contiguous
                ok &= row("dropout", f"{shape} {order}-order, bit for bit", dtype, 0.0 if same else math.inf, 0.0)
        rows_bn = 1024 if not c.dry else 128
        for shape, order in (((rows_bn, 257), "F"), ((rows_bn, 257), "C"), ((3, 5), "F")):
            for dtype in ("float32", "float64"):
                tol = 2e-5 if dtype == "float32" else 1e-12
                x = np.asarray((rng.standard_normal(shape) * 3 + 1).astype(dtype), order=order)
                gr = np.asarray(rng.standard_normal(shape).astype(dtype), order=order)
                gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
                y, mean, inv_std, var = (backend.to_numpy(a) for a in batch_norm.forward(
                    c.to_device(x), c.to_device(gamma), c.to_device(beta), 1e-5))
                dx, dbeta, dgamma = (backend.to_numpy(a) for a in batch_norm.backward(
                    c.to_device(gr), c.to_device(x), c.to_device(gamma), c.to_device(mean), c.to_device(inv_std)))
                mu = x.mean(axis=0)
                var_ref = ((x - mu) ** 2).mean(axis=0)
                inv_ref = (1.0 / np.sqrt(var_ref + 1e-5)).astype(dtype)
                x_hat = (x - mu) * inv_ref
                n_rows = shape[0]
                dbeta_ref, dgamma_ref = gr.sum(axis=0), (gr * x_hat).sum(axis=0)
                dx_ref = (gr * n_rows - dbeta_ref - x_hat * dgamma_ref) * (gamma * inv_ref / n_rows)
                fwd = max(rel(y, x_hat * gamma + beta), rel(mean, mu), rel(var, var_ref), rel(inv_std, inv_ref))
                bwd = max(rel(dx, dx_ref), rel(dbeta, dbeta_ref), rel(dgamma, dgamma_ref))
                ok &= row("batch_norm forward", f"{shape} {order}-order", dtype, fwd, tol)
                ok &= row("batch_norm backward", f"{shape} {order}-order", dtype, bwd, 10 * tol)
    c.say("")
    c.results["kernel_parity"] = rows
    return ok


# -- 2. gradient parity -------------------------------------------------------------------------------------------
def gradient_parity(c: Check) -> bool:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 784))
    y = rng.integers(0, 10, size=256)
    grads = {}
    for side, device in (("cpu", "cpu"), ("device", c.device)):
        backend.select_device("cpu")
        model = dn.mlp([784, 64, 32, 10], batch_norm=True, dropout=0.2, rng=0, dtype="float64").to(device)
        xp = backend.xp
        loss = dn.get_loss("cross_entropy")
        out = model.forward(xp.asarray(X), training=True)
        loss.forward(out, xp.asarray(y))
        model.zero_grad()
        model.backward(loss.backward())
        grads[side] = {name: backend.to_numpy(p.grad).copy() for name, p in model.named_parameters()}
    worst = max(rel(grads["cpu"][k], grads["device"][k]) for k in grads["cpu"])
    c.say("## 2. Gradient parity (float64, 784-64-32-10 + batch norm + dropout 0.2, batch 256, training mode)")
    c.say("")
    c.say(f"largest relative difference CPU vs GPU over {len(grads['cpu'])} gradients: {worst:.2e} (tolerance 1e-9)")
    backend.select_device("cpu")
    small = dn.mlp([6, 8, 4], batch_norm=True, rng=0, dtype="float64").to(c.device)
    result = dn.gradcheck(small, backend.xp.asarray(rng.standard_normal((8, 6))), training=True, raise_on_fail=False)
    c.say(f"dn.gradcheck on the GPU (6-8-4 + batch norm, training mode): worst relative error {result.worst:.2e}, "
          f"{'passed' if result.passed else 'FAILED'}")
    c.say("")
    c.results["gradient_parity"] = {"worst": worst, "gradcheck_worst": result.worst, "gradcheck_passed": result.passed}
    return worst < 1e-9 and result.passed


# -- 3. training parity -------------------------------------------------------------------------------------------
def training_parity(c: Check) -> bool:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4096 if not c.dry else 512, 64))
    y = (X[:, :10].argmax(axis=1) + (X[:, 10] > 1)) % 10
    runs = (("Adam, batch norm, dropout 0.1", dict(batch_norm=True, dropout=0.1), dict(optimizer="adam", lr=1e-3)),
            ("SGD Nesterov, weight decay", {}, dict(optimizer="sgd", lr=0.05, l2=1e-3,
                                                    optimizer_kwargs={"momentum": 0.9, "nesterov": True})))
    c.say(f"## 3. Training parity (float64, 64-128-64-10, {X.shape[0]} rows, batch 128, 3 epochs, seed 0)")
    c.say("")
    c.say("| run | epoch | CPU train loss | GPU train loss | relative difference |")
    c.say("|---|---|---|---|---|")
    ok, summary = True, []
    for label, arch, opt in runs:
        losses, weights = {}, {}
        for side, device in (("cpu", "cpu"), ("device", c.device)):
            backend.select_device("cpu")
            model = dn.mlp([64, 128, 64, 10], rng=0, dtype="float64", **arch)
            trainer = dn.Trainer(model, batch_size=128, epochs=3, seed=0, device=device, **opt)
            history = trainer.fit(X, y)
            losses[side] = [r["train_loss"] for r in history.records]
            weights[side] = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
        diffs = [abs(a - b) / abs(a) for a, b in zip(losses["cpu"], losses["device"], strict=True)]
        for i, (a, b, d) in enumerate(zip(losses["cpu"], losses["device"], diffs, strict=True), 1):
            c.say(f"| {label} | {i} | {a:.12f} | {b:.12f} | {d:.1e} |")
        w_diff = max(rel(weights["cpu"][k], weights["device"][k]) for k in weights["cpu"])
        good = max(diffs) < 1e-9 and w_diff < 1e-7
        ok &= good
        summary.append({"run": label, "loss_diffs": diffs, "weights_diff": w_diff, "ok": good})
        c.say(f"| {label} | final weights | | | {w_diff:.1e} |")
    c.say("")
    c.say("tolerance: losses 1e-9, weights 1e-7 (relative)")
    c.say("")
    c.results["training_parity"] = summary
    return ok


# -- 4. throughput ------------------------------------------------------------------------------------------------
def deltanet_epoch(c: Check, sizes: list[int], batch: int, X: np.ndarray, y: np.ndarray, epochs: int = 3) -> float:
    backend.select_device("cpu")
    model = dn.mlp(sizes, rng=0, dtype="float32")
    trainer = dn.Trainer(model, optimizer="adam", lr=1e-3, batch_size=batch, epochs=epochs, seed=0,
                         record_layers=False, device=c.device)
    history = trainer.fit(X, y)
    return min(r["time"] for r in history.records[1:])          # the first epoch compiles the kernels


def torch_status(c: Check) -> tuple[Any, str]:
    """``(torch, "PyTorch x.y")`` when PyTorch with CUDA is usable, else ``(None, why not)``."""
    if c.dry:
        return None, "not run in a dry run"
    try:
        import torch
    except Exception as exc:
        return None, f"not installed ({type(exc).__name__}: {exc})"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} is installed without a usable CUDA build (torch.version.cuda = {torch.version.cuda})"
    torch.backends.cuda.matmul.allow_tf32 = False                # the same float32 products as cuBLAS under CuPy
    torch.backends.cudnn.allow_tf32 = False
    return torch, f"PyTorch {torch.__version__} (CUDA {torch.version.cuda})"


def torch_epoch(torch: Any, sizes: list[int], batch: int, X: np.ndarray, y: np.ndarray, epochs: int = 3) -> float:
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
            opt.step()                                           # no host read per batch: PyTorch at its best
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def blas_floor(c: Check, sizes: list[int], batch: int, n: int) -> float:
    """The BLAS time of one epoch's products: per step ``X W`` per layer, ``X^T G`` per layer and ``G W^T`` for
    every layer but the first (cuBLAS through ``cupy.matmul``, timed with CUDA events; NumPy in a dry run)."""
    xp = c.xp
    rng = np.random.default_rng(0)
    steps = -(-n // batch)
    mats = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        x, w, g = (c.to_device(rng.standard_normal(s, dtype=np.float32)) for s in ((batch, a), (a, b), (batch, b)))
        mats.append((x, w, g, i > 0))

    def step() -> None:
        for x, w, g, input_grad in mats:
            xp.matmul(x, w)
            xp.matmul(x.T, g)
            if input_grad:
                xp.matmul(g, w.T)

    for _ in range(3):
        step()
    c.sync()
    return c.seconds(step, steps)


def throughput(c: Check) -> bool:
    torch, torch_line = torch_status(c)
    c.say("## 4. Throughput (float32, Adam, one training epoch, best of the epochs after the first)")
    c.say("")
    c.say("samples per second (higher is better); the floor is the cuBLAS time of the same products alone")
    c.say("")
    if torch is None:
        c.say(f"**PyTorch CUDA comparison skipped: {torch_line}.**")
    else:
        c.say(f"compared with {torch_line}, eager mode, TF32 off")
    c.say("")
    c.say("| network | batch | rows | deltanet (GPU) | PyTorch CUDA eager | cuBLAS floor | deltanet / floor | PyTorch / floor |")
    c.say("|---|---|---|---|---|---|---|---|")
    shapes = ((([784, 512, 256, 10], 128, 60_000), ([784, 512, 256, 10], 1024, 60_000),
               ([4096, 4096, 4096, 10], 1024, 32_768)) if not c.dry else
              (([32, 16, 10], 64, 512), ([32, 16, 10], 256, 512)))
    rows = []
    for sizes, batch, n in shapes:
        name = "-".join(map(str, sizes))
        if c.left() < 60:
            c.say(f"| {name} | {batch} | {n} | skipped: {c.left():.0f} s of the budget left | | | | |")
            continue
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, sizes[0]), dtype=np.float32)
        y = rng.integers(0, sizes[-1], size=n)
        t_dn = deltanet_epoch(c, sizes, batch, X, y)
        t_torch = torch_epoch(torch, sizes, batch, X, y) if torch is not None else None
        t_floor = blas_floor(c, sizes, batch, n)
        torch_cell = f"{n / t_torch:,.0f}" if t_torch else "skipped"
        torch_ratio = f"{t_floor / t_torch:.2f}" if t_torch else ""
        c.say(f"| {name} | {batch} | {n} | {n / t_dn:,.0f} | {torch_cell} | {n / t_floor:,.0f} | "
              f"{t_floor / t_dn:.2f} | {torch_ratio} |")
        rows.append({"network": name, "batch": batch, "rows": n, "deltanet_s": t_dn, "torch_s": t_torch,
                     "floor_s": t_floor})
        c.results["throughput"] = rows
        c.save()
    c.say("")
    c.results["throughput"] = rows
    c.results["torch"] = torch_line
    return bool(rows) and all(r["deltanet_s"] > 0 and r["floor_s"] > 0 for r in rows)


def environment(c: Check) -> None:
    c.say("# deltanet on the GPU" + (" (DRY RUN: NumPy and C++-compiled kernels on the CPU, no GPU)" if c.dry else ""))
    c.say("")
    if c.dry:
        gpu, versions = "none (dry run)", "CuPy not used"
    else:
        cupy = c.xp
        props = cupy.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        versions = (f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
                    f"driver {cupy.cuda.runtime.driverGetVersion()}")
    c.say(f"GPU: {gpu}; {versions}; NumPy {np.__version__}; Python {platform.python_version()}; "
          f"DELTANET_FAST={os.environ.get('DELTANET_FAST', '(unset)')}")
    c.say("")
    c.results["environment"] = {"gpu": gpu, "versions": versions, "numpy": np.__version__,
                                "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="NumPy for CuPy, the CUDA kernels as C++: no GPU")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; throughput rows stop when it runs out")
    parser.add_argument("--sections", default="0,1,2,3,4", help="which sections to run (comma-separated numbers)")
    args = parser.parse_args(argv)
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).parent / "results"
    try:
        c = Check(args.dry_run, args.budget, out)
    except RuntimeError as exc:
        print(f"gpu_check: no usable GPU: {exc}", file=sys.stderr)
        return 2
    environment(c)
    wanted = {int(s) for s in args.sections.split(",") if s.strip()}
    checks = [(0, "0. dispatch", dispatch), (1, "1. kernel parity", kernel_parity),
              (2, "2. gradient parity", gradient_parity), (3, "3. training parity", training_parity)]
    ok = True
    for number, name, fn in checks:
        if number in wanted:
            ok &= c.section(name, lambda fn=fn: fn(c))
    if 4 in wanted:
        c.section("4. throughput", lambda: throughput(c))     # reported, but no pass/fail of the parity
    c.say(f"parity (sections 0-3): **{'passed' if ok else 'FAILED'}**; total {time.perf_counter() - c.start:.0f} s")
    c.results["passed"] = ok
    c.save()
    print(f"written: {out / 'gpu.md'} and {out / 'gpu.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
