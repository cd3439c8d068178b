"""The trainer's parts on their own: the run's epoch plan, an epoch's batches, one update."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.training.checkpoint import RunPlan
from deltanet.training.data import PreparedData, epoch_batches
from deltanet.training.step import StepResult, train_step


def test_run_plan_counts_the_epochs_of_a_fit_and_of_a_resumed_run():
    plan = RunPlan()
    assert plan.begin(0, None, 5) == 5 and (plan.start, plan.end) == (0, 5)
    assert plan.begin(5, 3, 5) == 3 and (plan.start, plan.end) == (5, 8)
    plan.restore(end=10, start=2)          # a checkpoint written at epoch 6 of a run planned as 2 .. 10
    assert plan.begin(6, None, 5) == 4 and (plan.start, plan.end) == (2, 10)
    assert plan.resume_end is None and plan.resume_start is None      # consumed
    plan.restore(end=10, start=2)
    assert plan.begin(6, 1, 5) == 1 and (plan.start, plan.end) == (6, 7)   # epochs= given: a new plan from here
    plan.restore(end=4, start=0)           # the plan already ran out: the trainer's own epochs
    assert plan.begin(6, None, 5) == 5 and (plan.start, plan.end) == (6, 11)
    with pytest.raises(ValueError, match="epochs must be an int >= 0"):
        plan.begin(0, -1, 5)


def test_epoch_batches_follow_the_permutation_with_a_longer_last_batch_and_the_weights():
    X = np.arange(14.0).reshape(7, 2)
    y = np.arange(7)
    w = np.linspace(0.5, 2.0, 7)
    perm = np.array([6, 0, 5, 1, 4, 2, 3])
    batches = list(epoch_batches(PreparedData(X, y, w), perm, 3, 2))       # 7 rows, B = 3: batches of 3 and 4
    assert [len(b[1]) for b in batches] == [3, 4]
    xb, yb, wb, weight = batches[1]
    np.testing.assert_array_equal(yb, perm[3:])
    np.testing.assert_array_equal(xb, X[perm[3:]])
    assert weight == pytest.approx(w[perm[3:]].sum(), rel=1e-15) and wb is not None
    unweighted = list(epoch_batches(PreparedData(X, y, None), perm, 3, 3))
    assert [(b[2], b[3]) for b in unweighted] == [(None, 3.0), (None, 3.0), (None, 1.0)]
    halves = list(epoch_batches(PreparedData(X, y, None), perm, 3, 3, shard=lambda idx, w: idx[:1]))
    assert [b[1].tolist() for b in halves] == [[6], [1], [3]]


def test_train_step_is_the_five_plain_calls():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)
    nets = [dn.mlp([4, 5, 3], rng=1, dtype="float64") for _ in range(2)]
    trainer = dn.Trainer(nets[0], optimizer="sgd", lr=0.1, epochs=1, batch_size=16)
    trainer.fast_path = dn.accel.fast_path(trainer, trainer.callback_list)
    result = train_step(trainer, X, y, None, trainer.callback_list)
    assert isinstance(result, StepResult)

    loss_fn = dn.SoftmaxCrossEntropy()
    opt = dn.optim.SGD(nets[1].parameters(), lr=0.1)
    loss = loss_fn.forward(nets[1].forward(X, training=True), y)
    opt.zero_grad()
    nets[1].backward(loss_fn.backward())
    norm = dn.optim.clipping.grad_norm(nets[1].parameters())
    opt.step()
    assert result.loss == pytest.approx(loss, rel=1e-14)
    assert result.grad_norm == pytest.approx(norm, rel=1e-12)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        np.testing.assert_allclose(a.value, b.value, rtol=0, atol=1e-15)


def test_train_step_reports_a_non_finite_loss_without_stepping():
    net = dn.mlp([2, 2], rng=0, dtype="float64")
    trainer = dn.Trainer(net, loss="mse", optimizer="sgd", epochs=1)
    trainer.fast_path = dn.accel.fast_path(trainer, trainer.callback_list)
    before = [p.value.copy() for p in net.parameters()]
    what = train_step(trainer, np.ones((3, 2)), np.full((3, 2), np.inf), None, trainer.callback_list)
    assert what.startswith("a NaN or infinite value in the forward pass") and "target" in what
    for p, b in zip(net.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.value, b)
