"""The training loop: batches, metrics, stopping criteria, callbacks, progress, divergence, Ctrl-C."""

from __future__ import annotations

import io
import itertools
import math
import os
import signal
import sys

import numpy as np
import pytest

import deltanet as dn
from deltanet.training import Callback, EarlyStopping, validation_split

# every test here runs with the compiled optimizer kernels and with the NumPy reference rules
pytestmark = pytest.mark.usefixtures("every_path")


def spiral(n_per_class: int = 100, classes: int = 3, noise: float = 0.15, seed: int = 0):
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, noise, n_per_class)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(n_per_class, c))
    return np.concatenate(X), np.concatenate(y)


def blobs(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 0.5, (n, 4)) + np.eye(3, 4)[y] * 2.0
    return X, y


class Recorder(Callback):
    def __init__(self):
        self.events = []
        self.weights = {}

    def on_train_begin(self, trainer):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, trainer, epoch):
        self.events.append(("epoch_begin", epoch))

    def on_batch_begin(self, trainer, batch):
        self.events.append(("batch_begin", batch))

    def on_after_backward(self, trainer):
        self.events.append(("after_backward",))

    def on_batch_end(self, trainer, batch, loss):
        self.events.append(("batch_end", batch))

    def on_epoch_end(self, trainer, epoch, record):
        self.events.append(("epoch_end", epoch))
        self.weights[epoch] = {k: v.copy() for k, v in trainer.model.state_dict().items()}

    def on_train_end(self, trainer, history):
        self.events.append(("train_end",))


def weights_equal(a, b):
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


# -- learning -------------------------------------------------------------------------------
def test_learns_spiral_with_adam():
    X, y = spiral()
    net = dn.mlp([2, 64, 64, 3], rng=0)
    trainer = dn.Trainer(net, optimizer="adam", lr=1e-2, epochs=60, batch_size=32, seed=0)
    history = trainer.fit(X, y, validation_fraction=0.2)
    assert history.stop_reason == "max_epochs"
    assert history["train_accuracy"][-1] >= 0.97
    assert history["val_accuracy"][-1] >= 0.93
    assert history["train_loss"][-1] < 0.3 * history["train_loss"][0]
    assert trainer.evaluate(X, y)["accuracy"] >= 0.95


def test_learns_regression_with_sgd_momentum():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (256, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3
    net = dn.Sequential(dn.Linear(3, 1, init="xavier", rng=0))
    trainer = dn.Trainer(net, loss="mse", optimizer="sgd", lr=0.1, optimizer_kwargs={"momentum": 0.9}, epochs=40,
                         batch_size=32)
    history = trainer.fit(X, y)
    assert trainer.task == "regression"
    assert history["train_accuracy"] == [None] * 40
    assert history["train_loss"][-1] < 1e-6
    np.testing.assert_allclose(net[0].weight.value.ravel(), [1.5, -2.0, 0.5], atol=1e-3)


# -- the batch loop -------------------------------------------------------------------------------
def test_callbacks_order_and_counts():
    X, y = blobs(10)
    rec = Recorder()
    trainer = dn.Trainer(dn.mlp([4, 8, 3], rng=0), batch_size=4, epochs=2, callbacks=[rec])
    trainer.fit(X, y)
    per_batch = lambda b: [("batch_begin", b), ("after_backward",), ("batch_end", b)]  # noqa: E731
    epoch = lambda e: [("epoch_begin", e), *per_batch(1), *per_batch(2), *per_batch(3), ("epoch_end", e)]  # noqa: E731
    assert rec.events == [("train_begin",), *epoch(1), *epoch(2), ("train_end",)]


def test_short_last_batch_is_averaged_over_its_own_size():
    X, y = blobs(7)
    net = dn.mlp([4, 5, 3], rng=1, dtype="float64")
    losses, grads = {}, {}

    class Capture(Callback):
        def on_batch_begin(self, trainer, batch):
            self.before = {k: v.copy() for k, v in trainer.model.state_dict().items()}

        def on_after_backward(self, trainer):
            grads[trainer.batch] = [p.grad.copy() for p in trainer.params]
            self.at[trainer.batch] = self.before

        def on_batch_end(self, trainer, batch, loss):
            losses[batch] = loss

    cap = Capture()
    cap.at = {}
    trainer = dn.Trainer(net, optimizer="sgd", lr=0.1, batch_size=3, epochs=1, shuffle=False, callbacks=[cap])
    history = trainer.fit(X, y)
    assert sorted(losses) == [1, 2, 3]
    # batch 3 holds sample 6 alone: its loss and gradient are those of that one sample (divided by 1, not 3)
    ref = dn.build(net.config())
    ref.load_state_dict(cap.at[3])
    loss_fn = dn.SoftmaxCrossEntropy()
    ref_loss = loss_fn.forward(ref.forward(X[6:7], training=True), y[6:7])
    ref.zero_grad()
    ref.backward(loss_fn.backward())
    assert losses[3] == pytest.approx(ref_loss, rel=1e-12)
    for g, p in zip(grads[3], ref.parameters(), strict=True):
        np.testing.assert_allclose(g, p.grad, rtol=1e-12, atol=1e-15)
    # the epoch's loss weights each batch by its size
    assert history["train_loss"][0] == pytest.approx((3 * losses[1] + 3 * losses[2] + losses[3]) / 7, rel=1e-12)


def test_grad_norms_and_layer_norms_match_the_gradients():
    X, y = blobs(16)
    seen = []

    class Capture(Callback):
        def on_after_backward(self, trainer):
            seen.append({p.name: float(np.linalg.norm(p.grad)) for p in trainer.params})

    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=8, epochs=1, callbacks=[Capture()])
    rec = trainer.fit(X, y).last
    assert len(seen) == 2
    for name in rec["layer_grad_norms"]:
        assert rec["layer_grad_norms"][name] == pytest.approx((seen[0][name] + seen[1][name]) / 2, rel=1e-5)
    globals_ = [math.sqrt(sum(v * v for v in s.values())) for s in seen]
    assert rec["grad_norm"] == pytest.approx(sum(globals_) / 2, rel=1e-5)


def test_gradient_norm_measured_by_the_optimizer_equals_the_separate_pass():
    X, y = blobs(40)
    seen = []

    class Capture(Callback):
        def on_after_backward(self, trainer):
            seen.append(math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in trainer.params)))

    runs = {}
    for record in (True, False):                       # record_layers=False: the optimizer measures it during its step
        trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), optimizer="sgd", optimizer_kwargs={"momentum": 0.9}, batch_size=8, epochs=2,
                             record_layers=record, callbacks=[Capture()])
        runs[record] = trainer.fit(X, y), {k: v.copy() for k, v in trainer.model.state_dict().items()}
    assert weights_equal(runs[True][1], runs[False][1])
    per_epoch = [sum(seen[i:i + 5]) / 5 for i in (10, 15)]        # the second run's 2 x 5 batches
    for rec, expected in zip(runs[False][0].records, per_epoch, strict=True):
        assert rec["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert [r["grad_norm"] for r in runs[True][0].records] == pytest.approx([r["grad_norm"] for r in runs[False][0].records], rel=1e-5)


def test_dead_fraction_and_record_layers_off():
    X, y = blobs(32)
    net = dn.mlp([4, 10, 3], rng=0)
    net[0].bias.value[:5] = -100.0           # five units that never fire
    rec = dn.Trainer(net, optimizer="sgd", lr=1e-3, batch_size=32, epochs=1).fit(X, y).last   # one batch: all rows
    assert rec["dead_fraction"] == {"1": pytest.approx(0.5)}
    rec = dn.Trainer(dn.mlp([4, 10, 3], rng=0), epochs=1, record_layers=False).fit(X, y).last
    assert rec["layer_grad_norms"] == {} and rec["dead_fraction"] == {}


def test_gradient_hook_runs_between_backward_and_step():
    X, y = blobs(20)
    net = dn.mlp([4, 6, 3], rng=0)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    calls = []

    def hook(params):
        calls.append(len(params))
        for p in params:
            p.grad[...] = 0.0                # as if every other process cancelled this one's gradient

    trainer = dn.Trainer(net, optimizer="sgd", lr=0.5, batch_size=5, epochs=2, gradient_hook=hook)
    history = trainer.fit(X, y)
    assert calls == [4] * 8
    assert weights_equal(before, net.state_dict())
    assert history["grad_norm"] == [0.0, 0.0]


def test_l2_term_in_the_training_loss():
    X, y = blobs(16)
    net = dn.mlp([4, 6, 3], rng=0, dtype="float64")
    w2 = sum(float((p.value ** 2).sum()) for p in net.parameters() if p.decay)
    data_loss = dn.SoftmaxCrossEntropy().forward(net.forward(X, training=True), y)
    trainer = dn.Trainer(net, optimizer="sgd", lr=1e-3, l2=0.1, batch_size=16, epochs=1)
    history = trainer.fit(X, y)
    assert trainer.optimizer.weight_decay == 0.1
    assert all(p.value.flags.f_contiguous for p in net.parameters() if p.decay)   # the layout sum_of_squares must handle
    assert history.loss_includes_l2 is True
    assert history["train_loss"][0] == pytest.approx(data_loss + 0.05 * w2, rel=1e-10)
    adamw = dn.Trainer(dn.mlp([4, 6, 3], rng=0), optimizer="adamw", l2=0.1, epochs=1)
    assert adamw.fit(X, y).loss_includes_l2 is False


def test_schedule_by_name_and_plateau_metric():
    X, y = blobs(40)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), lr=0.01, schedule="cosine", epochs=4, batch_size=20)
    lrs = trainer.fit(X, y)["lr"]
    expected = [0.005 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    step = dn.Trainer(dn.mlp([4, 6, 3], rng=0), lr=0.1, optimizer="sgd", schedule="step",
                      schedule_kwargs={"step_size": 2, "gamma": 0.5}, epochs=5)
    np.testing.assert_allclose(step.fit(X, y)["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])


def test_fit_again_continues_epochs():
    X, y = blobs(24)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=2)
    trainer.fit(X, y)
    history = trainer.fit(X, y, epochs=3)
    assert history["epoch"] == [1, 2, 3, 4, 5]
    assert trainer.epoch == 5
    assert history.stop_message == "reached the maximum of 3 epochs (epoch 5)"


# -- stopping criteria ------------------------------------------------------------------------------
def _reference_run(key, epochs=12, **kw):
    X, y = blobs(60)
    t = dn.Trainer(dn.mlp([4, 8, 3], rng=0), optimizer="sgd", lr=0.05, batch_size=60, epochs=epochs, seed=3, **kw)
    return X, y, t.fit(X, y)[key]


def _first_below(values, threshold):
    return next(i + 1 for i, v in enumerate(values) if v < threshold)


@pytest.mark.parametrize("key, arg, reason", [("train_loss", "stop_loss_below", "loss_threshold"),
                                              ("grad_norm", "stop_grad_norm_below", "grad_norm_threshold")])
def test_threshold_criteria_stop_at_the_first_epoch_below(key, arg, reason):
    X, y, values = _reference_run(key)
    assert all(b < a for a, b in itertools.pairwise(values))       # a monotone descent to cut into
    target = 7
    threshold = (values[target - 2] + values[target - 1]) / 2             # between epochs 6 and 7
    assert _first_below(values, threshold) == target
    t = dn.Trainer(dn.mlp([4, 8, 3], rng=0), optimizer="sgd", lr=0.05, batch_size=60, epochs=12, seed=3,
                   **{arg: threshold})
    history = t.fit(X, y)
    assert len(history) == target
    assert history.stop_reason == reason
    assert f"at epoch {target}" in history.stop_message
    np.testing.assert_array_equal(history[key], values[:target])


def test_threshold_not_reached_runs_to_max_epochs():
    X, y, values = _reference_run("train_loss", epochs=5)
    t = dn.Trainer(dn.mlp([4, 8, 3], rng=0), optimizer="sgd", lr=0.05, batch_size=60, epochs=5, seed=3,
                   stop_loss_below=min(values) / 2, stop_grad_norm_below=1e-9)
    history = t.fit(X, y)
    assert len(history) == 5 and history.stop_reason == "max_epochs"


class FakeTrainer:
    def __init__(self):
        self.model = dn.Sequential(dn.Linear(2, 2, rng=0))
        self.has_validation = True
        self.resuming = False
        self.epoch = 0
        self.stopped = None

    def request_stop(self, reason, message=None):
        self.stopped = (self.epoch, reason, message)


@pytest.mark.parametrize("values, patience, min_delta, mode, stop_epoch, best_epoch", [
    ([5.0, 4.0, 4.5, 4.2, 4.1, 3.0], 3, 0.0, "min", 5, 2),        # 3 epochs without beating 4.0
    ([5.0, 4.0, 4.5, 3.9, 4.1, 4.2, 4.3], 3, 0.0, "min", 7, 4),   # 3.9 resets the count
    ([5.0, 4.0, 3.95, 3.92, 3.91, 3.0], 3, 0.1, "min", 5, 2),      # gains < min_delta do not count
    ([0.5, 0.6, 0.6, 0.7, 0.65, 0.66], 2, 0.0, "max", 6, 4),      # accuracies
    ([1.0, 0.9, 0.8, 0.7, 0.6], 1, 0.0, "min", None, 5),          # never stops while improving
])
def test_early_stopping_logic(values, patience, min_delta, mode, stop_epoch, best_epoch):
    es = EarlyStopping(monitor="val_loss", patience=patience, min_delta=min_delta, mode=mode, restore_best=False)
    tr = FakeTrainer()
    es.on_train_begin(tr)
    for e, v in enumerate(values, 1):
        tr.epoch = e
        es.on_epoch_end(tr, e, {"val_loss": v})
        if tr.stopped:
            break
    assert (tr.stopped[0] if tr.stopped else None) == stop_epoch
    assert es.best_epoch == best_epoch
    if stop_epoch:
        assert tr.stopped[1] == "early_stopping"


def test_early_stopping_in_fit_restores_best_weights():
    X, y = spiral(40)
    Xv, yv = spiral(20, seed=1)
    rec = Recorder()
    # a big learning rate makes the validation loss bounce: early stopping must catch it
    trainer = dn.Trainer(dn.mlp([2, 32, 3], rng=0), optimizer="sgd", lr=2.0, epochs=40, batch_size=8, callbacks=[rec],
                         early_stopping=EarlyStopping(patience=3, min_delta=0.0, restore_best=True))
    history = trainer.fit(X, y, validation_data=(Xv, yv))
    val = history["val_loss"]
    best = int(np.argmin(val)) + 1
    assert history.stop_reason == "early_stopping"
    assert len(history) == best + 3                              # stopped at the 3rd epoch without improvement
    assert history.best_epoch == best
    assert f"restored the weights of epoch {best}" in history.stop_message
    assert weights_equal(trainer.model.state_dict(), rec.weights[best])
    assert trainer.evaluate(Xv, yv)["loss"] == pytest.approx(val[best - 1], rel=1e-5)


def test_early_stopping_needs_validation():
    X, y = blobs(20)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), early_stopping=True)
    with pytest.raises(ValueError, match="no validation data"):
        trainer.fit(X, y)
    h = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=3, early_stopping={"monitor": "train_loss", "patience": 2}).fit(X, y)
    assert len(h) == 3


def test_callback_can_stop_after_a_batch():
    X, y = blobs(40)

    class StopAt(Callback):
        def on_batch_end(self, trainer, batch, loss):
            if trainer.epoch == 2 and batch == 3:
                trainer.request_stop("callback", "enough")

    history = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=4, epochs=5, callbacks=[StopAt()]).fit(X, y)
    assert len(history) == 2 and history.stop_reason == "callback" and history.stop_message == "enough"



def test_train_accuracy_counts_each_batch_prediction_before_its_step():
    X, y = blobs(40)
    label_of = {row.tobytes(): label for row, label in zip(X.astype(np.float64), y, strict=True)}
    bs, counts = 7, []

    class Count(Callback):                      # hits of the logits each batch was trained on, before its step
        def on_epoch_begin(self, trainer, epoch):
            counts.append([0, 0])

        def on_after_backward(self, trainer):
            last = trainer.model[-1]
            logits = last._x @ last.weight.value.T + last.bias.value
            labels = [label_of[row.tobytes()] for row in trainer.model[0]._x]  # the batch's rows, shuffled
            counts[-1][0] += int((logits.argmax(axis=1) == labels).sum())
            counts[-1][1] += len(labels)

        def on_batch_end(self, trainer, batch, loss):
            if trainer.epoch == 2 and batch == 5:
                trainer.request_stop("callback", "enough")

    history = dn.Trainer(dn.mlp([4, 6, 3], rng=0, dtype="float64"), optimizer="sgd", lr=0.5, batch_size=bs, epochs=3,
                         callbacks=[Count()]).fit(X, y)
    assert len(history) == 2 and counts[1][1] == 5 * bs           # the stopped epoch counts its 5 batches only
    assert history["train_accuracy"] == [hits / seen for hits, seen in counts]
    assert 0 < history["train_accuracy"][0] < 1

# -- divergence ---------------------------------------------------------------------------------------
def test_divergence_with_huge_learning_rate_keeps_last_good_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 10
    y = X @ np.array([1.0, 2.0, 3.0])
    rec = Recorder()
    net = dn.mlp([3, 16, 1], rng=0)
    initial = {k: v.copy() for k, v in net.state_dict().items()}
    trainer = dn.Trainer(net, loss="mse", optimizer="sgd", lr=1e6, batch_size=8, epochs=5, callbacks=[rec])
    with pytest.warns(RuntimeWarning, match=r"diverged at epoch 1, batch \d+/8"):
        history = trainer.fit(X, y)
    assert history.stop_reason == "diverged"
    assert "before training" in history.stop_message and "lr=1e+06" in history.stop_message
    assert len(history) == 0 and trainer.epoch == 0
    assert weights_equal(net.state_dict(), initial)


def test_injected_inf_gradient_names_epoch_and_batch():
    X, y = blobs(40)
    rec = Recorder()

    class Poison(Callback):
        def on_after_backward(self, trainer):
            if trainer.epoch == 2 and trainer.batch == 3:
                trainer.params[0].grad[0, 0] = np.inf

    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=4, callbacks=[rec, Poison()])
    with pytest.warns(RuntimeWarning):
        history = trainer.fit(X, y)
    assert history.stop_message.startswith("training diverged at epoch 2, batch 3/4: the gradient norm is inf")
    assert "from the end of epoch 1" in history.stop_message
    assert len(history) == 1 and trainer.epoch == 1
    assert weights_equal(trainer.model.state_dict(), rec.weights[1])
    # the trainer is usable afterwards: training continues from the good weights
    trainer.callbacks.pop()
    assert trainer.fit(X, y, epochs=1).stop_reason == "max_epochs"


def test_nonfinite_forward_is_divergence_and_can_raise():
    X, y = blobs(20)

    class Poison(Callback):
        def on_batch_begin(self, trainer, batch):
            if trainer.epoch == 1 and batch == 2:
                trainer.model[0].weight.value[0, 0] = np.nan

    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=5, epochs=2, callbacks=[Poison()], on_divergence="raise")
    with pytest.raises(dn.NonFiniteError, match=r"epoch 1, batch 2/4: a NaN or infinite value in the forward pass"):
        trainer.fit(X, y)
    assert np.isfinite(trainer.model[0].weight.value).all()


# -- Ctrl-C ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_after_the_current_batch_and_restores_the_handler():
    X, y = blobs(40)
    previous = signal.getsignal(signal.SIGINT)
    counted = []

    class CtrlC(Callback):
        def on_batch_end(self, trainer, batch, loss):
            counted.append((trainer.epoch, batch))
            if trainer.epoch == 2 and batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=5, callbacks=[CtrlC()])
    history = trainer.fit(X, y)
    assert history.stop_reason == "interrupted"
    assert "epoch 2, batch 2/4" in history.stop_message
    assert counted[-1] == (2, 2) and len(history) == 2
    assert signal.getsignal(signal.SIGINT) is previous
    assert trainer.fit(X, y, epochs=1).stop_reason == "max_epochs"      # still usable


def test_interrupt_method():
    X, y = blobs(40)

    class Stop(Callback):
        def on_batch_begin(self, trainer, batch):
            if batch == 1:
                trainer.interrupt()

    history = dn.Trainer(dn.mlp([4, 6, 3], rng=0), batch_size=10, epochs=3, callbacks=[Stop()]).fit(X, y)
    assert history.stop_reason == "interrupted" and len(history) == 1


# -- data ---------------------------------------------------------------------------------------------------
def test_stratified_split_keeps_class_proportions():
    y = np.repeat([0, 1, 2], [120, 60, 20])
    tr, va = validation_split(y, 0.25, np.random.default_rng(0), stratify=True)
    np.testing.assert_array_equal(np.bincount(y[va]), [30, 15, 5])
    np.testing.assert_array_equal(np.bincount(y[tr]), [90, 45, 15])
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 200
    _, va2 = validation_split(y, 0.25, np.random.default_rng(1), stratify=True)
    assert not np.array_equal(va, va2)


def test_validation_fraction_is_the_same_split_every_fit():
    X, y = blobs(50)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1, record_layers=False)
    trainer.fit(X, y, validation_fraction=0.2)
    v1 = trainer.history["val_loss"][0]
    before = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer.fit(X, y, validation_fraction=0.2, epochs=0)
    assert len(trainer.history) == 1 and weights_equal(before, trainer.model.state_dict())
    assert v1 is not None


@pytest.mark.parametrize("X, y, error, match", [
    (np.zeros(10), np.zeros(10, int), ValueError, "n_samples, n_features"),
    (np.zeros((10, 4)), np.zeros(9, int), ValueError, "same length"),
    (np.full((10, 4), np.nan), np.zeros(10, int), dn.NonFiniteError, "NaN"),
    (np.zeros((10, 4)), np.full(10, 3), ValueError, r"in \[0, 3\)"),
    (np.zeros((10, 4)), np.full(10, 0.5), TypeError, "whole numbers"),
    (np.array([["a"] * 4] * 10), np.zeros(10, int), TypeError, "numeric"),
    (np.zeros((10, 5)), np.zeros(10, int), ValueError, r"the model takes 4 features, X has shape \(10, 5\)"),
])
def test_bad_data_is_rejected_up_front(X, y, error, match):
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0))
    with pytest.raises(error, match=match):
        trainer.fit(X, y)


def test_regression_targets_must_match_the_output_width():
    trainer = dn.Trainer(dn.mlp([4, 6, 2], rng=0), loss="mse")
    with pytest.raises(ValueError, match=r"model has 2 outputs; targets must have shape \(n, 2\)"):
        trainer.fit(np.zeros((10, 4)), np.zeros(10))


def test_bad_arguments():
    net = dn.mlp([4, 6, 3], rng=0)
    with pytest.raises(ValueError, match="batch_size"):
        dn.Trainer(net, batch_size=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        dn.Trainer(net, optimizer="adagrad")
    with pytest.raises(ValueError, match="conflicts"):
        dn.Trainer(net, optimizer=dn.optim.SGD(net.parameters(), lr=0.1), l2=0.1)
    with pytest.raises(ValueError, match="not both"):
        dn.Trainer(net, epochs=1).fit(*blobs(10), validation_data=blobs(5), validation_fraction=0.1)


def test_data_converted_to_model_dtype_and_probability_targets():
    X, y = blobs(30)
    net64 = dn.mlp([4, 6, 3], rng=0, dtype="float64")
    trainer = dn.Trainer(net64, epochs=2)
    onehot = np.eye(3)[y]
    history = trainer.fit(X.astype(np.float32), onehot, validation_data=(X, onehot))
    assert net64[0].weight.value.dtype == np.float64
    assert 0.0 <= history["val_accuracy"][-1] <= 1.0


def test_predict_and_predict_proba():
    X, y = blobs(30)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=2)
    trainer.fit(X, y)
    logits = trainer.predict(X, batch_size=7)
    assert logits.shape == (30, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, trainer.model.forward(X.astype(np.float32)), rtol=1e-6)
    p = trainer.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    acc = trainer.evaluate(X, y)["accuracy"]
    assert acc == pytest.approx(np.mean(p.argmax(1) == y))
    reg = dn.Trainer(dn.mlp([4, 1], rng=0), loss="mse", epochs=1)
    with pytest.raises(ValueError, match="predict_proba"):
        reg.predict_proba(X)


def test_multilabel_task():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    Y = (X[:, :2] > 0).astype(float)
    trainer = dn.Trainer(dn.mlp([4, 16, 2], rng=0), loss="binary_cross_entropy", lr=0.02, epochs=30, batch_size=16)
    history = trainer.fit(X, Y)
    assert trainer.task == "multilabel"
    assert history["train_accuracy"][-1] > 0.9
    z = trainer.predict(X).astype(np.float64)
    np.testing.assert_allclose(trainer.predict_proba(X), 1 / (1 + np.exp(-z)), rtol=1e-6)


# -- progress -----------------------------------------------------------------------------------------
def test_quiet_by_default(capsys):
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=2).fit(*blobs(20))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_true_writes_one_line_per_epoch_to_stderr(capsys):
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=3, progress=True).fit(*blobs(20), validation_fraction=0.2)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert [ln.split()[1] for ln in lines[:3]] == ["1/3", "2/3", "3/3"]
    assert "train_loss" in lines[0] and "val_acc" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[2]
    assert lines[3] == "stopped: reached the maximum of 3 epochs (epoch 3)"
    assert "\r" not in captured.err


def test_progress_redraws_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = dn.ProgressBar(stream=stream, refresh=1e9)
    dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=2, batch_size=5, callbacks=[bar]).fit(*blobs(20))
    text = stream.getvalue()
    assert text.count("\r") == 2 * 4 + 2                   # every batch redrawn, then each epoch's summary
    assert "epoch 1/2 [" in text and "4/4  loss" in text and "ETA 0:00" in text
    assert text.endswith("stopped: reached the maximum of 2 epochs (epoch 2)\n")


def test_without_input_gradient_keeps_parameter_gradients_and_restores():
    from deltanet.accel.plan import without_input_gradient

    net = dn.mlp([3, 5, 2], rng=0, dtype="float64")
    x = np.random.default_rng(1).standard_normal((6, 3))
    g = np.random.default_rng(2).standard_normal((6, 2))
    net.forward(x, training=True)
    net.zero_grad()
    full = net.backward(g)
    expected = [p.grad.copy() for p in net.parameters()]
    with without_input_gradient(net):
        net.forward(x, training=True)
        net.zero_grad()
        assert net.backward(g) is None
        for p, e in zip(net.parameters(), expected, strict=True):
            np.testing.assert_array_equal(p.grad, e)
    net.forward(x, training=True)
    np.testing.assert_array_equal(net.backward(g), full)


def test_predict_and_evaluate_reject_nan_once_and_leave_the_input_check_on():
    from deltanet.errors import NonFiniteError

    X, y = blobs(30)
    trainer = dn.Trainer(dn.mlp([4, 6, 3], rng=0), epochs=1, batch_size=10)
    trainer.fit(X, y)
    np.testing.assert_allclose(trainer.predict(X, batch_size=7), trainer.model.forward(X.astype(np.float32)), rtol=1e-6)
    bad = X.copy()
    bad[12, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"X: input holds NaN or infinity \(first at index \(12, 2\)\)"):
        trainer.predict(bad)
    with pytest.raises(NonFiniteError, match=r"\(12, 2\)"):
        trainer.evaluate(bad, y)
    with pytest.raises(NonFiniteError):                     # the model's own test is back on after predict/evaluate
        trainer.model.forward(bad.astype(np.float32))
