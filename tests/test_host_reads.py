"""Host reads (device-to-host copies, a synchronisation each on a GPU) counted on the guard namespace.

``guard.count_reads`` counts every scalar pulled from a guard array and every explicit host copy. A fit's
reads per batch are the difference of two fits that differ only in their number of batches; they are pinned
here, so that a change that adds one shows up (and one that removes one updates the number):

* 2 per batch by default: the loss value (with the NaN/inf test of the network output, in one read) and the
  gradient norm the optimizer measured in its step;
* +1 with sample weights (the batch's weight sum, read by the trainer; the loss reads the weights' sum
  with its value);
* with ``record_layers``: one squared gradient norm per parameter instead of the optimizer's norm;
* with ``l2``: one squared norm per decayed parameter for the loss's L2 term.

And the losses read once per batch inside a fit (targets prechecked; BinaryCrossEntropyWithLogits three times, its
target range test stays) with the numbers and errors of the checked path, which reads two to five times.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import backend
from deltanet.errors import NonFiniteError
from deltanet.losses import BinaryCrossEntropyWithLogits, MeanSquaredError, SoftmaxCrossEntropy
from deltanet.testing import guard

G = guard.xp


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


def _fit_reads(n, epochs=1, weighted=False, **kwargs):
    X, y = _blobs(n)
    with backend.use_backend(G):
        trainer = dn.Trainer(dn.mlp([6, 8, 3], rng=0), batch_size=16, epochs=epochs, seed=0, **kwargs)
        with guard.count_reads() as reads:
            history = trainer.fit(X, y, sample_weight=np.linspace(0.5, 1.5, n) if weighted else None)
    return reads, history


@pytest.mark.parametrize(("kwargs", "per_batch"), [
    ({"record_layers": False}, 2),
    ({"record_layers": False, "optimizer": "sgd"}, 2),
    ({"record_layers": False, "weighted": True}, 3),
    ({"record_layers": False, "clip_norm": 1.0}, 2),
    ({"record_layers": False, "l2": 1e-3}, 4),                 # two weight matrices
    ({"record_layers": True}, 5),                              # four parameters, no norm from the step
])
def test_host_reads_per_batch_of_a_fit(kwargs, per_batch):
    six, _ = _fit_reads(96, **kwargs)                          # 6 batches
    twelve, _ = _fit_reads(192, **kwargs)                      # 12 batches
    assert (twelve.count - six.count) / 6 == per_batch
    per_line = {line: twelve.by_line().get(line, 0) - six.by_line().get(line, 0) for line in twelve.by_line()}
    assert sum(v for v in per_line.values() if v) == 6 * per_batch
    assert all(v % 6 == 0 for v in per_line.values())          # each place reads a whole number of times per batch


def test_host_reads_per_epoch_of_a_fit():
    one, _ = _fit_reads(192, epochs=1, record_layers=False)
    two, _ = _fit_reads(192, epochs=2, record_layers=False)
    assert two.count - one.count == 12 * 2 + 1                 # the batches' reads, and the correct-prediction count


def test_guard_counts_every_kind_of_read_with_its_place():
    x = G.asarray(np.arange(6.0).reshape(2, 3))
    with guard.count_reads() as reads:
        float(x[0, 1])
        bool(x.sum() > 0)
        x.tolist()
        backend.to_numpy(x)
    assert [what for what, _ in reads.where] == ["float()", "bool()", ".tolist()", ".get()"]
    assert all("test_host_reads.py:" in place for _, place in reads.where[:3])
    assert reads.where[3][1].startswith("backend.py:")           # backend.to_numpy's .get(), called from here
    assert reads.count == 4 and sum(reads.by_line().values()) == 4


# -- the losses: one read per forward while the targets are prechecked, the checked path's numbers and errors --------
def _cases(dtype):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((20, 4)).astype(dtype)
    labels = rng.integers(0, 4, 20)
    probs = rng.dirichlet(np.ones(4), 20).astype(dtype)
    y = rng.standard_normal((20, 4)).astype(dtype)
    t = (rng.random((20, 4)) > 0.5).astype(dtype)
    return [(SoftmaxCrossEntropy, z, labels), (SoftmaxCrossEntropy, z, probs), (MeanSquaredError, z, y),
            (BinaryCrossEntropyWithLogits, z, t)]


def _forward(make, z, target, w, prechecked):
    loss = make()
    loss.check_targets = not prechecked
    with guard.count_reads() as reads:
        value = loss.forward(G.asarray(z), G.asarray(target), None if w is None else G.asarray(w))
    return value, backend.to_numpy(loss.backward()), reads.count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_prechecked_losses_read_once_with_the_same_numbers(dtype, weighted):
    w = np.linspace(0.0, 2.0, 20).astype(dtype) if weighted else None
    with backend.use_backend(G):
        for make, z, target in _cases(dtype):
            checked, grad_checked, reads_checked = _forward(make, z, target, w, prechecked=False)
            once, grad_once, reads_once = _forward(make, z, target, w, prechecked=True)
            assert once == checked and type(once) is float                      # bit for bit
            np.testing.assert_array_equal(grad_once, grad_checked)
            # BinaryCrossEntropyWithLogits tests its targets' range in [0, 1] whatever check_targets says (a task
            # other than multilabel may bring targets the fit did not test): two reads more
            assert reads_once == (3 if make is BinaryCrossEntropyWithLogits else 1)
            assert reads_checked > reads_once


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_prechecked_losses_raise_the_checked_error_for_a_non_finite_output(bad):
    with backend.use_backend(G):
        for make, z, target in _cases(np.float32):
            z = z.copy()
            z[3, 2] = bad
            messages = []
            for prechecked in (False, True):
                loss = make()
                loss.check_targets = not prechecked
                with np.errstate(invalid="ignore", over="ignore"), pytest.raises(NonFiniteError) as info:
                    loss.forward(G.asarray(z), G.asarray(target))
                messages.append(str(info.value))
                assert loss._grad_cache is None                                 # nothing kept for backward
            assert messages[0] == messages[1] and "(first at index (3, 2))" in messages[0]


def test_prechecked_losses_raise_for_weights_summing_to_zero():
    with backend.use_backend(G):
        for make, z, target in _cases(np.float64):
            for prechecked in (False, True):
                loss = make()
                loss.check_targets = not prechecked
                with np.errstate(invalid="ignore", divide="ignore"), pytest.raises(ValueError, match="sums to 0"):
                    loss.forward(G.asarray(z), G.asarray(target), G.zeros(20))


def test_an_overflowing_probe_falls_back_to_the_exact_test():
    z = np.full((4, 3), 3e38, np.float32)                     # finite, but sum z^2 overflows float32
    with backend.use_backend(G):
        loss = MeanSquaredError()
        loss.check_targets = False
        with np.errstate(over="ignore", invalid="ignore"):
            value = loss.forward(G.asarray(z), G.asarray(z))
    assert value == 0.0


def test_fits_on_the_guard_give_the_numpy_histories():
    X, y = _blobs(192)
    for weighted in (False, True):
        w = np.linspace(0.5, 1.5, 192) if weighted else None
        ref = dn.Trainer(dn.mlp([6, 8, 3], rng=0), batch_size=16, epochs=2, seed=0, record_layers=False).fit(X, y, sample_weight=w)
        _, history = _fit_reads(192, epochs=2, weighted=weighted, record_layers=False)
        np.testing.assert_allclose([r["train_loss"] for r in history], [r["train_loss"] for r in ref], rtol=1e-5)
