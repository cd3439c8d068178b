"""Data-parallel training over MPI: 2 ranks (``mpiexec -n 2``) against one process training on the same global
batches, the ranks' agreement, a crashing rank, and ``mpiexec -n 2 deltanet train``.

Tolerance: final weights in float64 within rtol 1e-6 (atol 1e-9) of the single-process run; measured here the
largest difference is 2.2e-16 (float rounding: the gradient is summed over two shards instead of one batch).
Batch norm (local batch statistics per rank) and dropout (per-rank masks) do not share the single-process
semantics: those cases are compared with :func:`mpi_cases.emulate`, one process computing the documented
semantics shard by shard (measured: bit-identical).

The all-reduce overlapped with the backward (``DataParallel(overlap=True)``, :mod:`deltanet.distributed.overlap`)
against the blocking one: final weights within rtol 1e-12 (atol 1e-15) in float64; measured bit-identical (on 2
ranks each element's sum is one addition, whichever bucket carries it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.distributed import Shard, data_parallel, shard_bounds
from deltanet.distributed.overlap import OverlappedAllreduce, plan_buckets, ready_indices
from deltanet.optim import flatten

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import mpi_cases  # noqa: E402

RTOL, ATOL = 1e-6, 1e-9
OVERLAP_RTOL, OVERLAP_ATOL = 1e-12, 1e-15


# -- without MPI: how batches are cut ------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2, 5, 64, 65, 129])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_cover_the_batch_in_order(m, size):
    bounds = [shard_bounds(m, size, r) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == m
    assert all(bounds[r][1] == bounds[r + 1][0] for r in range(size - 1))
    sizes = [e - s for s, e in bounds]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)   # the first ranks hold the extra rows


def test_shard_shares_sum_to_one_and_an_empty_shard_computes_a_stand_in_row():
    idx = np.array([5, 3, 9])
    shares = []
    for r in range(2):
        s = Shard(r, 2)
        rows = s.take(idx)
        shares.append(s.fraction)
        assert list(rows) == ([5, 3] if r == 0 else [9])
    assert sum(shares) == 1.0
    s = Shard(1, 2)
    assert list(s.take(np.array([4]))) == [4] and s.empty and s.fraction == 0.0
    w = np.array([0.0, 1.0, 3.0, 0.0])
    s = Shard(1, 2)
    rows = s.take(np.arange(4), w)           # rows 2, 3: weight 3 of 4
    assert list(rows) == [2, 3] and s.fraction == 0.75 and not s.empty
    s = Shard(1, 2)
    rows = s.take(np.arange(4), np.array([1.0, 1.0, 0.0, 0.0]))   # only weight-0 rows: a stand-in of weight > 0
    assert s.empty and s.fraction == 0.0 and w[rows].sum() >= 0 and list(rows) == [0]


def test_the_distributed_argument_is_checked():
    assert data_parallel(None) is None
    with pytest.raises(ValueError, match="distributed must be None, 'mpi'"):
        data_parallel("nccl")


def test_a_missing_mpi4py_says_how_to_install_it(monkeypatch):
    from deltanet.distributed import import_mpi

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'deltanet\[mpi\]'"):
        import_mpi()


# -- without MPI: the overlap's hook and bucket plan ---------------------------------------------------------
def _shared_model() -> dn.modules.Sequential:
    rng = np.random.default_rng(0)
    lin = dn.modules.Linear(4, 4, rng=rng, dtype=np.float64)
    return dn.modules.Sequential(lin, dn.modules.Tanh(), lin, dn.modules.Linear(4, 2, rng=rng, dtype=np.float64))


@pytest.mark.parametrize("make", [lambda: dn.mlp([4, 8, 8, 2], batch_norm=True, rng=0, dtype=np.float64), _shared_model],
                         ids=["mlp_batchnorm", "shared_weights"])
def test_the_backward_hook_runs_after_each_child_and_changes_nothing(make):
    model, x = make(), np.random.default_rng(1).standard_normal((5, 4))
    model.forward(x, training=True)
    model.zero_grad()
    plain = model.backward(np.ones((5, 2)))
    grads = [p.grad.copy() for p in model.parameters()]
    seen, final = [], []
    ready = ready_indices(model)

    def hook(i):
        seen.append(i)              # the parameters ready at i hold their final gradient now
        final.extend(np.array_equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True)
                     if ready[id(p)] == i)

    model.forward(x, training=True)
    model.zero_grad()
    model.after_child_backward = hook
    hooked = model.backward(np.ones((5, 2)))
    del model.after_child_backward
    assert seen == list(range(len(model) - 1, -1, -1))
    assert final and all(final) and len(final) == len(model.parameters())
    np.testing.assert_array_equal(hooked, plain)
    for p, g in zip(model.parameters(), grads, strict=True):
        np.testing.assert_array_equal(p.grad, g)
    assert type(model).after_child_backward is None


def test_a_shared_parameter_is_ready_only_after_its_first_use():
    model = _shared_model()
    ready = ready_indices(model)
    lin, last = model[0], model[3]
    assert [ready[id(p)] for p in lin.parameters()] == [0, 0] and [ready[id(p)] for p in last.parameters()] == [3, 3]


def _plan(bucket_bytes):
    model = dn.mlp([6, 16, 16, 3], rng=1, dtype=np.float64)       # weights 96, 256, 48; biases 16, 16, 3
    (buf,) = flatten(model.parameters())
    return buf, plan_buckets([buf], ready_indices(model), bucket_bytes)


@pytest.mark.parametrize("bucket_bytes", [8, 200, 2048, 1 << 30])
def test_buckets_tile_the_buffer_in_readiness_order(bucket_bytes):
    buf, buckets = _plan(bucket_bytes)
    spans = sorted((b.start, b.start + b.view.size) for b in buckets)
    assert spans[0][0] == 0 and spans[-1][1] == buf.size
    assert all(a[1] == b[0] for a, b in zip(spans[:-1], spans[1:], strict=True))        # no gap, no overlap
    assert all(b.view.base is buf.grad and b.view.size * 8 <= max(bucket_bytes, 8) for b in buckets)
    order = [(b.ready, b.start) for b in buckets]
    assert order == sorted(order, key=lambda k: (-k[0], -k[1]))                        # last layers first
    for b in buckets:               # a parameter "2.weight" belongs to child 2: ready after child 2's backward
        assert b.ready == min(int(p.name.split(".")[0]) for p in b.params)


def test_bucket_sizes_below_a_layer_and_above_the_buffer():
    _, big = _plan(1 << 30)           # one bucket per run of one readiness: W0, W1, W2 | b0, b1, b2
    assert sorted((b.ready, b.view.size) for b in big) == [(0, 16), (0, 96), (2, 16), (2, 256), (4, 3), (4, 48)]
    _, small = _plan(200)             # 25 float64 numbers at most: the 256-number weight in 11 equal pieces
    w1 = [b.view.size for b in small if b.ready == 2 and b.view.size > 16]
    assert len(w1) == 11 and sum(w1) == 256 and set(w1) == {23, 24}
    assert len(small) == 4 + 11 + 2 + 3 and max(b.view.size for b in small) == 24


def test_overlap_falls_back_where_no_plan_applies():
    ov = OverlappedAllreduce(comm=None)
    residual = dn.modules.Residual(dn.mlp([4, 4], rng=0))
    assert not ov.applies(residual, residual.parameters())
    model = dn.mlp([4, 8, 2], rng=0)
    assert not ov.applies(model, model.parameters())           # no flat buffer yet
    buffers = flatten(model.parameters())             # (held: a buffer lives while its optimizer does)
    assert ov.applies(model, model.parameters()) and len(ov.buckets) == 4
    assert not ov.applies(model, model.parameters()[:-1]) and len(buffers) == 1      # a part of a buffer


@pytest.mark.parametrize("kwargs, match", [({"bucket_bytes": 0}, "bucket_bytes must be a positive"),
                                           ({"bucket_bytes": 1.5}, "bucket_bytes must be a positive"),
                                           ({"progress": "spin"}, "progress must be one of")])
def test_overlap_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OverlappedAllreduce(comm=None, **kwargs)


# -- under mpiexec ------------------------------------------------------------------------------------------
def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py and an MPI library: pip install 'deltanet[mpi]'")
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec (pip install mpich)")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for name in ("PMI_SIZE", "PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        env.pop(name, None)                 # pytest itself may run inside an MPI job
    return env


def _launch(*args: str, ranks: int = 2, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_mpiexec(), "-n", str(ranks), *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=cwd)


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """Every case of mpi_cases.CASES trained once by 2 ranks (one mpiexec): case -> rank 0's results."""
    out = tmp_path_factory.mktemp("mpi")
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "train", str(out), *mpi_cases.CASES)
    assert done.returncode == 0, done.stderr
    return {name: dict(np.load(out / f"{name}.npz")) for name in mpi_cases.CASES}


@pytest.mark.parametrize("name", mpi_cases.PLAIN)
def test_two_ranks_train_the_weights_of_one_process(two_rank_runs, name):
    got = two_rank_runs[name]
    expected, history = mpi_cases.single_process(name)
    np.testing.assert_allclose(got["weights"], expected, rtol=RTOL, atol=ATOL)
    # every rank logs the epochs of one process over the same global batches
    np.testing.assert_allclose(got["train_loss"], history["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(got["train_accuracy"], history["train_accuracy"], rtol=1e-12)


@pytest.mark.parametrize("name", [k for k in mpi_cases.CASES if k not in mpi_cases.PLAIN])
def test_batch_norm_and_dropout_follow_the_documented_semantics(two_rank_runs, name):
    got = two_rank_runs[name]
    np.testing.assert_allclose(got["weights"], mpi_cases.emulate(name, 2), rtol=RTOL, atol=ATOL)
    single, _ = mpi_cases.single_process(name)
    assert np.abs(got["weights"] - single).max() > 1e-3        # they are not the single-process semantics


@pytest.mark.parametrize("name", list(mpi_cases.CASES))
def test_every_rank_holds_the_same_weights_and_records(two_rank_runs, name):
    got = two_rank_runs[name]
    assert int(got["ranks"]) == 2
    assert float(got["spread"]) == 0.0
    assert bool(got["records_agree"])


def test_one_rank_is_the_single_process_run_bit_for_bit(tmp_path):
    name = "batchnorm_dropout_equal"                   # rank 0 draws a single process's dropout masks
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "train", str(tmp_path), name, ranks=1)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npz")["weights"], mpi_cases.single_process(name)[0])


@pytest.mark.parametrize("name", ["adam_unequal", "batchnorm_dropout_unequal"])
def test_a_run_resumed_from_a_checkpoint_on_every_rank_continues_it(tmp_path, name):
    # the checkpoint holds rank 0's dropout generators; rank 1 seeds its own from (seed, rank, epoch)
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "resume", str(tmp_path), name)
    assert done.returncode == 0, done.stderr
    expected = mpi_cases.single_process(name)[0] if name in mpi_cases.PLAIN else mpi_cases.emulate(name, 2)
    np.testing.assert_allclose(np.load(tmp_path / f"{name}.npz")["weights"], expected, rtol=RTOL, atol=ATOL)


def test_a_crashing_rank_ends_the_job_at_once():
    start = time.perf_counter()
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "crash", timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    assert "deltanet: error: rank 1 of 2 failed: RuntimeError: boom on rank 1; ending all 2 ranks" in done.stderr
    assert elapsed < 10, f"the job took {elapsed:.1f} s to end"       # measured: about 0.7 s, start-up included


def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_the_same_batch(tmp_path):
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "diverge", str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stderr
    lines = sorted((tmp_path / f"rank{r}.txt").read_text().strip() for r in (0, 1) if (tmp_path / f"rank{r}.txt").exists())
    assert [v.split(":")[0] for v in lines] == ["rank 0", "rank 1"]
    for v in lines:     # both restore epoch 1's weights and stop in epoch 2, batch 3 (rank 0 sees the NaN gradient)
        assert "diverged after 1 epochs" in v and "epoch 2" in v and "batch 3" in v, v


@pytest.fixture(scope="module")
def overlap_runs(tmp_path_factory):
    """mpi_cases.OVERLAP_CASES under every configuration of mpi_cases.OVERLAP, and the fallback models (one mpiexec)."""
    out = tmp_path_factory.mktemp("overlap")
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "overlap", str(out), *mpi_cases.OVERLAP_CASES)
    assert done.returncode == 0, done.stderr
    return {f.name[:-len(".npz")]: dict(np.load(f)) for f in out.glob("*.npz")}


@pytest.mark.parametrize("config", [k for k in mpi_cases.OVERLAP if k != "blocking"])
@pytest.mark.parametrize("name", mpi_cases.OVERLAP_CASES)
def test_overlap_gives_the_weights_of_the_blocking_all_reduce(overlap_runs, name, config):
    got, ref = overlap_runs[f"{name}.{config}"], overlap_runs[f"{name}.blocking"]
    np.testing.assert_allclose(got["weights"], ref["weights"], rtol=OVERLAP_RTOL, atol=OVERLAP_ATOL)
    assert float(got["spread"]) == 0.0 and int(ref["overlapped_steps"]) == 0
    assert int(got["overlapped_steps"]) == int(got["steps"]) > 0          # every step went through the buckets
    expected = {"bucket_above_buffer": 6, "bucket_below_layer": 20}.get(config)
    if expected and "batchnorm" not in name:
        assert int(got["buckets"]) == expected


@pytest.mark.parametrize("kind, overlapped", [("not_sequential", False), ("unfused", False), ("shared_weights", True)])
def test_overlap_falls_back_or_waits_for_shared_weights(overlap_runs, kind, overlapped):
    name = mpi_cases.OVERLAP_CASES[0]
    ref = overlap_runs[f"{name}.{kind}_blocking"]
    for config in ("overlap", "bucket_below_layer"):
        got = overlap_runs[f"{name}.{kind}_{config}"]
        np.testing.assert_allclose(got["weights"], ref["weights"], rtol=OVERLAP_RTOL, atol=OVERLAP_ATOL)
        assert int(got["overlapped_steps"]) == (int(got["steps"]) if overlapped else 0)


@pytest.mark.parametrize("args", [("overlap",), ("overlap", "first")], ids=["epoch2_batch3", "first_batch"])
def test_a_nan_step_under_overlap_stops_every_rank_at_the_same_batch(tmp_path, args):
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "diverge", str(tmp_path), *args, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = sorted((tmp_path / f"rank{r}.txt").read_text().strip() for r in (0, 1) if (tmp_path / f"rank{r}.txt").exists())
    assert [v.split(":")[0] for v in lines] == ["rank 0", "rank 1"]
    where = ("epoch 1", "batch 1/", "after 0 epochs") if "first" in args else ("epoch 2", "batch 3", "after 1 epochs")
    for v in lines:
        assert "diverged" in v and all(w in v for w in where), v


def test_ranks_that_disagree_on_overlap_are_refused():
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "overlap_mismatch", timeout=60)
    assert done.returncode != 0
    assert "must train the same model on the same data" in done.stderr and "no overlap" in done.stderr


def test_ranks_with_different_data_are_refused():
    done = _launch(sys.executable, str(HERE / "mpi_cases.py"), "mismatch", timeout=60)
    assert done.returncode != 0
    assert "must train the same model on the same data" in done.stderr and "rank 1: 99 rows" in done.stderr


# -- the command -----------------------------------------------------------------------------------------------
CLI = ["train", "--data", "spiral", "--epochs", "3", "--dropout", "0", "--dtype", "float64", "--no-report"]


def test_mpiexec_deltanet_train_writes_one_run_directory_with_the_single_process_weights(tmp_path):
    done = _launch(sys.executable, "-m", "deltanet", *CLI, "--name", "mpi", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy:") == 1                  # rank 0 alone reports
    assert done.stderr.count("data-parallel: 2 MPI ranks, global batch 64 (32 rows per rank)") == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["mpi"]
    from deltanet.cli import main

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([*CLI, "--name", "one", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    done = _launch(sys.executable, "-m", "deltanet", *CLI, "--name", "overlap", "--mpi-overlap", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    two, overlapped, one = (dn.load(tmp_path / "runs" / d / "model.safetensors") for d in ("mpi", "overlap", "one"))
    for p, q, o in zip(two.parameters(), one.parameters(), overlapped.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(o.value, p.value, rtol=OVERLAP_RTOL, atol=OVERLAP_ATOL)
    m2, m1 = (json.loads((tmp_path / "runs" / d / "metrics.json").read_text()) for d in ("mpi", "one"))
    assert m2["test_accuracy"] == m1["test_accuracy"] and m2["epochs"] == m1["epochs"] == 3


def test_mpiexec_deltanet_train_stops_every_rank_on_a_usage_error(tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "config.toml").write_text("")
    start = time.perf_counter()
    done = _launch(sys.executable, "-m", "deltanet", *CLI, "--name", "taken", cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "run directory runs/taken already exists" in done.stderr
    assert time.perf_counter() - start < 10
