"""Smoke tests of the benchmark harness (benchmarks/bench_train.py): seconds, tiny shapes, no timing claims."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = _load("bench_train")
workers = _load("_workers")


def _table(md: str, title: str) -> list[list[str]]:
    """The rows (header first) of the markdown table under the heading starting with ``title``."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## " + title))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_quick_run_writes_markdown_and_json(tmp_path):
    assert bench.main(["--quick", "--frameworks", "floor,deltanet", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "train_bench.md").read_text()
    data = json.loads((tmp_path / "train_bench.json").read_text())

    train = _table(md, "Training: seconds")
    head, body = train[0], train[1:]
    assert head == ["network", "batch", "samples", "floor s", "deltanet s"]
    expected = [c for c in bench.QUICK_CASES if c.mode == "train" and not c.recipe]   # recipes need the Trainer
    assert [(r[0], int(r[1])) for r in body] == [(c.name, c.batch) for c in expected]
    ratios = _table(md, "Training: ratios")
    assert ratios[0] == ["network", "batch", "deltanet/floor"]
    for r, q in zip(body, ratios[1:], strict=True):
        seconds = [float(v) for v in r[3:5]]
        assert all(s > 0 for s in seconds)
        assert q[2].endswith((" ok", " MISS"))
        assert float(q[2].split()[0]) == pytest.approx(seconds[1] / seconds[0], rel=0.05)

    infer = _table(md, "Inference: seconds")
    assert len(infer) == 1 + sum(c.mode == "predict" for c in bench.QUICK_CASES)
    assert all(float(v) > 0 for v in infer[1][3:5])
    assert _table(md, "Inference: ratios")[0] == ["network", "batch", "deltanet/floor"]

    memory = _table(md, "Memory")
    assert "deltanet peak" in memory[0] and len(memory) == 1 + len(expected)
    assert float(memory[1][memory[0].index("deltanet peak")]) > 0

    assert len(data["rows"]) == len([c for c in bench.QUICK_CASES if not c.recipe])
    for row in data["rows"]:
        assert not row["errors"]
        assert set(row["times"]) == {"floor", "deltanet"}
        assert all(t > 0 for t in row["times"].values())
        assert row["ratios"]["deltanet/floor"] > 0
        assert row["memory"]["deltanet"]["peak_rss_mb"] > 0
        assert row["memory"]["deltanet"]["peak_delta_mb"] >= 0
    assert data["environment"]["threads"] == 2 and data["environment"]["repeats"] == 1


def test_unknown_framework_is_refused(tmp_path, capsys):
    assert bench.main(["--quick", "--frameworks", "floor,tensorflow", "--out", str(tmp_path)]) == 2
    assert "tensorflow" in capsys.readouterr().err
    assert not (tmp_path / "train_bench.md").exists()


def _fake_runs(times: dict[str, list[float]]) -> dict[str, list[dict]]:
    return {fw: [{"times": [t], "peak_delta_mb": 1.0, "peak_rss_mb": 50.0, "blas": []} for t in ts] for fw, ts in times.items()}


def test_summary_takes_medians_and_flags_targets():
    case = bench.Case("4-3-2", (4, 3, 2), 100, 10, floor_target=1.15, torch_target=0.8, sklearn_target=0.5)
    runs = _fake_runs({"floor": [1.0, 1.2, 5.0], "deltanet": [1.1, 1.3, 1.2], "torch": [2.0, 2.0, 2.0],
                       "sklearn": [2.0, 3.0, 2.5]})
    runs["sklearn"].append({"error": "exit 1: boom"})
    row = bench.summarize(case, runs, "float32")
    assert row["times"]["floor"] == pytest.approx(1.2)          # the median resists the slow outlier
    assert row["ratios"]["deltanet/floor"] == pytest.approx(1.0)
    assert row["ratios"]["deltanet/torch"] == pytest.approx(0.6)
    assert row["ratios"]["deltanet/sklearn"] == pytest.approx(1.2 / 2.5)
    assert row["errors"] == {"sklearn": ["exit 1: boom"]}
    assert row["sizes_mb"]["parameters"] == pytest.approx((4 * 3 + 3 + 3 * 2 + 2) * 4 / 2**20)

    env = {"command": "x", "processor": "cpu", "cpus": 2, "threads": 2, "dtype": "float32", "repeats": 3,
           "epochs_per_process": 1, "python": "3", "numpy_version": "2", "deltanet_version": "0", "torch_version": None,
           "sklearn_version": None, "load_average": 0.0, "blas": {}, "OPENBLAS_CORETYPE": None}
    md = bench.markdown([row], env, ["floor", "deltanet", "torch", "sklearn"])
    assert _table(md, "Training: seconds")[1][3:] == ["1.2", "1.2", "2", "2.5"]
    head, line = _table(md, "Training: ratios")
    cells = dict(zip(head, line, strict=True))
    assert cells["deltanet/floor"] == "1.00 ok"
    assert cells["deltanet/torch"] == "0.60 ok"
    assert cells["deltanet/sklearn"] == "0.48 ok"
    assert "boom" in md

    slow = bench.summarize(case, _fake_runs({"floor": [1.0], "deltanet": [2.0], "torch": [2.0]}), "float32")
    cells = dict(zip(*_table(bench.markdown([slow], env, ["floor", "deltanet", "torch"]), "Training: ratios"), strict=True))
    assert cells["deltanet/floor"] == "2.00 MISS" and cells["deltanet/torch"] == "1.00 MISS"


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_floor_computes_the_products_of_one_training_step(library):
    if library == "torch":
        pytest.importorskip("torch")
    floor = workers.Floor({"sizes": [6, 5, 3], "batch": 4, "dtype": "float64", "seed": 0}, library)
    x = np.random.default_rng(1).standard_normal((7, 6))        # two batches, the last one partial
    floor.epoch(floor.asarray(x))
    w, z, delta, dw, dx = ([np.asarray(a) for a in getattr(floor, k)] for k in ("w", "z", "delta", "dw", "dx"))
    last = x[4:]                                                 # what the buffers hold: the last (partial) batch
    h1 = last @ w[0].T
    np.testing.assert_allclose(z[0][:3], h1)
    np.testing.assert_allclose(z[1][:3], h1 @ w[1].T)
    np.testing.assert_allclose(dw[1], delta[1][:3].T @ h1)
    np.testing.assert_allclose(dw[0], delta[0][:3].T @ last)
    np.testing.assert_allclose(dx[1][:3], delta[1][:3] @ w[1])
    np.testing.assert_allclose(dx[0][:3], delta[0][:3] @ w[0])   # the first layer's input gradient too


SPEC = {"mode": "train", "sizes": [8, 6, 3], "batch": 16, "n_samples": 40, "dtype": "float32", "threads": 1,
        "epochs": 2, "warmup": 1, "lr": 0.01, "momentum": 0.9, "seed": 0}


@pytest.mark.parametrize("framework", ["floor", "deltanet", "sklearn", "torch", "torch-floor"])
@pytest.mark.parametrize("mode", ["train", "predict"])
def test_worker_times_every_framework(framework, mode):
    if framework != "floor" and framework != "deltanet":
        pytest.importorskip("sklearn.neural_network" if framework == "sklearn" else "torch")
    spec = {**SPEC, "framework": framework, "mode": mode}
    x, y = workers.synthetic_data(spec["n_samples"], 8, 3, "float32", 0)
    result = workers.RUNNERS[framework](spec, x, y)
    assert len(result["times"]) == spec["epochs"]
    assert all(t > 0 for t in result["times"])


def test_deltanet_worker_trains():
    """The timed loop is real training: on separable data the summed loss falls from epoch to epoch."""
    spec = {**SPEC, "framework": "deltanet", "epochs": 4, "n_samples": 64, "lr": 0.05}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 64)
    x = (rng.standard_normal((64, 8)) * 0.1 + np.eye(3, 8)[y] * 2).astype(np.float32)
    losses = workers.run_deltanet(spec, x, y)["loss_sum"]
    assert losses[-1] < 0.5 * losses[0]


def test_quick_recipe_row_runs_the_trainer_and_the_command(tmp_path):
    assert bench.main(["--quick", "--frameworks", "floor,deltanet-trainer,deltanet-command", "--cases", "default job",
                       "--mode", "train", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "train_bench.json").read_text())
    (row,) = data["rows"]
    assert row["case"]["recipe"] == "default"
    assert row["times"]["deltanet-trainer"] > 0 and row["times"]["deltanet-command"] > 0
    assert row["command_seconds"] > row["times"]["deltanet-command"]
