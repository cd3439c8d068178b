"""Training cases for tests/test_distributed.py, and the script it runs on every rank under ``mpiexec``.

    python mpi_cases.py train OUT_DIR CASE...   each case with Trainer(distributed="mpi"); rank 0 writes
                                                OUT_DIR/CASE.npz: its weights, the largest difference between
                                                any rank's weights and its own, the epoch records
    python mpi_cases.py crash                   rank 1 raises in epoch 2 while rank 0 trains on
    python mpi_cases.py mismatch                rank 1 has one row less than rank 0
    python mpi_cases.py diverge                 rank 1 alone gets a NaN output in epoch 2 batch 3; every rank prints
                                                its stop reason and message
    python mpi_cases.py resume OUT_DIR CASE     1 epoch, a checkpoint (rank 0 writes it), a new trainer from it on
                                                every rank, the remaining epochs; rank 0 writes OUT_DIR/CASE.npz
    python mpi_cases.py overlap OUT_DIR CASE... each case under every configuration of OVERLAP (and the models of
                                                FALLBACK); rank 0 writes OUT_DIR/CASE.CONFIG.npz
    python mpi_cases.py diverge OUT_DIR [overlap] [first]
                                                with DataParallel(overlap=True); NaN in epoch 1 batch 1 (the first step) instead
    python mpi_cases.py overlap_mismatch        rank 1 without overlap, rank 0 with

The single-process side (the plain trainer, and an emulation of the data-parallel semantics for batch
normalization and dropout) is in the same file, so both sides build exactly the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

import deltanet as dn
from deltanet.distributed import shard_bounds

#: name -> data size, batch size, optimizer and extras. Batches: 256/64 = four of 64 (shards 32 + 32);
#: 200/65 = 65, 65, 65, 5 (shards 33 + 32, the last 3 + 2); 129/64 = 64, 64, 1 (the last: rank 1 has no row).
CASES: dict[str, dict[str, Any]] = {
    "sgd_momentum_equal": {"n": 256, "batch": 64, "optimizer": "sgd"},
    "sgd_momentum_unequal": {"n": 200, "batch": 65, "optimizer": "sgd"},
    "adam_equal": {"n": 256, "batch": 64, "optimizer": "adam"},
    "adam_unequal": {"n": 200, "batch": 65, "optimizer": "adam"},
    "sgd_momentum_no_layer_records": {"n": 256, "batch": 64, "optimizer": "sgd", "record_layers": False},
    "adam_last_batch_one_row": {"n": 129, "batch": 64, "optimizer": "adam"},
    "adam_weights_l2_clip_validation": {"n": 203, "batch": 50, "optimizer": "adam", "l2": 1e-3, "clip_norm": 0.5,
                                        "schedule": "cosine", "sample_weight": True, "validation_fraction": 0.2},
    # semantics a single process does not share: compared with emulate()
    "batchnorm_dropout_equal": {"n": 256, "batch": 64, "optimizer": "sgd", "batch_norm": True, "dropout": 0.3},
    "batchnorm_dropout_unequal": {"n": 200, "batch": 65, "optimizer": "adam", "batch_norm": True, "dropout": 0.3},
}
#: The cases whose single-process counterpart is the plain trainer (no batch norm, no dropout).
PLAIN = [k for k, c in CASES.items() if not c.get("batch_norm") and not c.get("dropout")]
SEED, EPOCHS = 7, 3
#: DataParallel configurations compared with the blocking all-reduce (``overlap=False``): bucket sizes below
#: one layer (200 B: 25 float64 numbers, the 16x16 weight is 2,048 B) and above the whole buffer.
OVERLAP: dict[str, dict[str, Any]] = {
    "blocking": {"overlap": False},
    "overlap": {"overlap": True},
    "overlap_wait": {"overlap": True, "progress": "wait"},
    "bucket_below_layer": {"overlap": True, "bucket_bytes": 200},
    "bucket_above_buffer": {"overlap": True, "bucket_bytes": 1 << 30},
}
OVERLAP_CASES = ["sgd_momentum_equal", "adam_unequal", "adam_last_batch_one_row", "adam_weights_l2_clip_validation",
                 "batchnorm_dropout_unequal"]


def data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    w = rng.uniform(0.0, 2.0, n)
    w[::7] = 0.0                                   # rows that count for nothing
    return X, y, w


def build(name: str, distributed: Any = None, model: Any = None, fused: bool = True) -> tuple[Any, dict[str, Any]]:
    """The trainer of case ``name`` (float64) and its ``fit`` arguments (``model``: another model than the case's
    MLP; ``fused=False``: per-parameter optimizer arrays, no flat buffer)."""
    c = CASES[name]
    X, y, w = data(c["n"])
    if model is None:
        model = dn.mlp([6, 16, 16, 3], batch_norm=c.get("batch_norm", False), dropout=c.get("dropout", 0.0), rng=1,
                       dtype=np.float64)
    sgd = c["optimizer"] == "sgd"
    kwargs = {"momentum": 0.9} if sgd else {}
    if not fused:
        kwargs["fused"] = False
    trainer = dn.Trainer(model, optimizer=c["optimizer"], lr=0.05 if sgd else 0.01, batch_size=c["batch"],
                         epochs=EPOCHS, seed=SEED, l2=c.get("l2", 0.0), clip_norm=c.get("clip_norm"),
                         schedule=c.get("schedule"), record_layers=c.get("record_layers", True),
                         optimizer_kwargs=kwargs or None, distributed=distributed)
    fit = {"sample_weight": w if c.get("sample_weight") else None,
           "validation_fraction": c.get("validation_fraction", 0.0)}
    return trainer, {"X": X, "y": y, **fit}


def state(model: Any) -> np.ndarray:
    """Every parameter and buffer of ``model``, flat, in float64."""
    return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for _, v in sorted(model.state_dict().items())])


def single_process(name: str) -> tuple[np.ndarray, Any]:
    trainer, fit = build(name)
    history = trainer.fit(fit.pop("X"), fit.pop("y"), **fit)
    return state(trainer.model), history


def emulate(name: str, size: int) -> np.ndarray:
    """One process computing what ``size`` ranks compute, by the documented semantics: rank r's rows of every
    global batch through the model with its own batch-norm running statistics and dropout generators (seeded
    from the seed and r), the gradients weighted by each shard's share and summed, then one optimizer step;
    the running statistics averaged over the ranks at the end of every epoch; rank r > 0 reseeds its dropout
    at every epoch from (seed, r, epoch)."""
    trainer, fit = build(name)
    model, loss, opt = trainer.model, trainer.loss, trainer.optimizer
    X, y = fit["X"], fit["y"]
    n, bs = len(X), trainer.batch_size
    params = model.parameters()
    gens = model.generators()
    dropout_seed = np.random.SeedSequence(SEED).spawn(3)[2]
    gen_states = [[type(g.bit_generator)(s).state for g, s in zip(gens, dropout_seed.spawn(len(gens)), strict=True)]]
    gen_states += [None] * (size - 1)
    buffer_names = [k for k, _ in model.named_buffers()]
    buffers = [{k: v.copy() for k, v in model.named_buffers()} for _ in range(size)]
    live = dict(model.named_buffers())
    n_batches = -(-n // bs)
    for epoch in range(1, EPOCHS + 1):
        for r in range(1, size):
            seq = np.random.SeedSequence([SEED, r], spawn_key=(2, epoch))
            gen_states[r] = [type(g.bit_generator)(s).state for g, s in zip(gens, seq.spawn(len(gens)), strict=True)]
        perm = trainer.rng.permutation(n)
        for b in range(n_batches):
            idx = perm[b * bs:(b + 1) * bs]
            total = [np.zeros_like(p.value) for p in params]
            for r in range(size):
                start, end = shard_bounds(len(idx), size, r)
                rows = idx[start:end]
                for g, s in zip(gens, gen_states[r], strict=True):
                    g.bit_generator.state = s
                for k in buffer_names:
                    live[k][...] = buffers[r][k]
                model.zero_grad()
                out = model.forward(X[rows], training=True)
                loss.forward(out, y[rows])
                model.backward(loss.backward())
                for t, p in zip(total, params, strict=True):
                    t += (len(rows) / len(idx)) * p.grad
                gen_states[r] = [g.bit_generator.state for g in gens]
                buffers[r] = {k: live[k].copy() for k in buffer_names}
            for t, p in zip(total, params, strict=True):
                p.grad = t
            opt.step()
        for k in buffer_names:
            mean = sum(buffers[r][k] for r in range(size)) / size
            for r in range(size):
                buffers[r][k] = mean.copy()
            live[k][...] = mean
    return state(model)


# -- the script run on every rank -----------------------------------------------------------------
def _train(out: Path, names: list[str]) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for name in names:
        trainer, fit = build(name, distributed="mpi")
        history = trainer.fit(fit.pop("X"), fit.pop("y"), **fit)
        mine = state(trainer.model)
        everyone = comm.gather(mine, root=0)
        records = comm.gather([(r["train_loss"], r["train_accuracy"], r["val_loss"]) for r in history.records], root=0)
        if comm.rank == 0:
            spread = max(float(np.abs(w - mine).max()) for w in everyone)
            np.savez(out / f"{name}.npz", weights=mine, spread=spread, ranks=comm.size,
                     records_agree=all(r == records[0] for r in records),
                     train_loss=np.array(history["train_loss"]), train_accuracy=np.array(history["train_accuracy"]))


def _shared_weights_model() -> Any:
    """A Sequential whose first and third children are one Linear (its parameters final only after child 0)."""
    rng = np.random.default_rng(3)
    lin = dn.modules.Linear(6, 6, rng=rng, dtype=np.float64)
    return dn.modules.Sequential(lin, dn.modules.Tanh(), lin, dn.modules.Linear(6, 3, rng=rng, dtype=np.float64))


#: Models and optimizers where overlap falls back (not a Sequential; no flat buffer) or must wait (shared weights).
FALLBACK: dict[str, dict[str, Any]] = {
    "not_sequential": {"model": lambda: dn.modules.Residual(
        dn.mlp([6, 16, 3], rng=1, dtype=np.float64),
        projection=dn.modules.Linear(6, 3, bias=False, rng=np.random.default_rng(2), dtype=np.float64))},
    "unfused": {"fused": False},
    "shared_weights": {"model": _shared_weights_model},
}


def _overlap(out: Path, names: list[str]) -> None:
    from mpi4py import MPI

    from deltanet.distributed import DataParallel

    comm = MPI.COMM_WORLD
    runs = [(name, config, OVERLAP[config], {}) for name in names for config in OVERLAP]
    runs += [(name, f"{kind}_{config}", OVERLAP[config], extra) for name in names[:1] for kind, extra in FALLBACK.items()
             for config in ("blocking", "overlap", "bucket_below_layer")]
    for name, config, kwargs, extra in runs:
        dp = DataParallel(**kwargs)
        model = extra["model"]() if "model" in extra else None
        trainer, fit = build(name, distributed=dp, model=model, fused=extra.get("fused", True))
        trainer.fit(fit.pop("X"), fit.pop("y"), **fit)
        mine = state(trainer.model)
        everyone = comm.gather(mine, root=0)
        if comm.rank == 0:
            np.savez(out / f"{name}.{config}.npz", weights=mine, spread=max(float(np.abs(w - mine).max()) for w in everyone),
                     overlapped_steps=dp.overlapped.steps, steps=EPOCHS * trainer.n_batches,
                     buckets=len(dp.overlapped.buckets))


def _resume(out: Path, name: str) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    trainer, fit = build(name, distributed="mpi")
    X, y = fit.pop("X"), fit.pop("y")
    trainer.fit(X, y, epochs=1, **fit)
    path = out / f"{name}.checkpoint.npz"
    if comm.rank == 0:
        trainer.save_checkpoint(path)
    comm.Barrier()
    again = dn.Trainer.load_checkpoint(path, distributed="mpi")
    again.fit(X, y, epochs=EPOCHS - 1, **fit)
    if comm.rank == 0:
        np.savez(out / f"{name}.npz", weights=state(again.model))


def _crash() -> None:
    class Boom(dn.Callback):
        def on_batch_end(self, trainer: Any, batch: int, loss: float) -> None:
            if trainer.distributed.rank == 1 and trainer.epoch == 2 and batch == 2:
                raise RuntimeError("boom on rank 1")

    X, y, _ = data(4000)
    trainer = dn.Trainer(dn.mlp([6, 64, 3], rng=1), batch_size=32, epochs=1000, distributed="mpi", callbacks=[Boom()])
    trainer.fit(X, y)


def _diverge(out: Path, overlap: bool = False, first: bool = False) -> None:
    from mpi4py import MPI

    from deltanet.distributed import DataParallel

    epoch, at = (1, 1) if first else (2, 3)       # (epochs and batches count from 1)

    class Poison(dn.Callback):
        def on_batch_begin(self, trainer: Any, batch: int) -> None:
            if MPI.COMM_WORLD.rank == 1 and trainer.epoch == epoch and batch == at:
                trainer.model.parameters()[-1].value[0] = np.inf       # this rank's output goes non-finite

    X, y, _ = data(256)
    trainer = dn.Trainer(dn.mlp([6, 16, 3], rng=1, dtype=np.float64), batch_size=64, epochs=5, seed=0,
                         distributed=DataParallel(overlap=overlap, bucket_bytes=256), callbacks=[Poison()])
    history = trainer.fit(X, y)
    rank = MPI.COMM_WORLD.rank        # a file per rank: lines of two ranks forwarded by mpiexec can interleave
    (out / f"rank{rank}.txt").write_text(f"rank {rank}: {history.stop_reason} after {len(history)} epochs: "
                                         f"{history.stop_message}\n")


def _overlap_mismatch() -> None:
    from mpi4py import MPI

    from deltanet.distributed import DataParallel

    X, y, _ = data(100)
    dp = DataParallel(overlap=MPI.COMM_WORLD.rank == 0)
    dn.Trainer(dn.mlp([6, 8, 3], rng=1), batch_size=32, epochs=1, distributed=dp).fit(X, y)


def _mismatch() -> None:
    from mpi4py import MPI

    X, y, _ = data(100)
    cut = 99 if MPI.COMM_WORLD.rank == 1 else 100
    dn.Trainer(dn.mlp([6, 8, 3], rng=1), batch_size=32, epochs=1, distributed="mpi").fit(X[:cut], y[:cut])


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "train":
        _train(Path(sys.argv[2]), sys.argv[3:])
    elif mode == "resume":
        _resume(Path(sys.argv[2]), sys.argv[3])
    elif mode == "crash":
        _crash()
    elif mode == "overlap":
        _overlap(Path(sys.argv[2]), sys.argv[3:])
    elif mode == "diverge":
        _diverge(Path(sys.argv[2]), overlap="overlap" in sys.argv[3:], first="first" in sys.argv[3:])
    elif mode == "overlap_mismatch":
        _overlap_mismatch()
    elif mode == "mismatch":
        _mismatch()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
