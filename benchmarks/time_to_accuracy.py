"""Seconds of training until MNIST test accuracy first reaches a target: deltanet vs PyTorch, same recipe.

Run from the repository root::

    python benchmarks/time_to_accuracy.py                       # 784-512-256-10 ReLU, Adam 1e-3, batch 128, 98%
    python benchmarks/time_to_accuracy.py --optimizer sgd --lr 0.05 --momentum 0.9
    python benchmarks/time_to_accuracy.py --data /path/to/mnist --repeats 5

Both frameworks train the same network with the same initialization scheme
(He normal hidden weights, Xavier normal output weights, zero biases), the
same optimizer and hyper-parameters, the same batch size and the same
per-epoch reshuffling, on MNIST scaled to [0, 1], with ``--threads`` threads.
Every ``--eval-every`` batches (and at the end of every epoch) the whole test
set is classified; the clock stops during that evaluation, so the reported
seconds are training only. Each run is a fresh process; the frameworks
alternate; the table shows the median over ``--repeats`` seeds (runs that
never reach the target within ``--max-epochs`` are counted separately).
Results: ``<out>/time_to_accuracy.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("deltanet", "torch")


def default_data_dir() -> str | None:
    """The project's shared copy of MNIST when it is beside the checkout, else None (the loader's own search)."""
    for candidate in (HERE.parent.parent / "shared" / "datasets" / "mnist", HERE.parent / "shared" / "datasets" / "mnist"):
        if candidate.is_dir():
            return str(candidate)
    return None


# -- one run (worker process) ---------------------------------------------------------
def _batches(n: int, batch: int) -> range:
    return range(0, n, batch)


class Clock:
    """Training seconds, with the evaluations left out."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start: float | None = None

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        assert self._start is not None
        self.total += time.perf_counter() - self._start
        self._start = None
        return self.total


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from deltanet.data import load_mnist

    x_train, y_train, x_test, y_test = load_mnist(args.data)
    if args.train_samples:
        x_train, y_train = x_train[: args.train_samples], y_train[: args.train_samples]
    sizes = [x_train.shape[1], *args.hidden, 10]
    step, accuracy = (_deltanet if args.worker == "deltanet" else _torch)(args, sizes, x_train, y_train, x_test, y_test)
    rng = np.random.default_rng(args.seed + 1000)
    n, b = x_train.shape[0], args.batch
    xbuf = np.empty((b, x_train.shape[1]), x_train.dtype)
    clock, history, batches = Clock(), [], 0
    reached_at = None
    for epoch in range(1, args.max_epochs + 1):
        clock.start()
        order = rng.permutation(n)
        for s in _batches(n, b):
            idx = order[s:s + b]
            step(np.take(x_train, idx, axis=0, out=xbuf[: idx.shape[0]], mode="clip"), y_train[idx])
            batches += 1
            last = s + b >= n
            if batches % args.eval_every == 0 or last:
                seconds = clock.stop()
                acc = accuracy()
                history.append({"epoch": epoch, "batches": batches, "seconds": seconds, "accuracy": acc})
                if acc >= args.target:
                    reached_at = history[-1]
                    break
                if not last:
                    clock.start()
        if reached_at is not None:
            break
    return {"framework": args.worker, "seed": args.seed, "reached": reached_at is not None,
            "seconds": reached_at["seconds"] if reached_at else None,
            "epochs": (reached_at["batches"] / -(-n // b)) if reached_at else None,
            "best_accuracy": max(h["accuracy"] for h in history), "train_seconds": clock.total, "history": history}


def _deltanet(args: argparse.Namespace, sizes: list[int], x, y, x_test, y_test):
    import numpy as np

    import deltanet as dn
    from deltanet.optim import get_optimizer

    net = dn.mlp(sizes, activation="relu", rng=args.seed)
    loss_fn = dn.SoftmaxCrossEntropy()
    hyper: dict[str, Any] = {"lr": args.lr}
    if args.optimizer == "sgd":
        hyper["momentum"] = args.momentum
    opt = get_optimizer(args.optimizer, net.parameters(), **hyper)

    net[0].input_grad = False      # as the Trainer does in fit: no gradient with respect to the data (PyTorch computes none either)

    def step(xb, yb) -> None:
        out = net.forward(xb, training=True)
        loss_fn.forward(out, yb)
        opt.zero_grad()
        opt.fold_gradients()       # SGD momentum: the gradients go straight into the momentum buffer (Adam: no-op)
        net.backward(loss_fn.backward())
        opt.step()

    def accuracy() -> float:
        correct = 0
        for s in _batches(x_test.shape[0], 2000):
            correct += int((np.argmax(net.forward(x_test[s:s + 2000]), axis=1) == y_test[s:s + 2000]).sum())
        return correct / x_test.shape[0]

    return step, accuracy


def _torch(args: argparse.Namespace, sizes: list[int], x, y, x_test, y_test):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    layers: list[Any] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = torch.nn.Linear(d_in, d_out)
        hidden = i < len(sizes) - 2
        with torch.no_grad():                  # deltanet's scheme: He normal hidden, Xavier normal output, zero biases
            if hidden:
                torch.nn.init.kaiming_normal_(lin.weight, mode="fan_in", nonlinearity="relu")
            else:
                torch.nn.init.xavier_normal_(lin.weight)
            lin.bias.zero_()
        layers += [lin, torch.nn.ReLU()] if hidden else [lin]
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    elif args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    else:
        raise ValueError(f"the PyTorch runner knows adam and sgd, got {args.optimizer!r}")
    xt_test, yt_test = torch.from_numpy(x_test), torch.from_numpy(y_test)

    def step(xb, yb) -> None:
        loss = loss_fn(model(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def accuracy() -> float:
        with torch.inference_mode():
            return float((model(xt_test).argmax(dim=1) == yt_test).double().mean())

    return step, accuracy


# -- orchestration --------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=default_data_dir(), help="folder with the four MNIST IDX files")
    p.add_argument("--target", type=float, default=0.98, help="test accuracy to reach (default 0.98)")
    p.add_argument("--hidden", default="512,256", help="hidden widths, comma-separated (default 512,256)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.9, help="for --optimizer sgd")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=100, help="batches between test evaluations (default 100)")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--train-samples", type=int, default=None, help="use only the first N training samples (trials)")
    p.add_argument("--repeats", type=int, default=3, help="seeds per framework (default 3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frameworks", default=None, help="comma-separated subset of deltanet,torch (default: those installed)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.hidden = [int(v) for v in str(args.hidden).split(",") if v.strip()]
    for name in ("batch", "eval_every", "max_epochs", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < args.target <= 1:
        p.error(f"--target must be in (0, 1], got {args.target}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run(args)))
        return 0
    import importlib.util

    wanted = args.frameworks.split(",") if args.frameworks else list(FRAMEWORKS)
    frameworks = [f for f in FRAMEWORKS if f in wanted and importlib.util.find_spec(f) is not None]
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONPATH"] = str(HERE.parent / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    results: dict[str, list[dict[str, Any]]] = {f: [] for f in frameworks}
    for rep in range(args.repeats):
        for fw in frameworks[rep % len(frameworks):] + frameworks[: rep % len(frameworks)]:
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", fw, "--seed", str(rep)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                results[fw].append({"error": " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])})
            else:
                results[fw].append(json.loads(lines[-1]))
            r = results[fw][-1]
            shown = r.get("error") or (f"{r['seconds']:.1f} s, {r['epochs']:.2f} epochs" if r["reached"]
                                       else f"not reached (best {r['best_accuracy']:.4f})")
            print(f"  seed {rep} {fw}: {shown}", file=sys.stderr, flush=True)
    text = report(results, args, argv)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time_to_accuracy.md").write_text(text)
    (args.out / "time_to_accuracy.json").write_text(json.dumps({"argv": argv, "results": results}, indent=1) + "\n")
    return 0


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, argv: list[str]) -> str:
    recipe = (f"{'-'.join(map(str, [784, *args.hidden, 10]))} ReLU, {args.optimizer} lr {args.lr:g}"
              + (f" momentum {args.momentum:g}" if args.optimizer == "sgd" else "")
              + f", batch {args.batch}, test accuracy every {args.eval_every} batches, {args.threads} threads")
    lines = ["# Time to MNIST test accuracy", "", f"Command: `python benchmarks/time_to_accuracy.py {' '.join(argv)}`", "",
             f"Recipe: {recipe}; target {args.target:.2%}.", "",
             "| framework | reached | median seconds (training only) | median epochs | best accuracy | errors |",
             "|---|---|---|---|---|---|"]
    medians = {}
    for fw, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        reached = [r for r in ok if r["reached"]]
        sec = statistics.median(r["seconds"] for r in reached) if reached else None
        medians[fw] = sec
        ep = statistics.median(r["epochs"] for r in reached) if reached else None
        best = max((r["best_accuracy"] for r in ok), default=None)
        errors = "; ".join(r["error"] for r in runs if "error" in r)
        lines.append(f"| {fw} | {len(reached)}/{len(runs)} | {'-' if sec is None else f'{sec:.1f}'} | "
                     f"{'-' if ep is None else f'{ep:.2f}'} | {'-' if best is None else f'{best:.4f}'} | {errors or '-'} |")
    if medians.get("deltanet") and medians.get("torch"):
        lines += ["", f"deltanet / PyTorch: {medians['deltanet'] / medians['torch']:.2f}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
