"""Every file deltanet writes goes through ``deltanet.io.atomic_write``: a failed or killed write leaves the old file.

For each writer, a failure in the middle of the write (the first write to the
file writes half its data, then raises) or at the rename (``os.replace``
raises) must leave the previous file byte-identical and no temporary file
behind; a ``kill -9`` of a process saving a large model in a loop must leave a
loadable file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet import io as dio
from deltanet.cli import main
from deltanet.config import RunConfig, TrainConfig, save_config
from deltanet.report import write_report
from deltanet.training.checkpoint import load_state, save_state
from deltanet.training.history import History

SRC = Path(dn.__file__).resolve().parents[1]


class HalfThenFail:
    """A file whose first ``write`` writes half of what it is given, flushes it to the file, then fails."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


def fail_mid_write(monkeypatch):
    real = os.fdopen
    opened = []

    def fdopen(*args, **kwargs):
        f = real(*args, **kwargs)
        opened.append(f)
        return HalfThenFail(f)

    monkeypatch.setattr(dio.os, "fdopen", fdopen)
    return opened


def fail_at_rename(monkeypatch, only=None):
    """``os.replace`` fails (for the target named ``only``, or for any)."""
    real = os.replace
    calls = []

    def replace(src, dst):
        if only is not None and Path(dst).name != only:
            return real(src, dst)
        calls.append((os.fspath(src), os.fspath(dst)))
        assert os.path.getsize(src) > 0  # the temporary file was written in full
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dio.os, "replace", replace)
    return calls


FAILURES = {"mid-write": fail_mid_write, "at-rename": fail_at_rename}


def _history(n):
    return History([{"epoch": e, "train_loss": 1.0 / e, "lr": 0.1} for e in range(1, n + 1)])


def _predict_run(tmp_path):
    run_dir = tmp_path / "runs" / "r"
    code = main(["train", "--data", "spiral", "--n-samples", "60", "--hidden", "4", "--epochs", "1", "--quiet",
                 "--no-report", "--out-dir", str(tmp_path / "runs"), "--name", "r"])
    assert code == 0
    return run_dir


def _predict(run_dir, target, n):
    code = main(["predict", str(run_dir), "--data", "spiral", "--n-samples", str(n), "--output", str(target)])
    if code:
        raise OSError("predict failed")


# name -> (setup(tmp_path) -> context, file written, write(context, path, version))
WRITERS = {
    "model": (lambda t: None, "model.safetensors",
              lambda c, p, v: dn.save(dn.Linear(30, 20, rng=v), p, metadata={"v": v})),
    "checkpoint": (lambda t: None, "checkpoint.npz",
                   lambda c, p, v: save_state(p, {"epoch": v, "w": np.full((50, 40), float(v))})),
    "trainer-checkpoint": (lambda t: dn.Trainer(dn.Linear(6, 3, rng=0)), "trainer.npz",
                           lambda c, p, v: (setattr(c, "epoch", v), c.save_checkpoint(p))),
    "history-json": (lambda t: None, "history.json", lambda c, p, v: _history(v).to_json(p)),
    "history-csv": (lambda t: None, "history.csv", lambda c, p, v: _history(v).to_csv(p)),
    "report": (lambda t: None, "report.html",
               lambda c, p, v: write_report(p.parent, _history(v), figures=False, title=f"run {v}")),
    "config": (lambda t: None, "config.toml",
               lambda c, p, v: save_config(RunConfig(train=TrainConfig(epochs=v)), p)),
    "predictions": (_predict_run, "predictions.csv", lambda c, p, v: _predict(c, p, 10 * v)),
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("writer", WRITERS)
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, writer, failure, capsys):
    setup, name, write = WRITERS[writer]
    context = setup(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    path = out / name
    write(context, path, 1)
    before = path.read_bytes()
    (tmp_path / "probe").mkdir()
    write(context, tmp_path / "probe" / name, 2)
    assert (tmp_path / "probe" / name).read_bytes() != before  # the second version differs from the first
    listing = sorted(os.listdir(out))

    calls = FAILURES[failure](monkeypatch)
    with pytest.raises((OSError, SystemExit)):
        write(context, path, 2)
    assert calls, "the write did not go through deltanet.io.atomic_write"
    monkeypatch.undo()
    capsys.readouterr()
    assert path.read_bytes() == before
    assert sorted(os.listdir(out)) == listing  # no temporary file left
    write(context, path, 2)  # and the writer works again
    assert path.read_bytes() != before and sorted(os.listdir(out)) == listing


def test_a_failing_savez_callback_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_state(path, {"epoch": 1})
    before = path.read_bytes()
    real = np.savez

    def savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise MemoryError("out of memory while writing")

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(MemoryError):
        save_state(path, {"epoch": 2})
    monkeypatch.setattr(np, "savez", real)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.npz"]
    assert load_state(path)["epoch"] == 1


def test_a_failed_overwrite_of_a_run_directory_keeps_the_previous_run(tmp_path, monkeypatch, capsys):
    argv = ["train", "--data", "spiral", "--n-samples", "60", "--hidden", "4", "--epochs", "1", "--quiet",
            "--no-report", "--out-dir", str(tmp_path), "--name", "r", "--overwrite"]
    assert main(argv) == 0
    run_dir = tmp_path / "r"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert "model.safetensors" in before and "metrics.json" in before
    for failure in (fail_mid_write, lambda m: fail_at_rename(m, only="model.safetensors"),
                    lambda m: fail_at_rename(m, only="metrics.json")):
        with monkeypatch.context() as m:
            calls = failure(m)
            assert main([*argv, "--epochs", "2"]) == 1
        assert calls
        assert "cannot write the run directory" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
        assert os.listdir(tmp_path) == ["r"]


def test_a_full_disk_at_a_checkpoint_during_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch,
                                                                                                capsys):
    argv = ["train", "--data", "spiral", "--n-samples", "60", "--hidden", "4", "--epochs", "3", "--quiet",
            "--no-report", "--out-dir", str(tmp_path), "--name", "r", "--checkpoint-every", "1"]
    real = os.replace
    checkpoints = []

    def replace(src, dst):  # the first checkpoint is written, the second finds the disk full
        if Path(dst).name == "checkpoint.npz":
            checkpoints.append(dst)
            if len(checkpoints) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(dio.os, "replace", replace)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("deltanet: error: cannot write the run directory") and "no space left on device" in err
    assert len(err.strip().splitlines()) == 1 and len(checkpoints) == 2
    assert sorted(os.listdir(tmp_path / "r")) == ["checkpoint.npz", "config.toml"]
    assert load_state(tmp_path / "r" / "checkpoint.npz")["epoch"] == 1


def test_permission_bits_are_those_of_a_plain_open(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    new = tmp_path / "new.json"
    _history(1).to_json(new)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    dn.save(dn.Linear(2, 2, rng=0), tmp_path / "m.safetensors")
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o666 & ~umask
    private = tmp_path / "private.safetensors"
    dn.save(dn.Linear(2, 2, rng=0), private)
    os.chmod(private, 0o600)
    dn.save(dn.Linear(2, 2, rng=1), private)  # replacing a file keeps its bits, as open(path, "w") would
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_the_file_and_its_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(dio.os, "fsync", fsync)
    monkeypatch.setattr(dio.os, "replace", replace)
    save_config(RunConfig(), tmp_path / "config.toml")
    if os.name == "posix":
        assert events == ["fsync-file", "replace", "fsync-dir"]
    else:
        assert events[:2] == ["fsync-file", "replace"]


def test_no_writer_bypasses_the_helper():
    """Outside io.py no code renames files into place or writes a file in one call (cli/train.py swaps folders)."""
    pattern = re.compile(r"os\.replace\(|os\.rename\(|\.write_text\(|\.write_bytes\(|NamedTemporaryFile|mkstemp|"
                         r"open\([^)]*[\"'][wax]b?\+?[\"']|\.rename\(|\.replace\(tmp|tmp\w*\.replace\(")
    offenders = []
    for py in sorted((SRC / "deltanet").rglob("*.py")):
        rel = py.relative_to(SRC).as_posix()
        if rel == "deltanet/io.py":
            continue
        for n, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and not (rel == "deltanet/cli/train.py" and "os.replace(" in line
                                             and re.search(r"os\.replace\((final|new|old), (old|final)\)", line)):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


# A real process saving a large model in a loop is killed with SIGKILL at random moments, many times: a
# server process imports deltanet once and forks one saver per round (a fresh interpreter per kill would
# take seconds), the test kills the saver, then loads the file.
SAVER = """
import os, sys
import deltanet as dn
path = sys.argv[1]
models = [dn.Linear(1024, 2048, rng=0), dn.Linear(1024, 2048, rng=1)]
dn.save(models[0], path)
print("ready", flush=True)
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            i = 0
            while True:
                i += 1
                dn.save(models[i % 2], path)
        finally:
            os._exit(1)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"), reason="needs fork and kill -9")
def test_kill_9_while_saving_a_large_model_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "big.safetensors"
    expected = [np.asarray(dn.Linear(1024, 2048, rng=s).state_dict()["weight"]) for s in (0, 1)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=env, text=True)
    delays = np.random.default_rng(0).uniform(0.005, 0.05, size=30)
    seen = set()
    pid = None
    try:
        assert server.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        for delay in delays:
            assert time.monotonic() < deadline, "the saver did not answer in time"
            server.stdin.write("\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(delay)  # a few 8 MB saves: the kill lands in one of them, at a random point
            os.kill(pid, signal.SIGKILL)
            status = int(server.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL  # it was saving, not failing
            weight = np.asarray(dn.load(path).state_dict()["weight"])  # a complete, loadable file ...
            match = [k for k, e in enumerate(expected) if np.array_equal(weight, e)]  # ... of one of the models
            assert match, "the file holds neither model"
            seen.update(match)
            leftovers = [p.name for p in tmp_path.iterdir() if p != path]
            # kill -9 cannot clean up: at most a hidden temporary file is left, never a damaged target
            assert all(re.fullmatch(r"\.big\.safetensors\.[0-9a-f]{12}\.tmp", n) for n in leftovers), leftovers
            for n in leftovers:
                (tmp_path / n).unlink()
        assert seen == {0, 1}  # the savers did overwrite the file between kills
    finally:
        if pid is not None:  # the last saver, should an assertion have stopped the loop before its kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
