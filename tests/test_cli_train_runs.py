"""``deltanet train`` runs end to end: checkpoints and --resume, exit codes, --overwrite, refusals and warnings."""

from __future__ import annotations

import errno
import json
import tomllib

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli import main
from deltanet.cli import train as train_cli
from deltanet.config import RunConfig, load_config
from deltanet.training import Callback

BASE = ["--data", "spiral", "--n-samples", "200", "--hidden", "16", "--epochs", "6", "--quiet"]


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def weights(run_dir):
    return dn.load(run_dir / "model.safetensors").state_dict()


def losses(run_dir):
    records = json.loads((run_dir / "history.json").read_text())["records"]
    return [(r["epoch"], r["train_loss"], r["val_loss"], r["train_accuracy"], r["lr"], r["grad_norm"]) for r in records]


class _InterruptAt(Callback):
    """Ask the trainer to stop as Ctrl-C does, at a given epoch and batch (in the middle of an epoch)."""

    def __init__(self, epoch, batch):
        self.at = (epoch, batch)

    def on_batch_begin(self, trainer, batch):
        if (trainer.epoch, batch) == self.at:
            trainer.interrupt()


def _patch_trainer(monkeypatch, callback):
    make = train_cli.make_trainer

    def patched(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(train_cli, "make_trainer", patched)


# -- 4/5: checkpoints, --resume, exit codes ------------------------------------------------------

def test_interrupted_run_exits_130_and_resume_is_bit_identical(tmp_path, capsys, monkeypatch):
    code, _, err = run(["train", *BASE, "--out-dir", tmp_path, "--name", "full", "--no-report"], capsys)
    assert code == 0, err
    assert not (tmp_path / "full" / "checkpoint.npz").exists()  # removed when the run ends

    with monkeypatch.context() as m:
        _patch_trainer(m, _InterruptAt(epoch=4, batch=2))
        code, _, err = run(["train", *BASE, "--out-dir", tmp_path, "--name", "cut", "--no-report"], capsys)
    cut = tmp_path / "cut"
    assert code == 130, err
    assert f"deltanet train --resume {cut}" in err
    assert (cut / "model.safetensors").is_file() and (cut / "history.json").is_file()
    assert (cut / "checkpoint.npz").is_file()
    assert json.loads((cut / "metrics.json").read_text())["stop_reason"] == "interrupted"

    code, _, err = run(["train", "--resume", cut, "--quiet", "--no-report"], capsys)
    assert code == 0, err
    assert not (cut / "checkpoint.npz").exists()
    full = tmp_path / "full"
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert losses(full) == losses(cut) and len(losses(cut)) == 6

    # the finished run cannot be resumed again
    code, _, err = run(["train", "--resume", cut, "--quiet"], capsys)
    assert code == 2 and "already finished" in err


def test_a_killed_run_with_only_its_config_resumes_from_scratch(tmp_path, capsys):
    code, _, err = run(["train", *BASE, "--out-dir", tmp_path, "--name", "full", "--no-report"], capsys)
    assert code == 0, err
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.toml").write_text((tmp_path / "full" / "config.toml").read_text())
    code, _, err = run(["train", *BASE, "--out-dir", tmp_path, "--name", "killed"], capsys)
    assert code == 2 and "--resume" in err  # the taken name says how to continue
    code, _, err = run(["train", "--resume", killed, "--quiet", "--no-report"], capsys)
    assert code == 0, err
    a, b = weights(tmp_path / "full"), weights(killed)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(tmp_path, capsys):
    code, _, err = run(["train", "--resume", tmp_path / "nope", "--quiet"], capsys)
    assert code == 2 and "no such run directory" in err
    code, _, err = run(["train", "--resume", tmp_path, "--lr", "0.1", "--quiet"], capsys)
    assert code == 2 and "--lr" in err and "config.toml" in err


def test_diverged_run_exits_3_with_cli_advice(tmp_path, capsys):
    code, out, err = run(["train", "--data", "spiral", "--n-samples", "200", "--epochs", "3", "--optimizer", "sgd",
                          "--lr", "10", "--out-dir", tmp_path, "--no-report", "--quiet"], capsys)
    assert code == 3
    assert "lower --lr (now 10) or set --clip 1" in err
    assert "clip_norm" not in out + err and "Traceback" not in err


def test_a_diverged_run_writes_the_last_good_weights(tmp_path, capsys):
    args = ["--data", "spiral", "--n-samples", "200", "--optimizer", "sgd", "--lr", "10", "--out-dir", tmp_path,
            "--no-report", "--quiet"]
    code, out, err = run(["train", *args, "--epochs", "3", "--name", "diverged"], capsys)
    assert code == 3 and "lower --lr (now 10)" in err
    assert "diverged at epoch 2" in out and "weights from the end of epoch 1" in out
    run_dir = tmp_path / "diverged"
    assert json.loads((run_dir / "metrics.json").read_text())["stop_reason"] == "diverged"
    assert len(json.loads((run_dir / "history.json").read_text())["records"]) == 1
    # the model file holds the weights of the end of epoch 1: those of the same run stopped there
    code, _, err = run(["train", *args, "--epochs", "1", "--name", "one"], capsys)
    assert code == 0, err
    a, b = weights(run_dir), weights(tmp_path / "one")
    assert all(np.isfinite(a[k]).all() and np.array_equal(a[k], b[k]) for k in a)


def test_sigterm_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch):
    import os
    import signal

    class Term(Callback):
        def on_batch_begin(self, trainer, batch):
            if (trainer.epoch, batch) == (2, 1):
                os.kill(os.getpid(), signal.SIGTERM)

    _patch_trainer(monkeypatch, Term())
    code, _, err = run(["train", *BASE, "--out-dir", tmp_path, "--name", "t", "--no-report"], capsys)
    assert code == 143, err
    assert "--resume" in err and (tmp_path / "t" / "model.safetensors").is_file()


# -- 6: every written config loads -----------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--layers", "0"], ["--layers", "2"], ["--hidden", "8,4"]])
def test_written_config_loads_back_the_same(tmp_path, capsys, extra):
    code, _, err = run(["train", "--data", "spiral", "--n-samples", "200", "--epochs", "1", *extra, "--out-dir", tmp_path,
                        "--name", "r", "--no-report", "--quiet"], capsys)
    assert code == 0, err
    path = tmp_path / "r" / "config.toml"
    cfg = load_config(path)
    assert cfg == RunConfig.from_dict(tomllib.loads(path.read_text()))
    code, _, err = run(["train", path, "--out-dir", tmp_path, "--name", "again", "--no-report", "--quiet"], capsys)
    assert code == 0, err
    assert load_config(tmp_path / "again" / "config.toml") == cfg


# -- 7: --overwrite replaces the directory --------------------------------------------------------

def test_overwrite_leaves_no_stale_files(tmp_path, capsys):
    code, _, err = run(["train", *BASE, "--epochs", "1", "--out-dir", tmp_path, "--name", "r"], capsys)
    assert code == 0, err
    (tmp_path / "r" / "stale.png").write_bytes(b"old")
    had_report = (tmp_path / "r" / "report.html").exists()
    code, _, err = run(["train", *BASE, "--epochs", "1", "--out-dir", tmp_path, "--name", "r", "--overwrite",
                        "--no-report"], capsys)
    assert code == 0, err
    assert had_report and not (tmp_path / "r" / "report.html").exists()
    assert not (tmp_path / "r" / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary sibling left


# -- 8: meaningless runs ------------------------------------------------------------------------------

def test_one_class_target_is_refused(tmp_path, capsys):
    csv = tmp_path / "one.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i * 2},1\n" for i in range(40)))
    code, _, err = run(["train", "--data", csv, "--out-dir", tmp_path, "--quiet"], capsys)
    assert code == 2 and "the target has one class" in err


def test_many_integer_values_warn_of_regression(tmp_path, capsys):
    rng = np.random.default_rng(0)
    csv = tmp_path / "many.csv"
    csv.write_text("a,b,y\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{i}\n" for i in range(300)))
    _, _, err = run(["train", "--data", csv, "--epochs", "1", "--hidden", "8", "--val-fraction", "0", "--test-fraction",
                        "0", "--out-dir", tmp_path, "--no-report", "--quiet"], capsys)
    assert "--task regression" in err and "300" in err


def test_narrow_heuristic_widths_warn(tmp_path, capsys):
    code, _, err = run(["train", "--data", "moons", "--n-samples", "200", "--layers", "3", "--epochs", "1", "--out-dir",
                        tmp_path, "--no-report", "--quiet"], capsys)
    assert code == 0, err
    assert "warning" in err and "--hidden" in err


def test_zeros_init_for_hidden_layers_is_refused(tmp_path, capsys):
    code, _, err = run(["train", *BASE, "--init", "zeros", "--out-dir", tmp_path], capsys)
    assert code == 2 and "symmetry" in err


# -- 9: resources ----------------------------------------------------------------------------------

def test_disk_full_while_writing_the_report_is_one_line(tmp_path, capsys, monkeypatch):
    import deltanet.report

    def full(run_dir, *args, **kwargs):
        (run_dir / ".report.html.123.tmp").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(deltanet.report, "write_report", full)
    code, _, err = run(["train", *BASE, "--epochs", "1", "--out-dir", tmp_path, "--name", "r"], capsys)
    assert code == 1
    assert err.strip().count("\n") == 0 and "no space left on device" in err and "Traceback" not in err
    assert not list((tmp_path / "r").glob("*.tmp")) and not list((tmp_path / "r").glob(".*.tmp"))


def test_a_network_too_large_for_memory_is_refused_before_building(tmp_path, capsys):
    code, _, err = run(["train", "--data", "spiral", "--hidden", "100000,100000", "--out-dir", tmp_path, "--quiet"], capsys)
    assert code == 2 and "parameters" in err and "GiB" in err


def test_summary_counts_huge_networks_from_the_widths(capsys):
    code, out, _ = run(["summary", "--data", "spiral", "--hidden", "100000,100000"], capsys)
    assert code == 0 and "10,000," in out and "not built" in out


def test_summary_of_mnist_needs_no_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DELTANET_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, err = run(["summary", "--data", "mnist", "--layers", "3", "--data-dir", tmp_path], capsys)
    assert code == 0, err
    assert "784 features -> 10 classes" in out


def test_gradcheck_refuses_batch_norm_with_one_row(capsys):
    code, _, err = run(["gradcheck", "--data", "spiral", "--hidden", "8", "--batch-norm", "--batch-size", "1"], capsys)
    assert code == 2 and "--batch-size 2" in err


# -- 11: ignored or conflicting options ---------------------------------------------------------------

@pytest.mark.parametrize("argv, fragment", [
    (["--momentum", "0.9"], "sgd and rmsprop"),
    (["--layers", "2", "--hidden", "10,10"], "give either"),
    (["--hidden", "10,,5"], "empty"),
])
def test_conflicting_options_are_refused(tmp_path, capsys, argv, fragment):
    code, _, err = run(["train", "--data", "spiral", *argv, "--out-dir", tmp_path, "--quiet"], capsys)
    assert code == 2 and fragment in err


# -- 12: messages in command-line terms ----------------------------------------------------------------

def test_messages_speak_cli(tmp_path, capsys):
    csv = tmp_path / "table.csv"
    csv.write_text("a,b,label\n1,2,0\n")
    code, _, err = run(["train", csv], capsys)
    assert code == 2 and f"--data {csv}" in err
    code, _, err = run(["train", "--bogus"], capsys)
    assert code == 2 and "did you mean" not in err
    code, _, err = run(["train", "--data", "mnist", "--data-dir", tmp_path, "--quiet"], capsys)
    assert code == 2 and "--data-dir" in err and "path=DIR" not in err and "download=True" not in err


def test_console_says_which_time_and_which_weights(tmp_path, capsys):
    code, out, err = run(["train", *BASE, "--epochs", "1", "--out-dir", tmp_path, "--name", "r", "--no-report"], capsys)
    assert code == 0, err
    assert "1 epoch;" in out and "training " in out and "total " in out
    assert "saved weights: epoch 1" in out
    assert dn.io.load_model_file(tmp_path / "r" / "model.safetensors").metadata["weights_epoch"] == 1


def test_transformer_like_models_are_not_listed_as_widths():
    from deltanet.cli.train import _describe_model

    net = dn.Sequential(dn.Linear(4, 8), dn.Sequential(dn.Linear(8, 8), dn.ReLU()), dn.Linear(8, 2))
    text = _describe_model(net, 4)
    assert "4-8-8-2" not in text and "parameters" in text
    assert _describe_model(dn.Sequential(dn.Linear(4, 8), dn.ReLU(), dn.Linear(8, 2)), 4).startswith("4-8-2 ")


# -- 14: --log-every ---------------------------------------------------------------------------------------

def test_log_every_is_accepted(tmp_path, capsys):
    code, _, err = run(["train", *BASE[:-1], "--log-every", "3", "--out-dir", tmp_path, "--no-report"], capsys)
    assert code == 0, err
    code, _, err = run(["train", *BASE, "--log-every", "0", "--out-dir", tmp_path], capsys)
    assert code == 2 and "--log-every" in err


def test_restore_best_names_the_epoch_of_the_saved_weights(tmp_path, capsys):
    code, out, err = run(["train", "--data", "spiral", "--n-samples", "200", "--hidden", "16", "--epochs", "30", "--lr",
                          "0.3", "--patience", "2", "--out-dir", tmp_path, "--name", "r", "--no-report", "--quiet"], capsys)
    assert code == 0, err
    meta = dn.io.load_model_file(tmp_path / "r" / "model.safetensors").metadata
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    best = min(history["records"], key=lambda r: r["val_loss"])["epoch"]
    assert meta["weights_epoch"] == best
    assert f"saved weights: epoch {best} (the best validation loss" in out
