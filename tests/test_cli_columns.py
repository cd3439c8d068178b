"""``deltanet evaluate|predict --data FILE.csv``: columns matched by name, ids and true labels carried, ``--split all``."""

from __future__ import annotations

import csv
import io
import json
import sys

import numpy as np
import pytest

from deltanet.cli import main
from deltanet.data import Dataset

FEATURES = ["f0", "f1", "f2", "f3"]
LABELS = ["ant", "bee", "cat"]


def run(argv, capsys):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _table(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated classes; the features have different centres and scales, so a swap changes predictions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.0, 10.0, -5.0, 100.0], [4.0, 2.0, 5.0, 60.0], [-4.0, -6.0, 0.0, 20.0]])
    X = centres[y] + rng.normal(scale=[0.5, 1.0, 0.7, 4.0], size=(n, 4))
    return X, y


def write_csv(path, X, y=None, order=None, extra=None):
    """A CSV of ``X`` (columns FEATURES), ``label`` and ``extra`` columns, in the column ``order`` given."""
    cols = {name: [f"{v:.6f}" for v in X[:, j]] for j, name in enumerate(FEATURES)}
    if y is not None:
        cols["label"] = [LABELS[k] for k in y]
    cols.update(extra or {})
    order = order or list(cols)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(order)
        w.writerows(zip(*(cols[c] for c in order), strict=True))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small classifier trained on FEATURES + label (label last), and its training table."""
    d = tmp_path_factory.mktemp("cols")
    X, y = _table()
    path = write_csv(d / "train.csv", X, y)
    buf_out, buf_err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = buf_out, buf_err
    try:
        code = main(["train", "--data", str(path), "--target", "label", "--hidden", "16", "--epochs", "20", "--quiet",
                     "--out-dir", str(d), "--name", "r", "--no-report"])
    finally:
        sys.stdout, sys.stderr = saved
    assert code == 0, buf_err.getvalue()
    return d / "r", X, y


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _predict(run_dir, path, capsys, *more):
    code, out, err = run(["predict", run_dir, "--data", path, *more], capsys)
    assert code == 0, err
    return _rows(out)


def _probs(rows):
    return [(r["prediction"], *(r[f"prob_{c}"] for c in LABELS)) for r in rows]


def test_labelled_csv_with_permuted_columns_gives_identical_predictions(model, tmp_path, capsys):
    run_dir, _, _ = model
    X2, y2 = _table(60, seed=1)
    plain = write_csv(tmp_path / "plain.csv", X2, y2)
    swapped = write_csv(tmp_path / "swapped.csv", X2, y2, order=["label", "f1", "f0", "f3", "f2"])
    base = _predict(run_dir, plain, capsys)
    assert _probs(_predict(run_dir, swapped, capsys)) == _probs(base)
    assert sum(r["prediction"] == LABELS[k] for r, k in zip(base, y2, strict=True)) >= 55  # the model works
    code, out_plain, _ = run(["evaluate", run_dir, "--data", plain], capsys)
    assert code == 0
    code, out_swapped, _ = run(["evaluate", run_dir, "--data", swapped], capsys)
    assert code == 0
    acc = [line for line in out_plain.splitlines() if line.startswith(("accuracy", "loss"))]
    assert acc and acc == [line for line in out_swapped.splitlines() if line.startswith(("accuracy", "loss"))]


def test_extra_id_column_is_ignored_and_carried_with_the_true_label(model, tmp_path, capsys):
    run_dir, _, _ = model
    X2, y2 = _table(30, seed=2)
    ids = [f"s{i:03d}" for i in range(30)]
    plain = write_csv(tmp_path / "plain.csv", X2, y2)
    with_id = write_csv(tmp_path / "id.csv", X2, y2, order=["f3", "id", "f0", "label", "f2", "f1"], extra={"id": ids})
    code, out, err = run(["evaluate", run_dir, "--data", with_id], capsys)
    assert code == 0, err
    assert "/30)" in out
    rows = _predict(run_dir, with_id, capsys)
    assert list(rows[0])[:4] == ["id", "row", "true_label", "prediction"]
    assert [r["id"] for r in rows] == ids
    assert [r["row"] for r in rows] == [str(i) for i in range(30)]
    assert [r["true_label"] for r in rows] == [LABELS[k] for k in y2]
    assert _probs(rows) == _probs(_predict(run_dir, plain, capsys))
    # unlabelled, with an id: the id comes through, there is no true_ column
    no_target = write_csv(tmp_path / "nt.csv", X2, order=["id", "f2", "f1", "f0", "f3"], extra={"id": ids})
    rows2 = _predict(run_dir, no_target, capsys)
    assert list(rows2[0]) == ["id", "row", "prediction", *(f"prob_{c}" for c in LABELS)]
    assert [r["id"] for r in rows2] == ids and _probs(rows2) == _probs(rows)


@pytest.mark.parametrize("labelled", [True, False])
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_missing_feature_column_is_refused_by_name(model, tmp_path, capsys, labelled, command):
    run_dir, _, _ = model
    X2, y2 = _table(9, seed=3)
    path = write_csv(tmp_path / "m.csv", X2, y2 if labelled else None,
                     order=["f0", "f1", "f3", *(["label"] if labelled else [])])
    code, out, err = run([command, run_dir, "--data", path], capsys)
    assert code == 2
    assert "f2" in err and "missing" in err and "Traceback" not in err
    assert out == ""


def test_target_labels_are_matched_to_the_models_classes_by_name(model, tmp_path, capsys):
    """A holdout file with only some of the classes: its labels are the model's classes, not renumbered."""
    run_dir, _, _ = model
    X2, y2 = _table(60, seed=4)
    keep = y2 == 2
    path = write_csv(tmp_path / "cats.csv", X2[keep], y2[keep])
    rows = _predict(run_dir, path, capsys)
    correct = sum(r["prediction"] == "cat" for r in rows)
    code, out, err = run(["evaluate", run_dir, "--data", path], capsys)
    assert code == 0, err
    assert f"({correct}/{len(rows)})" in out and correct >= len(rows) - 2
    # a label the model does not know is refused by name
    bad = tmp_path / "bad.csv"
    bad.write_text("f0,f1,f2,f3,label\n0,10,-5,100,ant\n0,10,-5,100,dog\n")
    code, _, err = run(["evaluate", run_dir, "--data", bad], capsys)
    assert code == 2 and "dog" in err


def test_own_csv_test_split_repeats_training(model, capsys):
    run_dir, _, _ = model
    metrics = json.loads((run_dir / "metrics.json").read_text())
    n = metrics["test_samples"]
    correct = round(metrics["test_accuracy"] * n)
    code, out, err = run(["evaluate", run_dir], capsys)
    assert code == 0, err
    assert f"({correct}/{n})" in out
    code, out, err = run(["predict", run_dir, "--split", "test"], capsys)
    assert code == 0, err
    rows = _rows(out)
    assert len(rows) == n and sum(r["prediction"] == r["true_label"] for r in rows) == correct


def test_split_all_includes_an_official_test_split(model, capsys, monkeypatch):
    """``--split all`` is every row: for a dataset with an official test split (MNIST), training + test rows."""
    import deltanet.cli.predict as predict_cli

    run_dir, X, y = model
    ds = Dataset("withtest", X[:100], y[:100], list(FEATURES), list(LABELS), "classification",
                 X_test=X[100:130], y_test=y[100:130])
    monkeypatch.setattr(predict_cli, "load_data", lambda data: ds)
    code, out, err = run(["predict", run_dir, "--data", "withtest"], capsys)
    assert code == 0, err
    assert len(_rows(out)) == 130
    code, out, err = run(["evaluate", run_dir, "--data", "withtest", "--split", "all"], capsys)
    assert code == 0, err
    assert "/130)" in out
    for command in ("predict", "evaluate"):
        _, out, _ = run([command, "--help"], capsys)
        assert "every row of the data set" in out and "official test rows" in out
