"""Crash safety with real processes: kill -9 during a checkpoint write, SIGINT during ``deltanet train``.

(``kill -9`` during a model save is in tests/test_atomic_write.py.)
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.training.checkpoint import load_state

SRC = Path(dn.__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
POSIX = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or sys.platform == "win32", reason="needs POSIX signals")

CHECKPOINTER = r"""
import sys
import numpy as np
from deltanet.training.checkpoint import save_state
path = sys.argv[1]
big = [np.full((512, 1024), float(k)) for k in range(4)]   # 16 MB per save
save_state(path, {"epoch": 0, "arrays": big})
print("ready", flush=True)
n = 0
while True:
    n += 1
    save_state(path, {"epoch": n, "arrays": [a + n for a in big]})
"""


@POSIX
def test_kill_9_during_checkpoint_writes_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "state.npz"
    epochs = set()
    for delay in np.random.default_rng(1).uniform(0.05, 0.4, size=5):
        proc = subprocess.Popen([sys.executable, "-c", CHECKPOINTER, str(path)], stdout=subprocess.PIPE, env=ENV, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)  # inside one of the saves that follow, at a random point
            proc.kill()
            proc.wait(timeout=30)
        finally:
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        state = load_state(path)  # complete and loadable: the file of one whole save
        n = state["epoch"]
        assert all(np.array_equal(np.asarray(a), np.full((512, 1024), float(k + n))) for k, a in enumerate(state["arrays"]))
        epochs.add(n)
        leftovers = [p.name for p in tmp_path.iterdir() if p != path]
        assert all(re.fullmatch(r"\.state\.npz\.[0-9a-f]{12}\.tmp", name) for name in leftovers), leftovers
        for name in leftovers:
            (tmp_path / name).unlink()
    assert max(epochs) > 0  # the kills did land after later saves had replaced the file


def _train(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "deltanet", "train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, text=True, **kw)


ARGS = ["--data", "spiral", "--n-samples", "6000", "--hidden", "64,64", "--epochs", "30", "--batch-size", "16",
        "--log-every", "1"]


@POSIX
def test_sigint_during_train_stops_at_a_batch_boundary_writes_the_run_and_resume_continues_exactly(tmp_path):
    full = _train([*ARGS, "--out-dir", tmp_path, "--name", "full", "--quiet", "--no-report"])
    _, err = full.communicate(timeout=600)
    assert full.returncode == 0, err

    cut = tmp_path / "cut"
    proc = _train([*ARGS, "--out-dir", tmp_path, "--name", "cut"])
    lines = []
    for line in proc.stderr:  # wait until it is training (an epoch logged: the progress is on stderr), then Ctrl-C
        lines.append(line)
        if re.match(r"epoch\s+2/", line):
            break
    else:
        pytest.fail(f"no epoch line: {''.join(lines)}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert re.search(r"interrupted[^\n]* at epoch \d+, batch \d+/\d+", out + err), out + err  # after a whole batch
    assert f"deltanet train --resume {cut}" in err  # says how to resume
    for name in ("model.safetensors", "history.json", "checkpoint.npz", "metrics.json", "report.html"):
        assert (cut / name).is_file(), name
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["stop_reason"] == "interrupted"
    dn.load(cut / "model.safetensors")  # the model written is complete
    state = load_state(cut / "checkpoint.npz")
    history = json.loads((cut / "history.json").read_text())["records"]
    assert 1 <= state["epoch"] < 30 and len(history) >= state["epoch"]  # what was trained is recorded

    res = _train(["--resume", cut, "--quiet", "--no-report"])
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    a = dn.load(tmp_path / "full" / "model.safetensors").state_dict()
    b = dn.load(cut / "model.safetensors").state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    keys = ("epoch", "train_loss", "val_loss", "train_accuracy", "lr", "grad_norm")
    records = [json.loads((d / "history.json").read_text())["records"] for d in (tmp_path / "full", cut)]
    assert [[r[k] for k in keys] for r in records[0]] == [[r[k] for k in keys] for r in records[1]]
    assert len(records[1]) == 30
