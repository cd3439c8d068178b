"""The ``deltanet`` command, through ``main(argv)`` (and the installed script once)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli import main
from deltanet.config import load_config, section_specs
from deltanet.data import list_datasets

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
FIGURES = ("loss.png", "accuracy.png", "learning_rate.png", "gradient_norms.png", "dead_units.png", "update_ratios.png",
           "confusion_matrix.png",
           "decision_boundary.png")

TINY = ["--data", "spiral", "--n-samples", "100", "--hidden", "8", "--epochs", "3", "--quiet"]


def run(argv, capsys):
    """``main(argv)`` -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny spiral run with its report, shared by the tests that read a run directory."""
    out_dir = tmp_path_factory.mktemp("runs")
    buf_out, buf_err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = buf_out, buf_err
    try:
        code = main(["train", *TINY, "--epochs", "4", "--out-dir", str(out_dir), "--name", "r"])  # with the report
    finally:
        sys.stdout, sys.stderr = saved
    assert code == 0, buf_err.getvalue()
    return out_dir / "r", buf_out.getvalue()


# -- train ----------------------------------------------------------------------------------------

def test_train_writes_the_run_directory(trained):
    run_dir, stdout = trained
    expected = ("model.safetensors", "config.toml", "history.json", "history.csv", "metrics.json", "report.html")
    for name in expected + (FIGURES if HAVE_MATPLOTLIB else ()):
        assert (run_dir / name).is_file(), name
    history = json.loads((run_dir / "history.json").read_text())
    assert [r["epoch"] for r in history["records"]] == [1, 2, 3, 4]
    assert len((run_dir / "history.csv").read_text().strip().splitlines()) == 5
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and metrics["test_samples"] == 20
    assert f"test accuracy: {100 * metrics['test_accuracy']:.2f}%" in stdout
    if HAVE_MATPLOTLIB:
        assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (run_dir / "report.html").read_text().count('<img src="data:image/png;base64,') == len(FIGURES)


def test_saved_config_is_the_exact_configuration(trained):
    run_dir, _ = trained
    cfg = load_config(run_dir / "config.toml")
    assert cfg.model.hidden == [8] and cfg.train.epochs == 4
    assert cfg.data.name == "spiral" and cfg.data.n_samples == 100
    assert cfg.train.lr == 0.003 and cfg.train.loss == "cross_entropy" and cfg.data.standardize is True
    mf = dn.load_model_file(run_dir / "model.safetensors")
    assert mf.metadata["config"] == cfg.to_dict()
    assert "standardizer" in mf.preprocessing and mf.preprocessing["class_names"] == ["0", "1", "2"]


def test_training_again_from_the_saved_config_repeats_the_run(trained, tmp_path, capsys):
    run_dir, _ = trained
    code, _, err = run(["train", run_dir / "config.toml", "--out-dir", tmp_path, "--name", "again", "--quiet",
                        "--no-report"], capsys)
    assert code == 0, err
    strip = [{k: v for k, v in r.items() if k != "time"} for r in json.loads((run_dir / "history.json").read_text())["records"]]
    again = [{k: v for k, v in r.items() if k != "time"}
             for r in json.loads((tmp_path / "again" / "history.json").read_text())["records"]]
    assert again == strip
    assert (tmp_path / "again" / "config.toml").read_text() == (run_dir / "config.toml").read_text()
    assert not (tmp_path / "again" / "report.html").exists()


def test_options_override_the_config_file(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nhidden = [5]\n[data]\nname = "xor"\nn_samples = 100\n[train]\nlr = 0.5\nepochs = 1\n')
    code, _, err = run(["train", cfg, "--lr", "0.02", "--layers", "2", "--out-dir", tmp_path, "--name", "o", "--quiet",
                        "--no-report"], capsys)
    assert code == 0, err
    saved = tomllib.loads((tmp_path / "o" / "config.toml").read_text())
    assert saved["train"]["lr"] == 0.02 and saved["train"]["epochs"] == 1
    assert saved["model"]["hidden"] == dn.geometric_hidden_sizes(2, 2, 2)  # --layers replaced the file's hidden
    assert "layers" not in saved["model"] and saved["data"]["name"] == "xor"


def test_explicit_layer_config_trains(tmp_path, capsys):
    cfg = tmp_path / "layers.toml"
    cfg.write_text('[[model.layers]]\ntype = "Linear"\nin_features = 2\nout_features = 6\n'
                   '[[model.layers]]\ntype = "Tanh"\n'
                   '[[model.layers]]\ntype = "Linear"\nin_features = 6\nout_features = 2\n'
                   '[data]\nname = "moons"\nn_samples = 100\n[train]\nepochs = 2\n')
    code, out, err = run(["train", cfg, "--out-dir", tmp_path, "--name", "x", "--quiet", "--no-report"], capsys)
    assert code == 0, err
    net = dn.load(tmp_path / "x" / "model.safetensors")
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear"]
    assert "test accuracy:" in out


def test_run_names_are_unique_and_protected(tmp_path, capsys):
    args = [*TINY, "--epochs", "1", "--out-dir", tmp_path, "--no-report"]
    assert run(["train", *args], capsys)[0] == 0
    assert run(["train", *args], capsys)[0] == 0
    assert len(list(tmp_path.iterdir())) == 2  # two timestamped directories, never one overwritten
    assert run(["train", *args, "--name", "n"], capsys)[0] == 0
    code, _, err = run(["train", *args, "--name", "n"], capsys)
    assert code == 2 and "already exists" in err
    assert run(["train", *args, "--name", "n", "--overwrite"], capsys)[0] == 0


def test_regression_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 2))
    path = tmp_path / "r.csv"
    with open(path, "w") as f:
        f.write("u,v,price\n")
        for a, b in X:
            f.write(f"{a:.6f},{b:.6f},{2 * a - b + 0.5:.6f}\n")
    code, out, err = run(["train", "--data", path, "--target", "price", "--hidden", "8", "--epochs", "2",
                          "--out-dir", tmp_path, "--name", "reg", "--quiet", "--no-report"], capsys)
    assert code == 0, err
    assert "test RMSE:" in out and "R^2:" in out
    saved = load_config(tmp_path / "reg" / "config.toml")
    assert saved.train.loss == "mse" and Path(saved.data.path).is_absolute()
    code, out, _ = run(["evaluate", tmp_path / "reg"], capsys)
    assert code == 0 and "RMSE:" in out


def test_without_matplotlib_the_report_has_tables_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run(["train", *TINY[:-1], "--epochs", "1", "--out-dir", tmp_path, "--name", "n"], capsys)
    assert code == 0
    assert "figures skipped: matplotlib is not installed" in err
    assert (tmp_path / "n" / "report.html").exists() and not list((tmp_path / "n").glob("*.png"))


# -- evaluate, predict ------------------------------------------------------------------------------

def test_evaluate_repeats_the_test_split(trained, capsys):
    run_dir, _ = trained
    metrics = json.loads((run_dir / "metrics.json").read_text())
    code, out, _ = run(["evaluate", run_dir], capsys)
    assert code == 0
    n = metrics["test_samples"]
    correct = round(metrics["test_accuracy"] * n)
    assert f"accuracy: {100 * correct / n:.2f}% ({correct}/{n})" in out
    assert f"loss:     {metrics['test_loss']:.4f}" in out
    code, out, _ = run(["evaluate", run_dir / "model.safetensors", "--data", "spiral", "--n-samples", "60"], capsys)
    assert code == 0 and "/60)" in out and "all rows (60 samples)" in out


def test_predict_writes_labels_and_probabilities(trained, tmp_path, capsys):
    run_dir, _ = trained
    target = tmp_path / "p.csv"
    code, _, err = run(["predict", run_dir, "--data", "spiral", "--n-samples", "30", "--output", target], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 30
    assert list(rows[0]) == ["row", "prediction", "prob_0", "prob_1", "prob_2"]
    for r in rows:
        probs = np.array([float(r[f"prob_{k}"]) for k in "012"])
        assert abs(probs.sum() - 1) < 1e-4
        assert r["prediction"] == str(int(probs.argmax()))
    # to standard output, on the model's own test split: the same predictions as the model itself
    code, out, _ = run(["predict", run_dir, "--split", "test"], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 21


def test_predict_reads_feature_columns_by_name(trained, tmp_path, capsys):
    run_dir, _ = trained
    mf = dn.load_model_file(run_dir / "model.safetensors")
    path = tmp_path / "new.csv"
    path.write_text("x2,extra,x1\n0.5,9,0.1\n-0.3,9,0.2\n")  # reordered columns, an extra one, no target
    code, out, err = run(["predict", run_dir, "--data", path], capsys)
    assert code == 0, err
    got = [r["prediction"] for r in csv.DictReader(io.StringIO(out))]
    scaler = dn.data.Standardizer.from_dict(mf.preprocessing["standardizer"])
    logits = mf.model.forward(scaler.transform(np.array([[0.1, 0.5], [0.2, -0.3]])).astype(np.float32))
    assert got == [str(k) for k in logits.argmax(axis=1)]


# -- summary, gradcheck, datasets ------------------------------------------------------------------------

def test_summary_of_a_model(trained, capsys):
    run_dir, _ = trained
    code, out, _ = run(["summary", run_dir], capsys)
    assert code == 0
    net = dn.load(run_dir / "model.safetensors")
    assert "Linear(2 -> 8)" in out and "Linear(8 -> 3)" in out and "(B, 8)" in out
    total = out.strip().splitlines()[-1].split()
    assert total[0] == "total" and total[-2] == f"{net.num_parameters():,}" and total[-1] == f"{net.flops((1, 2)):,}"


def test_summary_shows_the_widths_chosen_for_a_depth(capsys):
    code, out, _ = run(["summary", "--data", "spiral", "--n-samples", "30", "--layers", "3"], capsys)
    assert code == 0
    widths = dn.geometric_hidden_sizes(2, 3, 3)
    assert f"hidden widths: {widths}" in out and "sqrt(d_(l-1) d_(l+1))" in out
    assert out.count("Linear(") == 4


def test_gradcheck_passes_and_lists_every_layer(capsys):
    code, out, _ = run(["gradcheck", "--data", "spiral", "--n-samples", "40", "--hidden", "6,5", "--batch-norm",
                        "--max-entries", "20"], capsys)
    assert code == 0
    for text in ("Linear(2 -> 6, no bias)", "BatchNorm(num_features=6)", "Linear(5 -> 3)", "SoftmaxCrossEntropy", "passed"):
        assert text in out
    errors = [float(line.split()[-2]) for line in out.splitlines() if line.rstrip().endswith(" ok")]
    assert len(errors) == 7 and max(errors) < 1e-6


def test_gradcheck_fails_on_a_wrong_backward(capsys, monkeypatch):
    original = dn.ReLU.backward
    monkeypatch.setattr(dn.ReLU, "backward", lambda self, g: 1.5 * original(self, g))
    code, out, _ = run(["gradcheck", "--data", "xor", "--n-samples", "40", "--hidden", "4", "--max-entries", "10"], capsys)
    assert code == 1 and "FAIL" in out and "FAILED" in out


def test_datasets_lists_every_dataset(capsys):
    code, out, _ = run(["datasets"], capsys)
    assert code == 0
    for info in list_datasets():
        assert info.name in out and info.source in out
    code, out, _ = run(["datasets", "--json"], capsys)
    assert [d["name"] for d in json.loads(out)] == [i.name for i in list_datasets()]


# -- help and version ----------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "summary", "gradcheck", "datasets", "export",
                                     "playground"])
def test_help_of_every_command(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: deltanet {command}")
    if command == "train":
        for section in ("model", "data", "train"):
            for key in section_specs(section):
                if (section, key) not in (("data", "name"), ("data", "path")):
                    flag = {"seed": "--data-seed"}.get(key, "--" + key.replace("_", "-")) if section == "data" else \
                        "--" + key.replace("_", "-")
                    assert flag in out, flag
        assert "(default: 64)" in out and "(default: relu)" in out and "(default: runs)" in out


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"deltanet {dn.__version__}"


# -- user mistakes: one line on stderr, exit 2, no traceback --------------------------------------------

@pytest.fixture
def files(tmp_path):
    (tmp_path / "typo.toml").write_text("[train]\nlearning_rate = 0.1\n")
    (tmp_path / "broken.toml").write_text("[train\nlr = 1\n")
    (tmp_path / "unknown_section.toml").write_text("[trian]\nlr = 1\n")
    (tmp_path / "wide.toml").write_text('[[model.layers]]\ntype = "Linear"\nin_features = 5\nout_features = 3\n')
    (tmp_path / "t.csv").write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(12)))
    (tmp_path / "junk.safetensors").write_bytes(b"hello")
    return tmp_path


MISTAKES = [
    (["train", "{d}/missing.toml"], "config file not found"),
    (["train", "{d}/typo.toml"], "unknown key 'learning_rate' in [train]; valid keys:"),
    (["train", "{d}/broken.toml"], "not valid TOML"),
    (["train", "{d}/unknown_section.toml"], "did you mean [train]?"),
    (["train", "--epochs", "0"], "--epochs must be an int >= 1, got 0"),
    (["train", "--lr", "abc"], "argument --lr: expected a number, got 'abc'"),
    (["train", "--lr", "-1"], "--lr must be > 0, got -1"),
    (["train", "--batch-size", "1.5"], "expected an integer"),
    (["train", "--dropout", "1"], "--dropout must be in [0, 1)"),
    (["train", "--hidden", "64,0"], "comma-separated positive integers"),
    (["train", "--activation", "rleu"], "did you mean 'relu'?"),
    (["train", "--optimizer", "adamm"], "did you mean 'adam'?"),
    (["train", "--foo"], "unrecognized arguments: --foo"),
    (["train", "--epohcs", "3"], "did you mean --epochs?"),
    (["train", "--val-fraction", "0.5", "--test-fraction", "0.5"], "--val-fraction + --test-fraction must be < 1"),
    (["train", "--data", "nosuch"], "unknown data set 'nosuch'"),
    (["train", "--data", "{d}/missing.csv"], "data file not found"),
    (["train", "--data", "{d}/t.csv", "--target", "nocol"], "target column 'nocol' not found"),
    (["train", "--data", "spiral", "--target", "y"], "names a CSV column"),
    (["train", "--data", "digits", "--n-samples", "10"], "applies to generated datasets"),
    (["train", "{d}/wide.toml", "--data", "xor"], "do not fit the data (2 features)"),
    (["train", "{d}/wide.toml", "--dropout", "0.1"], "only apply to the short form"),
    (["train", "--name", "a/b"], "--name must be a plain directory name"),
    (["train", "--data", "xor", "--val-fraction", "0", "--patience", "3"], "set [data] val_fraction (--val-fraction) > 0"),
    (["train", "--data", "xor", "--loss", "mse"], "'mse' does not fit a classification dataset"),
    (["train", "--data", "mnist", "--data-dir", "{d}"], "not found"),
    (["evaluate", "{d}/missing.safetensors"], "model file not found"),
    (["evaluate", "{d}/junk.safetensors"], "junk.safetensors"),
    (["evaluate", "{d}"], "without model.safetensors"),
    (["predict", "{d}/junk.safetensors", "--split", "everything"], "invalid choice: 'everything'"),
    (["summary", "{d}/missing.toml"], "config file not found"),
    (["gradcheck", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["trian"], "invalid choice: 'trian' (did you mean 'train'?"),
    ([], "missing command"),
]


@pytest.mark.parametrize("argv, fragment", MISTAKES, ids=[" ".join(a) or "(none)" for a, _ in MISTAKES])
def test_user_mistakes_exit_2_with_one_line(argv, fragment, files, capsys, monkeypatch):
    monkeypatch.chdir(files)  # no stray run directories
    code, out, err = run([a.format(d=files) for a in argv], capsys)
    assert code == 2
    assert err.startswith("deltanet: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and out == ""
    assert fragment in err
    assert not (files / "runs").exists()


def test_divergence_is_reported_in_one_line_without_a_traceback(tmp_path, capsys):
    code, out, err = run(["train", "--data", "spiral", "--n-samples", "100", "--epochs", "8", "--optimizer", "sgd",
                          "--lr", "10", "--out-dir", tmp_path, "--no-report", "--quiet"], capsys)
    assert "Traceback" not in err and "diverged" in out + err
    assert code == 3  # EXIT_DIVERGED
    assert "--lr (now 10)" in err and "--clip 1" in err and "clip_norm" not in out + err


# -- the installed command --------------------------------------------------------------------------

def test_installed_console_script(tmp_path):
    exe = shutil.which("deltanet")
    if exe is None:
        pytest.skip("the deltanet console script is not on PATH (pip install -e .)")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([exe, "train", *TINY, "--epochs", "2", "--no-report", "--out-dir", str(tmp_path), "--name", "s"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy:" in proc.stdout and (tmp_path / "s" / "model.safetensors").exists()
    proc = subprocess.run([sys.executable, "-m", "deltanet", "train", "--lr", "x"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "deltanet: error: argument --lr: expected a number, got 'x'; see 'deltanet train --help'"]


def test_report_summary_names_each_fact_once(trained):
    run_dir, _ = trained
    page = (run_dir / "report.html").read_text()
    keys = re.findall(r"<td class='key'>([^<]+)</td>", page)
    assert len(keys) == len(set(keys)), keys
    assert "training time" in keys and "training time (s)" not in keys and "saved weights" in keys


def test_regression_run_draws_predicted_against_true(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    data = tmp_path / "reg.csv"
    data.write_text("a,b,price\n" + "\n".join(f"{a},{b},{a - 2 * b}" for a, b in X) + "\n")
    code, _, err = run(["train", "--data", data, "--task", "regression", "--hidden", "8", "--epochs", "2", "--quiet",
                        "--out-dir", tmp_path, "--name", "r"], capsys)
    assert code == 0, err
    assert (tmp_path / "r" / "predicted_vs_true.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "r" / "residuals.png").exists() and not (tmp_path / "r" / "confusion_matrix.png").exists()


def test_datasets_status_speaks_in_command_line_options(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    monkeypatch.delenv("DELTANET_MNIST_DIR", raising=False)
    monkeypatch.setenv("DELTANET_FASHION_MNIST_DIR", str(tmp_path / "none"))
    code, out, _ = run(["datasets"], capsys)
    line = next(row for row in out.splitlines() if row.startswith("fashion-mnist "))
    assert code == 0 and "--data-dir DIR" in line and "path=DIR" not in line and "download=True" not in line
