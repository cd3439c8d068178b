"""Trainer edge cases of issue 20: batch norm with one-row batches, SIGTERM, exact resume from ModelCheckpoint,
damaged checkpoints, feature-count and schedule errors, and the progress display's width and log interval."""

from __future__ import annotations

import io
import os
import signal
import sys

import numpy as np
import pytest

import deltanet as dn
from deltanet.training import Callback, ModelCheckpoint, ProgressBar
from deltanet.training import checkpoint as ckpt


def blobs(n, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(0, 0.7, (n, features)) + np.eye(classes, features)[y] * 1.5
    return X, y


def bn_net(features=4, seed=0):
    return dn.Sequential(dn.Linear(features, 8, rng=seed), dn.BatchNorm(8), dn.ReLU(), dn.Linear(8, 3, rng=seed + 1))


# -- 3. batch norm and one-row batches ----------------------------------------------------------------------
class RowCounter(dn.Module):
    """Identity that records the rows of every training-mode batch it sees."""

    def __init__(self):
        super().__init__()
        self.rows = []

    def forward(self, x, training=False):
        if training:
            self.rows.append(int(x.shape[0]))
        return x

    def backward(self, grad_out):
        return grad_out


def test_a_last_batch_of_one_row_is_merged_into_the_previous_one_with_batch_norm():
    X, y = blobs(129)                       # 129 = 2 * 64 + 1: the last batch would have one row
    counter = RowCounter()
    net = dn.Sequential(counter, *bn_net())
    trainer = dn.Trainer(net, batch_size=64, epochs=2)
    history = trainer.fit(X, y)             # crashed before: "BatchNorm ... needs at least 2 rows per batch, got 1"
    assert counter.rows == [64, 65, 64, 65]
    assert trainer.n_batches == 2 and len(history) == 2
    assert all(np.isfinite(r["train_loss"]) for r in history.records)
    # the accuracy counts all 129 rows (the merged batch's predictions included): a whole number of 129ths
    correct = history.last["train_accuracy"] * 129
    assert 0 < correct <= 129 and abs(correct - round(correct)) < 1e-9


def test_merged_batch_run_equals_a_hand_written_loop():
    """The merged epoch is the plain loop over batches [0:64], [64:129] of the seeded permutation."""
    X, y = blobs(129)
    trainer = dn.Trainer(bn_net(), optimizer="sgd", lr=0.1, batch_size=64, epochs=1, seed=3, record_layers=False)
    trainer.fit(X, y)
    ref = bn_net()
    opt = dn.optim.SGD(ref.parameters(), lr=0.1)
    loss = dn.SoftmaxCrossEntropy()
    perm = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3).spawn(3)[0])).permutation(129)
    Xf = X.astype(np.float32)
    for idx in (perm[:64], perm[64:]):
        loss.forward(ref.forward(Xf[idx], training=True), y[idx])
        ref.zero_grad()
        ref.backward(loss.backward())
        opt.step()
    for a, b in zip(trainer.model.parameters(), ref.parameters(), strict=True):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-6, atol=1e-7)


def test_batch_norm_with_batch_size_one_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"batch_size=1 cannot train a model with BatchNorm: the batch statistics "
                                         r"of one row are undefined \(its variance is 0\); use batch_size >= 2"):
        dn.Trainer(bn_net(), batch_size=1)
    trainer = dn.Trainer(bn_net(), batch_size=2, epochs=1)
    trainer.batch_size = 1                  # changed after construction: refused at fit, before any step
    with pytest.raises(ValueError, match="batch_size=1 cannot train a model with BatchNorm"):
        trainer.fit(*blobs(10))
    with pytest.raises(ValueError, match="at least 2 training rows"):
        dn.Trainer(bn_net(), batch_size=4).fit(*blobs(1))


def test_batch_size_two_with_an_odd_row_count_has_no_one_row_batch():
    counter = RowCounter()
    dn.Trainer(dn.Sequential(counter, *bn_net()), batch_size=2, epochs=1).fit(*blobs(7))
    assert counter.rows == [2, 2, 3]


def test_runs_without_batch_norm_keep_their_one_row_last_batch():
    X, y = blobs(129)
    counter = RowCounter()
    net = dn.Sequential(counter, dn.Linear(4, 8, rng=0), dn.ReLU(), dn.Linear(8, 3, rng=1))
    trainer = dn.Trainer(net, batch_size=64, epochs=1)
    trainer.fit(X, y)
    assert counter.rows == [64, 64, 1] and trainer.n_batches == 3
    counter1 = RowCounter()
    dn.Trainer(dn.Sequential(counter1, dn.Linear(4, 3, rng=0)), batch_size=1, epochs=1).fit(*blobs(5))
    assert counter1.rows == [1] * 5


# -- 4. SIGTERM ------------------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_at_a_batch_boundary_and_restores_the_handlers():
    X, y = blobs(40)
    before_int, before_term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen = []

    class Term(Callback):
        def on_batch_end(self, trainer, batch, loss):
            seen.append((trainer.epoch, batch))
            if trainer.epoch == 2 and batch == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=5, callbacks=[Term()])
    history = trainer.fit(X, y)
    assert history.stop_reason == "interrupted" and trainer.interrupt_signal == "SIGTERM"
    assert history.stop_message.startswith("interrupted (SIGTERM) at epoch 2, batch 3/4")
    assert seen[-1] == (2, 3) and len(history) == 2 and not trainer.epoch_complete
    assert signal.getsignal(signal.SIGTERM) is before_term and signal.getsignal(signal.SIGINT) is before_int
    again = trainer.fit(X, y, epochs=1)
    assert again.stop_reason == "max_epochs" and trainer.interrupt_signal is None and trainer.epoch_complete


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_signals_are_left_alone_outside_the_main_thread():
    import threading

    X, y = blobs(20)
    installed = []

    class Look(Callback):
        def on_train_begin(self, trainer):
            installed.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=lambda: dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1, callbacks=[Look()]).fit(X, y))
    t.start()
    t.join()
    assert installed == [before]
    main = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1, callbacks=[Look()])
    main.fit(X, y)
    assert installed[-1] == main.signals._on_signal


# -- 4. exact resume from ModelCheckpoint ----------------------------------------------------------------------
def resume_net(seed=0):
    return dn.Sequential(dn.Linear(5, 16, rng=seed), dn.ReLU(), dn.Dropout(0.3, rng=seed + 10),
                         dn.Linear(16, 3, rng=seed + 1))


def resume_trainer(net, **kw):
    args = dict(optimizer="adam", lr=0.01, schedule="cosine", batch_size=10, epochs=6, seed=7,
                early_stopping={"patience": 50, "restore_best": True})
    args.update(kw)
    return dn.Trainer(net, **args)


def records(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history.records]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["load_checkpoint", "resume"])
def test_model_checkpoint_then_a_new_trainer_ends_bit_identical_to_an_uninterrupted_run(tmp_path, how):
    X, y = blobs(96, features=5)
    Xv, yv = blobs(30, features=5, seed=1)
    full = resume_trainer(resume_net())
    h_full = full.fit(X, y, validation_data=(Xv, yv))
    assert len(h_full) == 6

    path = tmp_path / "checkpoint.npz"

    class TermInEpoch4(Callback):           # SIGTERM in the middle of epoch 4: the checkpoint keeps epoch 3
        def on_batch_end(self, trainer, batch, loss):
            if trainer.epoch == 4 and batch == 5:
                os.kill(os.getpid(), signal.SIGTERM)

    cut = resume_trainer(resume_net(), callbacks=[ModelCheckpoint(path, every=1, complete_epochs_only=True),
                                                  TermInEpoch4()])
    h_cut = cut.fit(X, y, validation_data=(Xv, yv))
    assert h_cut.stop_reason == "interrupted" and len(h_cut) == 4 and cut.interrupt_signal == "SIGTERM"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]           # no temporary file left
    assert ckpt.load_state(path)["epoch"] == 3 and ckpt.load_state(path)["planned_end_epoch"] == 6

    if how == "load_checkpoint":
        resumed = dn.Trainer.load_checkpoint(path, resume_net(seed=3))  # other initial weights: all are replaced
    else:
        resumed = resume_trainer(resume_net(seed=3)).resume(path)
    assert resumed.epoch == 3
    h_res = resumed.fit(X, y, validation_data=(Xv, yv))                 # the 3 epochs left of the planned 6
    assert resumed.epoch == 6 and len(h_res) == 6 and h_res.stop_reason == "max_epochs"
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal([r["train_loss"] for r in h_full.records], [r["train_loss"] for r in h_res.records])
    np.testing.assert_array_equal([r["val_loss"] for r in h_full.records], [r["val_loss"] for r in h_res.records])
    assert records(h_full) == records(h_res)
    sa, sb = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert sa["step_count"] == sb["step_count"]
    for k in sa["state"]:
        np.testing.assert_array_equal(sa["state"][k], sb["state"][k])
    assert full.lr == resumed.lr


def test_model_checkpoint_without_complete_epochs_only_saves_the_cut_epoch(tmp_path):
    X, y = blobs(40)

    class Stop(Callback):
        def on_batch_end(self, trainer, batch, loss):
            if trainer.epoch == 2 and batch == 2:
                trainer.interrupt()

    path = tmp_path / "c.npz"
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=5, callbacks=[ModelCheckpoint(path), Stop()]).fit(X, y)
    assert ckpt.load_state(path)["epoch"] == 2                            # the documented default: state at the stop
    path2 = tmp_path / "d.npz"
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=5,
               callbacks=[ModelCheckpoint(path2, complete_epochs_only=True), Stop()]).fit(X, y)
    assert ckpt.load_state(path2)["epoch"] == 1


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    X, y = blobs(20)
    path = tmp_path / "c.npz"
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1)
    trainer.fit(X, y)
    trainer.save_checkpoint(path)
    before = path.read_bytes()
    trainer.fit(X, y, epochs=1)

    def crash(f, **arrays):
        f.write(b"half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.numpy, "savez", crash)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["c.npz"]
    monkeypatch.undo()
    assert ckpt.load_state(path)["epoch"] == 1


# -- 9. damaged checkpoints and wrong feature counts ---------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_a_damaged_checkpoint_is_a_value_error_naming_the_file(tmp_path, damage):
    X, y = blobs(20)
    path = tmp_path / "c.npz"
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1)
    trainer.fit(X, y)
    trainer.save_checkpoint(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flip":                  # a byte inside a member: the CRC check fails when it is read
        i = data.index(b"model/0.weight") + 200
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("not a checkpoint\n")
    with pytest.raises(ValueError, match=r"c\.npz' is not a deltanet checkpoint or is damaged: "):
        dn.Trainer.load_checkpoint(path)
    with pytest.raises(ValueError, match="is not a deltanet checkpoint or is damaged"):
        dn.Trainer(dn.mlp([4, 6, 3], rng=0)).resume(path)


def test_a_missing_checkpoint_and_a_directory_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        dn.Trainer.load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        dn.Trainer.load_checkpoint(tmp_path)


def test_a_wrong_feature_count_names_the_data_shape_not_a_row():
    X, y = blobs(129, features=3)
    with pytest.raises(ValueError, match=r"^the model takes 4 features, X has shape \(129, 3\)$"):
        dn.Trainer(dn.mlp([4, 6, 3], rng=0)).fit(X, y)
    Xv, yv = blobs(30, features=5)
    with pytest.raises(ValueError, match=r"^the model takes 4 features, X_val has shape \(30, 5\)$"):
        dn.Trainer(dn.mlp([4, 6, 3], rng=0)).fit(*blobs(20), validation_data=(Xv, yv))
    with pytest.raises(ValueError, match=r"^the model takes 4 features, X has shape \(20, 3\)$"):
        dn.Trainer(bn_net()).evaluate(*blobs(20, features=3))
    with pytest.raises(ValueError, match=r"^the model takes 1 feature, X has shape \(20, 4\)$"):
        dn.Trainer(dn.mlp([1, 3], rng=0)).fit(*blobs(20))


# -- 10. schedules are checked when the trainer is built ------------------------------------------------------------
def test_a_bad_schedule_is_refused_by_the_constructor():
    net = dn.mlp([4, 6, 3], rng=0)
    with pytest.raises(ValueError, match=r"Trainer: schedule='bogus': unknown schedule 'bogus'; choose one of: "
                                         r"constant, step, exponential, cosine, plateau"):
        dn.Trainer(net, schedule="bogus")
    with pytest.raises(TypeError, match=r"schedule='step'.*step_size"):
        dn.Trainer(net, schedule="step")                                # step needs step_size
    with pytest.raises(TypeError, match=r"schedule='cosine' with schedule_kwargs=\{'bogus': 1\}"):
        dn.Trainer(net, schedule="cosine", schedule_kwargs={"bogus": 1})
    with pytest.raises(ValueError, match=r"schedule='exponential'"):
        dn.Trainer(net, schedule="exponential", schedule_kwargs={"gamma": -1.0})
    trainer = dn.Trainer(net, lr=0.05, schedule="cosine", schedule_kwargs={"warmup_epochs": 2, "per_batch": True})
    assert trainer.lr == 0.05 and trainer.schedule is None             # the real optimizer is untouched until fit
    trainer.fit(*blobs(20), epochs=3)
    assert trainer.schedule is not None


# -- 14. progress: terminal width and the log interval ------------------------------------------------------------
class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_lines_fit_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")                                 # StringIO has no fileno: the fallback size
    monkeypatch.setenv("LINES", "20")
    stream = Tty()
    bar = ProgressBar(stream=stream, refresh=1e9)
    X, y = blobs(40)
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=3, batch_size=10, callbacks=[bar]).fit(X, y, validation_fraction=0.25)
    assert bar.columns() == 50
    pieces = [p for line in stream.getvalue().split("\n") for p in line.split("\r")]
    shown = [p.replace("\x1b[K", "") for p in pieces]
    assert shown and max(len(p) for p in shown) <= 49
    assert any("[" in p and "loss" in p for p in shown)                # the bar is still drawn, narrower
    assert any("val_acc" in p for p in shown)                          # the summary is wrapped, not cut
    wide = Tty()
    monkeypatch.setenv("COLUMNS", "200")
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1, batch_size=10,
               callbacks=[ProgressBar(stream=wide, refresh=1e9)]).fit(X, y)
    assert "[" + "=" * 24 + "]" in wide.getvalue()                       # full width bar when there is room


def test_progress_uses_the_streams_own_terminal_size(monkeypatch):
    bar = ProgressBar(stream=Tty())
    bar._out, bar._tty = bar.stream, True
    monkeypatch.setattr(bar.stream, "fileno", lambda: 99, raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((33, 10)) if fd == 99 else None)
    assert bar.columns() == 33
    bar._tty = False
    assert bar.columns() is None


def epoch_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("epoch ")]


def test_without_a_terminal_about_twenty_lines_are_printed_by_default():
    X, y = blobs(20)
    stream = io.StringIO()
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=200, batch_size=20, callbacks=[ProgressBar(stream=stream)]).fit(X, y)
    lines = epoch_lines(stream.getvalue())
    numbers = [int(ln.split()[1].split("/")[0]) for ln in lines]
    assert numbers == [1, *range(10, 201, 10)]                          # the first, every 10th, the last: 21 lines
    assert stream.getvalue().endswith("stopped: reached the maximum of 200 epochs (epoch 200)\n")


def test_log_every_prints_every_nth_epoch_and_the_last():
    X, y = blobs(20)
    stream = io.StringIO()
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=10, batch_size=20,
               callbacks=[ProgressBar(stream=stream, log_every=4)]).fit(X, y)
    assert [int(ln.split()[1].split("/")[0]) for ln in epoch_lines(stream.getvalue())] == [1, 4, 8, 10]
    every = io.StringIO()
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=5, batch_size=20,
               callbacks=[ProgressBar(stream=every, log_every=1)]).fit(X, y)
    assert len(epoch_lines(every.getvalue())) == 5
    with pytest.raises(ValueError, match="log_every must be a positive int or None"):
        ProgressBar(log_every=0)


def test_log_every_prints_the_epoch_where_training_stopped():
    X, y = blobs(20)
    stream = io.StringIO()

    class StopAt7(Callback):
        def on_epoch_end(self, trainer, epoch, record):
            if epoch == 7:
                trainer.request_stop("callback", "stopped at 7")

    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=50, batch_size=20,
               callbacks=[StopAt7(), ProgressBar(stream=stream, log_every=5)]).fit(X, y)
    assert [int(ln.split()[1].split("/")[0]) for ln in epoch_lines(stream.getvalue())] == [1, 5, 7]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_application_sigterm_handler_is_left_in_place():
    X, y = blobs(40)
    got = []

    def mine(signum, frame):
        got.append(signum)

    class Term(Callback):
        def on_batch_end(self, trainer, batch, loss):
            if (trainer.epoch, batch) == (1, 2):
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=2, callbacks=[Term()])
        history = trainer.fit(X, y)
        assert got == [signal.SIGTERM] and history.stop_reason == "max_epochs" and trainer.interrupt_signal is None
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
