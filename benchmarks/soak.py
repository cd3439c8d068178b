"""Soak: repeated fit / predict / save / load for N minutes, sampling the process's resident memory.

    nice -n 19 python benchmarks/soak.py --minutes 30     # the recorded run
    python benchmarks/soak.py --minutes 0.1 --out /tmp/soak  # a few seconds

Each cycle builds a fresh MLP, trains it for a few epochs with a Trainer,
predicts, saves the model file and a checkpoint, loads both back and checks
the loaded model predicts the same. RSS (``/proc/self/statm``, else
``resource.getrusage``'s peak) is sampled after every cycle. The first 10% of
the run is the warm-up (allocator pools, caches, lazily imported modules); the
slope is a least-squares fit over the rest, in MiB per hour. Writes
``soak.md`` (and ``soak.png`` when matplotlib is installed, ``soak.json``
always) under ``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import deltanet as dn  # noqa: E402
from deltanet.io import atomic_write  # noqa: E402
from deltanet.training import Trainer  # noqa: E402


def rss_mib() -> float:
    """Resident set size now, in MiB."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak, which can only grow
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cycle(i: int, folder: Path, X: numpy.ndarray, y: numpy.ndarray) -> None:
    net = dn.Sequential(dn.Linear(X.shape[1], 64, rng=i), dn.ReLU(), dn.Linear(64, 32, rng=i + 1), dn.ReLU(),
                        dn.Linear(32, 3, rng=i + 2))
    trainer = Trainer(net, epochs=3, batch_size=32, seed=i, record_layers=False)
    trainer.fit(X, y)
    before = trainer.predict(X)
    dn.save(net, folder / "model.safetensors", metadata={"cycle": i})
    trainer.save_checkpoint(folder / "state.ckpt")
    again = dn.load(folder / "model.safetensors")
    if not numpy.array_equal(again.forward(X), net.forward(X)):
        raise SystemExit(f"cycle {i}: the loaded model predicts differently")
    resumed = Trainer.load_checkpoint(folder / "state.ckpt")
    if not numpy.array_equal(resumed.predict(X), before):
        raise SystemExit(f"cycle {i}: the checkpoint's model predicts differently")


def slope_per_hour(t: numpy.ndarray, r: numpy.ndarray) -> float:
    if len(t) < 2 or t[-1] == t[0]:
        return 0.0
    return float(numpy.polyfit(t, r, 1)[0] * 3600)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--samples", type=int, default=600, help="training rows per cycle")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    rng = numpy.random.default_rng(0)
    X = rng.normal(size=(args.samples, 20)).astype(numpy.float32)
    y = (X[:, 0] > 0).astype(numpy.int64) + (X[:, 1] > 0.5).astype(numpy.int64)
    times, rss = [], []
    start = time.monotonic()
    deadline = start + args.minutes * 60
    i = 0
    with tempfile.TemporaryDirectory(prefix="deltanet-soak-") as tmp:
        while True:
            cycle(i, Path(tmp), X, y)
            i += 1
            now = time.monotonic()
            times.append(now - start)
            rss.append(rss_mib())
            if i % 50 == 0:
                print(f"{times[-1] / 60:6.1f} min  cycle {i:6d}  RSS {rss[-1]:7.1f} MiB", flush=True)
            if now >= deadline:
                break
    t, r = numpy.array(times), numpy.array(rss)
    warm = t >= 0.1 * t[-1]
    slope = slope_per_hour(t[warm], r[warm])
    result = {"minutes": t[-1] / 60, "cycles": i, "rss_first_mib": r[0], "rss_after_warmup_mib": float(r[warm][0]),
              "rss_end_mib": r[-1], "rss_max_mib": float(r.max()), "slope_mib_per_hour": slope,
              "python": sys.version.split()[0], "numpy": numpy.__version__, "deltanet": dn.__version__,
              "times_s": [round(float(v), 2) for v in t], "rss_mib": [round(float(v), 2) for v in r]}
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out / "soak.json", "w", encoding="utf-8") as f:
        json.dump(result, f)
    figure = ""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(t / 60, r, lw=1)
        ax.axvline(0.1 * t[-1] / 60, color="grey", ls=":", lw=1)
        ax.set_xlabel("minutes")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(0, max(r.max() * 1.2, 1))
        ax.set_title(f"deltanet soak: {i} fit/predict/save/load cycles")
        fig.tight_layout()
        with atomic_write(args.out / "soak.png") as f:
            fig.savefig(f, format="png", dpi=100)
        figure = "\n![RSS over the run](soak.png)\n"
    except ImportError:
        pass
    text = f"""# Soak: repeated fit / predict / save / load

`python benchmarks/soak.py --minutes {args.minutes:g}` (run under `nice -n 19` on a shared 2-core machine).
Each cycle: a fresh 20-64-32-3 MLP, `Trainer.fit` 3 epochs on {args.samples} rows, `predict`,
`deltanet.save` + `Trainer.save_checkpoint`, `deltanet.load` + `Trainer.load_checkpoint`, both checked
to predict the same.

| | |
|---|---|
| duration | {t[-1] / 60:.1f} min |
| cycles | {i} |
| RSS after the first cycle | {r[0]:.1f} MiB |
| RSS after the warm-up (first 10%) | {r[warm][0]:.1f} MiB |
| RSS at the end | {r[-1]:.1f} MiB |
| RSS max | {r.max():.1f} MiB |
| slope after the warm-up (least squares) | {slope:+.2f} MiB/hour |
{figure}
Python {result['python']}, NumPy {result['numpy']}, deltanet {result['deltanet']}. Raw samples: `soak.json`.
"""
    with atomic_write(args.out / "soak.md", "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
