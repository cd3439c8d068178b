"""Data-parallel training over MPI: 1 process against 2 ranks at the same global batch, on this machine;
with ``--overlap``, also the gradient all-reduce after the backward against overlapped with it.

Run from the repository root (needs ``pip install -e ".[mpi]"``)::

    python benchmarks/bench_mpi.py            # the table, benchmarks/results/mpi.md and mpi.json (a few minutes)
    python benchmarks/bench_mpi.py --overlap  # and the overlap modes' table (about twice as long)
    python benchmarks/bench_mpi.py --quick    # seconds: a smoke test, written to --out

The network is the README's 784-1024-1024-10 MLP (ReLU, float32, 1.86 M parameters, Adam), on random
MNIST-shaped data (what is timed does not depend on the values). Each configuration runs in its own
``mpiexec`` job:

* **1 process**: ``mpiexec -n 1`` with ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=NUMBA_NUM_THREADS=<cores>``
  and the plain trainer (``distributed=None``: no all-reduce, nothing of MPI in the step);
* **2 ranks**: ``mpiexec -n 2`` with one thread per rank (``...=cores/2``) and ``distributed="mpi"``.

So both use every core. Per job and global batch: one untimed epoch (warm-up), then ``--epochs`` timed
epochs (``history["time"]``, rank 0's). The two jobs alternate for ``--rounds`` rounds, so that a busy spell
of a shared machine hits both; the table gives the median over all timed epochs of a configuration (and the
fastest), and the 1-minute load average seen around the jobs. The all-reduce share is the time the gradient
all-reduce took (scaling by the shard's share + ``MPI_Allreduce`` of the flat float32 gradient buffer,
waiting for the slower rank included) over the epoch time. A micro-benchmark times the all-reduce of the
same buffer alone.

``--overlap`` adds 2-rank jobs with ``DataParallel(overlap=True)`` (:mod:`deltanet.distributed.overlap`):
buckets of the gradient sent by ``MPI_Iallreduce`` as the backward fills them, with ``progress="wait"``
(posted, then waited for after the backward), ``progress="test"`` (``MPI_Testall`` after every layer's
backward), MPICH's progress thread (``MPIR_CVAR_ASYNC_PROGRESS=1``, posted and waited for), and
``progress="test"`` with 1 MiB instead of 4 MiB buckets. All jobs of a round run one after the other, the
order rotating from round to round. For these jobs the all-reduce column is the time spent in the
overlap's calls (posting, testing, the final wait): the part the backward did not hide.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import deltanet as dn

SIZES = [784, 1024, 1024, 10]
RESULTS = Path(__file__).resolve().parent / "results"
#: The 2-rank configurations: name -> (DataParallel keyword arguments, extra environment).
MODES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "blocking": ({"overlap": False}, {}),
    "overlap, wait": ({"overlap": True, "progress": "wait"}, {}),
    "overlap, test": ({"overlap": True, "progress": "test"}, {}),
    "overlap, progress thread": ({"overlap": True, "progress": "wait"}, {"MPIR_CVAR_ASYNC_PROGRESS": "1"}),
    "overlap, test, 1 MiB": ({"overlap": True, "progress": "test", "bucket_bytes": 1 << 20}, {}),
}


def _worker(args: argparse.Namespace) -> None:
    """One configuration, inside mpiexec: the timings of rank 0, as one JSON line on stdout."""
    from mpi4py import MPI

    from deltanet.distributed import DataParallel

    comm = MPI.COMM_WORLD
    kwargs = MODES[args.mode][0]
    rng = np.random.default_rng(0)
    X = rng.random((args.rows, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], args.rows)
    out: dict[str, Any] = {"ranks": comm.size, "threads": os.environ.get("OPENBLAS_NUM_THREADS"), "batches": {},
                           "mode": args.mode if comm.size > 1 else "one process"}
    for batch in args.batches:
        model = dn.mlp(SIZES, rng=1)
        distributed = DataParallel(**kwargs) if comm.size > 1 else None
        trainer = dn.Trainer(model, optimizer="adam", lr=1e-3, batch_size=batch, epochs=1, seed=0,
                             distributed=distributed, handle_interrupt=False)
        trainer.fit(X, y)                                   # warm-up: caches, the flat buffers, Numba
        dp = trainer.distributed
        grad0 = dp.gradient_seconds if dp else 0.0
        trainer.fit(X, y, epochs=args.epochs)
        times = [r["time"] for r in trainer.history.records[1:]]
        steps = args.epochs * trainer.n_batches
        grad = (dp.gradient_seconds - grad0) if dp else 0.0
        out["batches"][batch] = {"epoch_times": times, "allreduce_s": grad, "steps": steps,
                                 "steps_per_epoch": trainer.n_batches,
                                 "buckets": len(dp.overlapped.buckets) if dp and dp.overlap else 0}
    # the all-reduce of the gradient buffer alone
    n_params = dn.mlp(SIZES, rng=1).num_parameters()
    buf = np.ones(n_params, dtype=np.float32)
    for _ in range(3):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    comm.Barrier()
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    out["allreduce_alone_s"] = (time.perf_counter() - start) / reps
    out["buffer_bytes"] = int(buf.nbytes)
    if comm.rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def _run(ranks: int, threads: int, args: argparse.Namespace, mode: str = "blocking") -> dict[str, Any]:
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install -e '.[mpi]'")
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env.update(MODES[mode][1])
    cmd = [mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", "--rows", str(args.rows),
           "--epochs", str(args.epochs), "--mode", mode, "--batches", *map(str, args.batches)]
    load = [os.getloadavg()[0]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    load.append(os.getloadavg()[0])
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    line = next(v for v in done.stdout.splitlines() if v.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "load": load}


def _merge(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one configuration: all epoch times and all-reduce times per batch."""
    out: dict[str, Any] = {"ranks": jobs[0]["ranks"], "threads": jobs[0]["threads"], "batches": {},
                           "mode": jobs[0]["mode"],
                           "load": [v for j in jobs for v in j["load"]],
                           "allreduce_alone_s": min(j["allreduce_alone_s"] for j in jobs),
                           "buffer_bytes": jobs[0]["buffer_bytes"]}
    for batch in jobs[0]["batches"]:
        times = [t for j in jobs for t in j["batches"][batch]["epoch_times"]]
        grad = sum(j["batches"][batch]["allreduce_s"] for j in jobs)
        steps = sum(j["batches"][batch]["steps"] for j in jobs)
        out["batches"][batch] = {"epoch_s": statistics.median(times), "fastest_s": min(times), "epoch_times": times,
                                 "allreduce_s_per_step": grad / steps, "allreduce_share": grad / sum(times),
                                 "steps_per_epoch": jobs[0]["batches"][batch]["steps_per_epoch"],
                                 "buckets": jobs[0]["batches"][batch]["buckets"]}
    return out


def _markdown(one: dict[str, Any], two: dict[str, Any], args: argparse.Namespace, cores: int) -> str:
    n_params = dn.mlp(SIZES, rng=1).num_parameters()
    lines = [
        "# Data-parallel training over MPI: 1 process vs 2 ranks",
        "",
        f"`python benchmarks/bench_mpi.py{' --overlap' if args.overlap else ''}` on {platform.machine()} with {cores} cores ({platform.processor() or 'cpu'}), "
        f"Python {platform.python_version()}, NumPy {np.__version__}, MPICH via mpi4py.",
        "",
        f"Network {'-'.join(map(str, SIZES))} (ReLU, float32, {n_params:,} parameters), Adam, {args.rows} random "
        f"MNIST-shaped rows; per cell the median (fastest) of {args.epochs} timed epochs x {args.rounds} rounds, each "
        "job after one warm-up epoch; the jobs alternate.",
        f"1 process: `mpiexec -n 1`, plain trainer, OMP/OPENBLAS/NUMBA threads = {cores}. "
        f"2 ranks: `mpiexec -n 2`, `distributed=\"mpi\"`, threads = {cores // 2} per rank. Same global batch.",
        "",
        "| global batch | steps/epoch | 1 process s/epoch | 2 ranks s/epoch | speed-up | all-reduce ms/step | all-reduce share |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch in args.batches:
        a, b = one["batches"][str(batch)], two["batches"][str(batch)]
        lines.append(f"| {batch} | {a['steps_per_epoch']} | {a['epoch_s']:.3f} ({a['fastest_s']:.3f}) | "
                     f"{b['epoch_s']:.3f} ({b['fastest_s']:.3f}) | {a['epoch_s'] / b['epoch_s']:.2f}x | "
                     f"{1e3 * b['allreduce_s_per_step']:.2f} | {100 * b['allreduce_share']:.1f}% |")
    load = one["load"] + two["load"]
    mb = two["buffer_bytes"] / 1e6
    lines += [
        "",
        f"All-reduce of the {mb:.2f} MB gradient buffer alone, 2 ranks on this machine (shared memory): "
        f"{1e3 * two['allreduce_alone_s']:.2f} ms ({2 * mb / two['allreduce_alone_s'] / 1e3:.2f} GB/s counting "
        "2x the buffer per rank, the ring all-reduce's traffic).",
        "",
        "The all-reduce column includes the scaling of the buffer by the shard's share and the wait for the slower "
        "rank; the share is that time over the epoch time.",
        f"1-minute load average around the jobs: {min(load):.2f} to {max(load):.2f} (a value well above the "
        f"{cores} cores means another program shared the machine during the measurement).",
        "",
    ]
    return "\n".join(lines)


def _overlap_markdown(modes: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    base = modes["blocking"]
    lines = [
        "## The all-reduce overlapped with the backward pass (2 ranks)",
        "",
        "`python benchmarks/bench_mpi.py --overlap`, the same jobs and rounds as above (the blocking row is the "
        "2-rank column above); 4 MiB buckets unless said. Seconds per epoch, median (fastest); the all-reduce "
        "column is, for the overlap modes, the time spent in the overlap's calls per step (posting, testing, the "
        "final wait): what the backward did not hide.",
        "",
        "| global batch | mode | buckets | s/epoch | vs blocking | all-reduce ms/step | all-reduce share |",
        "|---:|:---|---:|---:|---:|---:|---:|",
    ]
    for batch in args.batches:
        ref = base["batches"][str(batch)]["epoch_s"]
        for name, m in modes.items():
            b = m["batches"][str(batch)]
            lines.append(f"| {batch} | {name} | {b['buckets'] or 1} | {b['epoch_s']:.3f} ({b['fastest_s']:.3f}) | "
                         f"{ref / b['epoch_s']:.2f}x | {1e3 * b['allreduce_s_per_step']:.2f} | "
                         f"{100 * b['allreduce_share']:.1f}% |")
    load = [v for m in modes.values() for v in m["load"]]
    lines += ["", f"1-minute load average around these jobs: {min(load):.2f} to {max(load):.2f}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--overlap", action="store_true", help="also time the overlapped all-reduce modes (2 ranks)")
    p.add_argument("--mode", default="blocking", choices=list(MODES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.quick:
        args.rows, args.epochs, args.batches, args.rounds = 512, 1, [128], 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    configs = ["one process", *(MODES if args.overlap else ["blocking"])]
    jobs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for r in range(args.rounds):
        for c in configs[r % len(configs):] + configs[:r % len(configs)]:     # the order rotates every round
            if c == "one process":
                jobs[c].append(_run(1, cores, args))
            else:
                jobs[c].append(_run(2, max(1, cores // 2), args, c))
    merged = {c: _merge(j) for c, j in jobs.items()}
    one, two = merged["one process"], merged["blocking"]
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"one_process": one, "two_ranks": two, "rows": args.rows, "epochs": args.epochs, "rounds": args.rounds,
              "cores": cores}
    if args.overlap:
        record["two_ranks_modes"] = {c: merged[c] for c in MODES}
    (args.out / "mpi.json").write_text(json.dumps(record, indent=1) + "\n")
    md = _markdown(one, two, args, cores)
    if args.overlap:
        md += "\n" + _overlap_markdown({c: merged[c] for c in MODES}, args)
    (args.out / "mpi.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
