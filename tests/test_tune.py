"""The hyper-parameter search: the course text's ranges, successive halving, ``deltanet tune`` in one process and
spread over 2 MPI ranks (the same results)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deltanet.cli import main
from deltanet.config import load_config
from deltanet.tuning import GRID, best, grid_trials, random_trials, rungs, successive_halving


@pytest.mark.parametrize(("n", "lo", "hi", "eta", "expected"), [
    (27, 1, 27, 3, [(27, 1), (9, 3), (3, 9), (1, 27)]),
    (6, 1, 3, 3, [(6, 1), (2, 3)]),
    (27, 1, 100, 3, [(27, 1), (9, 3), (3, 9), (1, 27)]),
    (10, 2, 5, 2, [(10, 2), (5, 4), (2, 5)]),
    (1, 1, 8, 3, [(1, 1)]),
])
def test_rungs(n, lo, hi, eta, expected):
    assert rungs(n, lo, hi, eta) == expected


def test_random_trials_stay_in_the_course_texts_ranges_and_repeat_with_the_seed():
    trials = random_trials(200, seed=3)
    assert trials == random_trials(200, seed=3) and trials != random_trials(200, seed=4)
    assert all(1e-3 <= t.lr <= 1e-1 and 1e-4 <= t.l2 <= 1e-2 and 0 <= t.dropout <= 0.5 for t in trials)
    assert {t.depth for t in trials} == {1, 2, 3, 4}                    # 2-5 layers with the output layer
    assert {t.width for t in trials} == {None, 64, 128, 256, 512}
    lrs = sorted(math.log10(t.lr) for t in trials)                      # log-uniform: a third per decade-ish
    assert -3 <= lrs[0] < -2.8 and -1.2 < lrs[-1] <= -1 and -2.3 < lrs[100] < -1.7
    assert len(grid_trials()) == math.prod(len(v) for v in GRID.values()) == 72


def test_successive_halving_keeps_the_best_trials_of_each_rung():
    trials = random_trials(27, seed=0)
    calls = []

    def run_rung(alive, epochs):
        calls.append((len(alive), epochs))
        return [{"val_loss": abs(math.log10(t.lr) + 2) + 1 / epochs} for t in alive]   # best near lr 0.01

    results = successive_halving(trials, run_rung, min_epochs=1, max_epochs=9, eta=3)
    assert calls == [(27, 1), (9, 3), (3, 9)]
    closest = sorted(trials, key=lambda t: abs(math.log10(t.lr) + 2))
    assert {r["id"] for r in results if r["rung"] == 2} == {t.id for t in closest[:9]}
    assert {r["id"] for r in results if r["rung"] == 3} == {t.id for t in closest[:3]}
    assert best(results)["id"] == closest[0].id


def test_a_diverged_trial_ranks_last():
    trials = random_trials(3, seed=0)
    results = successive_halving(trials, lambda alive, e: [{"val_loss": None if t.id == 0 else float(t.id)} for t in alive],
                                 min_epochs=1, max_epochs=3, eta=3)
    assert best(results)["id"] == 1


ARGS = ["tune", "--data", "spiral", "--trials", "6", "--max-epochs", "3", "--dtype", "float64", "--quiet"]


def test_deltanet_tune_writes_the_table_the_plot_and_the_best_configuration(tmp_path, capsys):
    assert main([*ARGS, "--out-dir", str(tmp_path), "--name", "t"]) == 0
    run = tmp_path / "t"
    assert sorted(p.name for p in run.iterdir()) == ["best.toml", "tune.csv", "tune.json", "tune.md", "tune.png"]
    rows = list(csv.DictReader((run / "tune.csv").open()))
    assert [r["rung"] for r in rows] == ["1"] * 6 + ["2"] * 2 and {r["epochs"] for r in rows} == {"1", "3"}
    results = json.loads((run / "tune.json").read_text())["results"]
    winner = best(results)
    config = load_config(run / "best.toml")
    assert config.train.lr == pytest.approx(winner["lr"]) and config.train.l2 == pytest.approx(winner["l2"])
    assert config.train.epochs == 3 and config.model.dropout == pytest.approx(winner["dropout"])
    assert len(config.model.hidden) == winner["depth"]
    table = (run / "tune.md").read_text().splitlines()
    assert table[4].startswith(f"| 2 | 3 | {winner['id']} |")            # the last rung's best first
    out = capsys.readouterr().out
    assert f"best: trial {winner['id']}" in out and "deltanet train" in out


@pytest.mark.parametrize(("extra", "message"), [
    (["--eta", "1"], "--eta must be >= 2"),
    (["--val-fraction", "0"], "ranks the trials by their validation loss"),
    (["--min-epochs", "5"], "need 1 <= --min-epochs <= --max-epochs"),
])
def test_deltanet_tune_refuses_what_cannot_work(tmp_path, capsys, extra, message):
    assert main([*ARGS, "--out-dir", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_mpiexec_deltanet_tune_spreads_the_trials_and_finds_the_same(tmp_path):
    pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py and an MPI library: pip install 'deltanet[mpi]'")
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich)")
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "deltanet", *ARGS, "--out-dir", str(tmp_path),
                           "--name", "mpi"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("best: trial") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["mpi"]
    assert main([*ARGS, "--out-dir", str(tmp_path), "--name", "one"]) == 0
    two, one = (json.loads((tmp_path / d / "tune.json").read_text())["results"] for d in ("mpi", "one"))
    assert [(r["rung"], r["id"]) for r in two] == [(r["rung"], r["id"]) for r in one]
    for a, b in zip(two, one, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-9)
    assert {r["rank"] for r in two} == {0, 1} and {r["rank"] for r in one} == {0}
