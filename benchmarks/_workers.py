"""One benchmark measurement in a fresh process: ``python benchmarks/_workers.py '<json spec>'``.

:mod:`bench_train` starts this script once per (framework, network, batch,
repeat), so that every framework runs in a process of its own (no shared
allocator state, thread pools or caches between them) and its peak resident
memory can be read from the operating system. The last line printed to
stdout is one JSON object with the measurement.

Spec keys: ``framework`` (``floor``, ``floor-F``, ``torch-floor``, ``deltanet``, ``deltanet-trainer``
(either with ``-numpy`` appended: the same with ``DELTANET_KERNELS=numpy``; with ``-ref``: ``DELTANET_FAST=0``),
``torch``, ``sklearn``), ``mode`` (``train`` or ``predict``), ``sizes``
(``[d_0, ..., d_L]``), ``batch``, ``n_samples``, ``dtype``, ``threads``,
``epochs`` (timed epochs; ``predict`` repeats), ``warmup`` (batches run
before timing), ``lr``, ``momentum``, ``seed``, and optionally ``recipe``: a
training recipe as users run it (``optimizer``, ``lr``, ``l2``, ``dropout``,
``batch_norm``, ``schedule``, ``val_fraction``) instead of plain SGD with
momentum; then ``deltanet-trainer`` runs the ``Trainer`` with its defaults
(diagnostics recorded, validation every epoch), ``deltanet-command`` runs
``deltanet train`` itself on the data written to an ``.npz`` file (its
history's per-epoch times; the whole command's wall time is reported too) and
``torch`` the same recipe in PyTorch (L2 as the optimizer's ``weight_decay``,
which is the same L2-in-the-gradient rule).

What is timed
-------------
``train``: whole epochs of mini-batch SGD with momentum over ``n_samples``
synthetic samples (standard normal features, labels 0-9), the last batch
partial when ``batch`` does not divide ``n_samples``.

* ``floor``: only the matrix products of an MLP of the same shapes, with
  NumPy and preallocated outputs, over contiguous slices of a pre-shuffled
  array: per layer ``z = x @ W.T`` (forward), ``dW = delta.T @ x`` and
  ``dX = delta @ W`` (backward, the first layer's input gradient included),
  every array row-major. This is the floor the issue's targets refer to.
* ``floor-F``: the same products on column-major weights, activations and
  gradients (the layout deltanet's ``Linear`` uses, see its docstring): the
  same numbers, computed by the BLAS in its faster orientation.
* ``torch-floor``: the same products with ``torch.mm`` (PyTorch's BLAS).
* ``deltanet``: the plain calls per batch (gather, ``forward``, loss
  ``forward``, ``zero_grad`` + ``backward``, optimizer ``step``) with
  :class:`deltanet.optim.SGD`, which after its first step has the backward
  passes add the gradients straight into its momentum buffer by itself.
* ``deltanet-trainer``: ``deltanet.training.Trainer.fit`` (when the trainer
  exists); the times are its history's per-epoch ``time``.
* ``torch``: the equivalent eager PyTorch loop (``torch.set_num_threads``).
* ``sklearn``: ``MLPClassifier(solver="sgd").partial_fit`` (one epoch per call).

``predict``: the forward pass over ``n_samples`` samples in chunks of
``batch`` rows (``floor``: the forward matrix products only; ``deltanet``:
``deltanet.predict(net, X, batch_size=batch)``, which also tests ``X`` for
NaN and infinity; ``deltanet-trainer``: ``net.forward`` on each chunk, the
module API; ``torch``: the module under ``inference_mode``; ``sklearn``: ``predict_proba``).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import warnings
from typing import Any

import numpy as np


# -- process measurements -----------------------------------------------------
def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux ``/proc``; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def blas_info() -> list[dict[str, Any]]:
    """The BLAS/OpenMP libraries loaded in this process and their thread counts (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: lib.get(k) for k in keys if lib.get(k) is not None} for lib in threadpool_info()]


# -- data -----------------------------------------------------------------------
def synthetic_data(n: int, d: int, n_classes: int, dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal samples of width ``d`` (drawn directly in ``dtype``) and labels in [0, n_classes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.dtype(dtype))
    y = rng.integers(0, n_classes, size=n)
    return x, y


def batch_starts(n: int, batch: int) -> range:
    return range(0, n, batch)


def time_inference(forward: Any, x: Any, spec: dict[str, Any]) -> list[float]:
    """Seconds of ``spec["epochs"]`` passes of ``forward`` over ``x`` in chunks of ``spec["batch"]`` rows,
    after ``spec["warmup"]`` warm-up chunks."""
    b, times = spec["batch"], []
    for s in batch_starts(min(x.shape[0], spec["warmup"] * b), b):
        forward(x[s:s + b])
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        for s in batch_starts(x.shape[0], b):
            forward(x[s:s + b])
        times.append(time.perf_counter() - t0)
    return times


def time_passes(predict: Any, x: Any, spec: dict[str, Any]) -> list[float]:
    """Seconds of ``spec["epochs"]`` calls ``predict(x)`` (each over all of ``x``), after one call on
    ``spec["warmup"]`` chunks' rows."""
    predict(x[: spec["warmup"] * spec["batch"]])
    times = []
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - t0)
    return times


# -- frameworks -------------------------------------------------------------------
class Floor:
    """The matrix products of one MLP training step, nothing else.

    ``library="numpy"`` is the floor the ratios refer to (NumPy's BLAS);
    ``"torch"`` runs the same products with ``torch.mm`` (PyTorch's BLAS, MKL
    on x86 wheels) on the same memory, to tell a faster BLAS from less
    overhead when deltanet is compared with PyTorch.
    """

    def __init__(self, spec: dict[str, Any], library: str = "numpy", order: str = "C") -> None:
        sizes, b, dt = spec["sizes"], spec["batch"], np.dtype(spec["dtype"])
        rng = np.random.default_rng(spec["seed"] + 1)
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        self.w = [np.asarray(rng.standard_normal((o, i), dtype=dt) / np.sqrt(i), dtype=dt, order=order) for i, o in pairs]
        self.z = [np.empty((b, o), dt, order=order) for o in sizes[1:]]           # forward outputs
        self.delta = [np.asarray(rng.standard_normal((b, o), dtype=dt) * dt.type(0.01), order=order) for o in sizes[1:]]  # dL/dz
        self.dw = [np.empty_like(w) for w in self.w]
        self.dx = [np.empty((b, i), dt, order=order) for i in sizes[:-1]]
        self.batch = b
        if library == "torch":
            import torch

            for name in ("w", "z", "delta", "dw", "dx"):
                setattr(self, name, [torch.from_numpy(a) for a in getattr(self, name)])
            self.mm = lambda a, b, out: torch.mm(a, b, out=out)
            self.t = lambda a: a.t()
            self.asarray = torch.from_numpy
        else:
            self.mm = lambda a, b, out: np.matmul(a, b, out=out)
            self.t = lambda a: a.T
            self.asarray = np.asarray

    def forward(self, x: Any) -> list[Any]:
        m, inputs, h = x.shape[0], [], x
        for w, z in zip(self.w, self.z, strict=True):
            inputs.append(h)
            h = self.mm(h, self.t(w), z[:m])                                     # z = x W^T
        return inputs

    def epoch(self, xs: Any) -> None:
        for s in batch_starts(xs.shape[0], self.batch):
            x = xs[s:s + self.batch]
            m = x.shape[0]
            inputs = self.forward(x)
            for w, h, d, dw, dx in zip(self.w[::-1], inputs[::-1], self.delta[::-1], self.dw[::-1], self.dx[::-1], strict=True):
                self.mm(self.t(d[:m]), h, dw)                                    # dW = delta^T x
                self.mm(d[:m], w, dx[:m])                                        # dX = delta W


def run_floor(spec: dict[str, Any], x: np.ndarray, y: np.ndarray, library: str = "numpy", order: str = "C") -> dict[str, Any]:
    if library == "torch":
        import torch

        torch.set_num_threads(spec["threads"])
    floor = Floor(spec, library, order)
    rng = np.random.default_rng(spec["seed"] + 2)
    b, times = spec["batch"], []
    if spec["mode"] == "predict":
        return {"times": time_inference(floor.forward, floor.asarray(x), spec)}
    floor.epoch(floor.asarray(x[: spec["warmup"] * b]))
    for _ in range(spec["epochs"]):
        xs = floor.asarray(x[rng.permutation(x.shape[0])])                       # pre-shuffled, outside the timing
        t0 = time.perf_counter()
        floor.epoch(xs)
        times.append(time.perf_counter() - t0)
        del xs
    return {"times": times}


def run_floor_f(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return run_floor(spec, x, y, order="F")


def run_torch_floor(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return run_floor(spec, x, y, library="torch")


def run_deltanet(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    import deltanet as dn
    from deltanet.optim import SGD

    net = dn.mlp(spec["sizes"], activation="relu", rng=spec["seed"], dtype=spec["dtype"])
    b = spec["batch"]
    if spec["mode"] == "predict":
        return {"times": time_passes(lambda data: dn.predict(net, data, batch_size=b), x, spec)}

    loss_fn = dn.SoftmaxCrossEntropy()
    opt = SGD(net.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    rng = np.random.default_rng(spec["seed"] + 2)
    xbuf = np.empty((b, x.shape[1]), x.dtype)

    def epoch(n: int) -> float:
        order = rng.permutation(x.shape[0])[:n]
        total = 0.0
        for s in batch_starts(n, b):
            idx = order[s:s + b]
            # the batch gather; mode="clip" (indices are valid) skips the buffered copy mode="raise" makes with out=
            xb = np.take(x, idx, axis=0, out=xbuf[: idx.shape[0]], mode="clip")
            out = net.forward(xb, training=True)
            total += loss_fn.forward(out, y[idx])
            opt.zero_grad()                # SGD momentum folds by itself: no extra call
            net.backward(loss_fn.backward())
            opt.step()
        return total

    epoch(min(x.shape[0], spec["warmup"] * b))
    times, losses = [], []
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        losses.append(epoch(x.shape[0]))
        times.append(time.perf_counter() - t0)
    return {"times": times, "loss_sum": losses}


def _recipe_net(spec: dict[str, Any]) -> Any:
    import deltanet as dn

    recipe = spec.get("recipe") or {}
    return dn.mlp(spec["sizes"], activation="relu", dropout=recipe.get("dropout", 0.0),
                  batch_norm=recipe.get("batch_norm", False), rng=spec["seed"], dtype=spec["dtype"])


def _split_validation(x: np.ndarray, y: np.ndarray, fraction: float) -> tuple[np.ndarray, ...]:
    """The last ``fraction`` of the (already random) rows as validation data."""
    n_val = round(x.shape[0] * fraction)
    return x[: x.shape[0] - n_val], y[: x.shape[0] - n_val], x[x.shape[0] - n_val:], y[x.shape[0] - n_val:]


def run_deltanet_recipe(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The ``Trainer`` with its defaults on a recipe: what a library user runs (validation every epoch)."""
    from deltanet.training import Trainer

    recipe = spec["recipe"]
    net = _recipe_net(spec)
    trainer = Trainer(net, loss="cross_entropy", optimizer=recipe["optimizer"], lr=recipe["lr"], l2=recipe["l2"],
                      schedule=recipe.get("schedule"), batch_size=spec["batch"], epochs=spec["epochs"], seed=spec["seed"])
    x_train, y_train, x_val, y_val = _split_validation(x, y, recipe.get("val_fraction", 0.0))
    validation = (x_val, y_val) if x_val.shape[0] else None
    n_warm = min(x_train.shape[0], spec["warmup"] * spec["batch"])
    trainer.fit(x_train[:n_warm], y_train[:n_warm], epochs=1)
    history = trainer.fit(x_train, y_train, validation_data=validation, epochs=spec["epochs"])
    return {"times": [r["time"] for r in history.records[-spec["epochs"]:]]}


def run_deltanet_command(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """``deltanet train`` on the data as an ``.npz`` file: the command as users run it, report included."""
    import tempfile
    from pathlib import Path

    from deltanet.cli import main as deltanet_main

    recipe = spec["recipe"]
    if spec["mode"] != "train":
        return {"error": "the command row times training only"}
    hidden = ",".join(str(w) for w in spec["sizes"][1:-1])
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data.npz"
        np.savez(data, X=x, y=y)
        argv = ["train", "--data", str(data), "--hidden", hidden, "--dropout", str(recipe.get("dropout", 0.0)),
                "--optimizer", recipe["optimizer"], "--lr", str(recipe["lr"]), "--l2", str(recipe["l2"]),
                "--schedule", recipe.get("schedule") or "none", "--batch-size", str(spec["batch"]),
                "--epochs", str(spec["epochs"] + 1), "--val-fraction", str(recipe.get("val_fraction", 0.0)),
                "--test-fraction", "0", "--dtype", spec["dtype"], "--seed", str(spec["seed"]),
                "--out-dir", folder, "--name", "run", "--quiet", "--no-standardize"]
        if recipe.get("batch_norm"):
            argv.append("--batch-norm")
        t0 = time.perf_counter()
        code = deltanet_main(argv)
        wall = time.perf_counter() - t0
        if code != 0:
            return {"error": f"deltanet train exited {code}"}
        records = json.loads((Path(folder) / "run" / "history.json").read_text())["records"]
    # the first epoch also compiles and warms up: the others are timed (the command has no separate warm-up)
    return {"times": [r["time"] for r in records[1:]], "command_seconds": wall}


def run_deltanet_trainer(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    import deltanet as dn
    from deltanet.optim import SGD
    from deltanet.training import Trainer

    if spec.get("recipe") and spec["mode"] == "train":
        return run_deltanet_recipe(spec, x, y)
    net = dn.mlp(spec["sizes"], activation="relu", rng=spec["seed"], dtype=spec["dtype"])
    if spec["mode"] == "predict":                      # the module API: forward on each chunk
        return {"times": time_inference(net.forward, x, spec)}
    opt = SGD(net.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    trainer = Trainer(net, loss="cross_entropy", optimizer=opt, batch_size=spec["batch"], epochs=1, seed=spec["seed"],
                      progress=False, record_layers=False)
    n_warm = min(x.shape[0], spec["warmup"] * spec["batch"])
    trainer.fit(x[:n_warm], y[:n_warm], epochs=1)
    history = trainer.fit(x, y, epochs=spec["epochs"])
    # the trainer's own per-epoch wall time: the epoch loop, without fit's one-off data checks
    return {"times": [r["time"] for r in history.records[-spec["epochs"]:]]}


def run_torch(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    sizes, b = spec["sizes"], spec["batch"]
    recipe = spec.get("recipe") or {}
    layers: list[Any] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            if recipe.get("batch_norm"):
                layers.append(torch.nn.BatchNorm1d(d_out))
            layers.append(torch.nn.ReLU())
            if recipe.get("dropout"):
                layers.append(torch.nn.Dropout(recipe["dropout"]))
    dtype = getattr(torch, spec["dtype"])
    model = torch.nn.Sequential(*layers).to(dtype)
    x_val = y_val = None
    if recipe and spec["mode"] == "train":                                        # the rows deltanet trains on
        x, y, x_val, y_val = _split_validation(x, y, recipe.get("val_fraction", 0.0))
    xt = torch.from_numpy(x)                                                      # shares memory with x
    yt = torch.from_numpy(y.astype(np.int64))
    times: list[float] = []
    if spec["mode"] == "predict":
        model.eval()
        with torch.inference_mode():
            times = time_inference(model, xt, spec)
        return {"times": times, "torch_threads": torch.get_num_threads()}

    loss_fn = torch.nn.CrossEntropyLoss()
    if recipe:
        # L2 on the weights only, as deltanet applies it (biases are not decayed)
        decayed = [p for p in model.parameters() if p.ndim > 1]
        others = [p for p in model.parameters() if p.ndim <= 1]
        groups = [{"params": decayed, "weight_decay": recipe["l2"]}, {"params": others, "weight_decay": 0.0}]
        make = {"adam": torch.optim.Adam, "sgd": lambda g, lr: torch.optim.SGD(g, lr=lr, momentum=0.9)}[recipe["optimizer"]]
        opt = make(groups, lr=recipe["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    gen = torch.Generator().manual_seed(spec["seed"] + 2)

    def epoch(n: int) -> float:
        order = torch.randperm(x.shape[0], generator=gen)[:n]
        total = 0.0
        for s in batch_starts(n, b):
            idx = order[s:s + b]
            xb, yb = xt.index_select(0, idx), yt.index_select(0, idx)
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
        return total

    def validate() -> None:                                                       # the recipe's loss on held-out rows
        if x_val is None or not x_val.shape[0]:
            return
        model.eval()
        with torch.inference_mode():
            for s in batch_starts(x_val.shape[0], 1024):
                loss_fn(model(torch.from_numpy(x_val[s:s + 1024])), torch.from_numpy(y_val[s:s + 1024].astype(np.int64)))
        model.train()

    epoch(min(x.shape[0], spec["warmup"] * b))
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        epoch(x.shape[0])
        validate()
        times.append(time.perf_counter() - t0)
    return {"times": times, "torch_threads": torch.get_num_threads()}


def run_sklearn(spec: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    sizes, b = spec["sizes"], spec["batch"]
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="sgd", alpha=0.0, batch_size=b,
                        learning_rate="constant", learning_rate_init=spec["lr"], momentum=spec["momentum"],
                        nesterovs_momentum=False, max_iter=1, shuffle=True, random_state=spec["seed"])
    classes = np.arange(sizes[-1])
    n_warm = min(x.shape[0], max(spec["warmup"] * b, sizes[-1] * 4))
    clf.partial_fit(x[:n_warm], y[:n_warm], classes=classes)                    # initialises the weights
    times = []
    if spec["mode"] == "predict":
        return {"times": time_inference(clf.predict_proba, x, spec)}
    for _ in range(spec["epochs"]):
        t0 = time.perf_counter()
        clf.partial_fit(x, y)                                                     # one epoch of mini-batch SGD
        times.append(time.perf_counter() - t0)
    return {"times": times}


#: Modules each framework imports, loaded before the baseline memory reading so
#: that "peak - before" counts the model, its buffers and training, not the import.
PRELOAD = {"floor": [], "floor-F": [], "torch-floor": ["torch"], "deltanet": ["deltanet", "deltanet.optim"],
           "deltanet-trainer": ["deltanet", "deltanet.training"], "deltanet-command": ["deltanet", "deltanet.cli"],
           "torch": ["torch"], "sklearn": ["sklearn.neural_network"]}

RUNNERS = {"floor": run_floor, "floor-F": run_floor_f, "torch-floor": run_torch_floor, "deltanet": run_deltanet, "deltanet-trainer": run_deltanet_trainer,
           "deltanet-command": run_deltanet_command, "torch": run_torch, "sklearn": run_sklearn}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    for suffix, variable, value in (("-ref", "DELTANET_FAST", "0"), ("-numpy", "DELTANET_KERNELS", "numpy")):
        if spec["framework"].endswith(suffix):          # the reference path alone, or the fast path without kernels
            os.environ[variable] = value
            spec["framework"] = spec["framework"][:-len(suffix)]
    for module in PRELOAD[spec["framework"]]:
        importlib.import_module(module)
    x, y = synthetic_data(spec["n_samples"], spec["sizes"][0], spec["sizes"][-1], spec["dtype"], spec["seed"])
    rss_before = current_rss_mb()
    result = RUNNERS[spec["framework"]](spec, x, y)
    peak = peak_rss_mb()
    result.update({"framework": json.loads(argv[0])["framework"], "mode": spec["mode"], "rss_before_mb": rss_before, "peak_rss_mb": peak,
                   "peak_delta_mb": max(0.0, peak - rss_before), "blas": blas_info(), "pid": os.getpid()})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
