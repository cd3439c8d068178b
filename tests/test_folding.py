"""Folded gradients: the BLAS updates (deltanet.accel.blas), FoldSink, Optimizer.fold_gradients, the trainer.

A folded step adds each gradient straight into SGD's momentum buffer; it must give the same weights as the
ordinary step (float64: to rounding), and never be taken where something needs the gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.accel import blas, folding
from deltanet.accel.folding import FoldSink
from deltanet.optim import SGD, Adam, RMSprop, clip_grad_norm
from deltanet.parameter import Parameter
from deltanet.training import Callback, Trainer

needs_blas = pytest.mark.skipif(not blas.available(), reason="NumPy's BLAS is not scipy-openblas here")


@pytest.fixture(autouse=True)
def fold_small_networks(monkeypatch):
    """The tests' networks are small; take the BLAS paths anyway, for every optimizer (the size threshold
    has its own test), so that an optimizer that does not fold is refused for its rule, not its size."""
    monkeypatch.setattr(folding, "FOLD_MIN_SIZE", 0)


# -- deltanet.accel.blas ---------------------------------------------------------------------------------
def _operand(rng, shape, dtype, order):
    return np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)


@pytest.fixture(params=[False, True], ids=["blas", "numpy-fallback"])
def blas_mode(request, monkeypatch):
    if request.param:
        monkeypatch.setattr(blas, "_LIB", None)
    elif not blas.available():
        pytest.skip("NumPy's BLAS is not scipy-openblas here")
    return request.param


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("orders", ["CCC", "CCF", "CFC", "CFF", "FCC", "FCF", "FFC", "FFF"])
def test_gemm_equals_numpy_in_every_memory_order(blas_mode, dtype, tol, orders):
    rng = np.random.default_rng(0)
    a, b = _operand(rng, (7, 5), dtype, orders[0]), _operand(rng, (5, 9), dtype, orders[1])
    c = _operand(rng, (7, 9), dtype, orders[2])
    expected = -0.3 * (a.astype(np.float64) @ b) + 0.9 * c
    blas.gemm(-0.3, a, b, 0.9, c)
    np.testing.assert_allclose(c, expected, rtol=tol, atol=tol)


def test_gemm_on_slices_with_a_leading_dimension_writes_only_its_block(blas_mode):
    rng = np.random.default_rng(1)
    big = _operand(rng, (20, 30), np.float32, "F")
    before = big.copy()
    a = _operand(rng, (12, 6), np.float32, "C")[2:9, 1:6]            # row-major slice, leading dimension 6
    b = _operand(rng, (5, 16), np.float32, "F")[:, 3:12]             # column-major slice, leading dimension 5
    expected = a @ b + 0.5 * big[2:9, 3:12]
    blas.gemm(1.0, a, b, 0.5, big[2:9, 3:12])
    np.testing.assert_allclose(big[2:9, 3:12], expected, rtol=1e-5, atol=1e-5)
    outside = np.ones(big.shape, bool)
    outside[2:9, 3:12] = False
    np.testing.assert_array_equal(big[outside], before[outside])


def test_gemm_with_beta_zero_never_reads_c(blas_mode):
    rng = np.random.default_rng(2)
    a, b = _operand(rng, (4, 3), np.float64, "C"), _operand(rng, (3, 6), np.float64, "F")
    c = np.full((4, 6), np.nan, order="F")
    blas.gemm(2.0, a, b, 0.0, c)
    np.testing.assert_allclose(c, 2.0 * (a @ b), rtol=1e-14)


def test_gemm_falls_back_for_what_the_blas_cannot_take():
    rng = np.random.default_rng(3)
    a = _operand(rng, (6, 6), np.float64, "C")
    b = _operand(rng, (6, 6), np.float64, "C")
    # overlapping operands, a strided view without unit stride, mixed dtypes and integers: NumPy does it
    c = a.copy()
    blas.gemm(1.0, c, b, 1.0, c)
    np.testing.assert_allclose(c, a @ b + a, rtol=1e-13)
    big = _operand(rng, (12, 12), np.float64, "C")
    view = big[::2, ::2]
    expected = a @ b - view
    blas.gemm(1.0, a, b, -1.0, view)
    np.testing.assert_allclose(big[::2, ::2], expected, rtol=1e-13, atol=1e-13)
    c32 = np.zeros((6, 6), np.float32)
    blas.gemm(1.0, a, b, 0.0, c32)
    np.testing.assert_allclose(c32, a @ b, rtol=1e-5, atol=1e-5)
    ci = np.ones((2, 2), np.int64)
    blas.gemm(2, np.ones((2, 3), np.int64), np.ones((3, 2), np.int64), 1, ci)
    np.testing.assert_array_equal(ci, np.full((2, 2), 7))


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        blas.gemm(1.0, np.ones((2, 3)), np.ones((4, 2)), 0.0, np.ones((2, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_equals_numpy(blas_mode, dtype):
    rng = np.random.default_rng(4)
    x, y = _operand(rng, 100_003, dtype, "C"), _operand(rng, 100_003, dtype, "C")
    expected = -0.25 * x.astype(np.float64) + y
    blas.axpy(-0.25, x, y)
    np.testing.assert_allclose(y, expected, rtol=1e-6 if dtype == np.float32 else 1e-15, atol=1e-6)
    m = np.ones((3, 4), order="F")
    blas.axpy(2.0, np.arange(12.0).reshape(3, 4), m)           # 2-D: NumPy
    np.testing.assert_array_equal(m, 1 + 2 * np.arange(12.0).reshape(3, 4))
    with pytest.raises(ValueError, match="differ"):
        blas.axpy(1.0, np.ones(3), np.ones(4))


@needs_blas
def test_the_blas_is_numpys_own_library():
    import threadpoolctl

    loaded = {info["filepath"] for info in threadpoolctl.threadpool_info() if info["internal_api"] == "openblas"}
    assert blas._LIB.name in loaded


# -- FoldSink, the gradient sink of a folded step ------------------------------------------------------------------------
def test_folded_matmul_gradient_goes_into_the_target_scaled_once():
    rng = np.random.default_rng(5)
    p = Parameter(np.asfortranarray(rng.standard_normal((4, 3))))
    target = np.asfortranarray(rng.standard_normal((4, 3)))
    start = target.copy()
    a1, b1, a2, b2 = (rng.standard_normal(s) for s in ((4, 8), (8, 3), (4, 2), (2, 3)))
    p.sink = sink = FoldSink(target, 0.9)
    p.accumulate_matmul(a1, b1)
    p.accumulate_matmul(a2, b2)                                # a parameter used twice: both add, beta once
    np.testing.assert_allclose(target, 0.9 * start + a1 @ b1 + a2 @ b2, rtol=1e-13)
    assert sink.arrived is True
    p.zero_grad()                                              # the gradients are discarded: taken back out
    assert p.sink is None
    np.testing.assert_allclose(target, start, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(p.grad, 0)


def test_reading_grad_has_the_sink_give_the_gradient_back():
    rng = np.random.default_rng(7)
    p = Parameter(np.asfortranarray(rng.standard_normal((4, 3))))
    target = rng.standard_normal((4, 3))
    start = target.copy()
    a, b = rng.standard_normal((4, 8)), rng.standard_normal((8, 3))
    p.sink = FoldSink(target, 0.9)
    p.accumulate_matmul(a, b)
    g = p.grad                                                 # formed now from the arrays that arrived
    assert p.sink is None
    np.testing.assert_allclose(g, a @ b, rtol=1e-13)
    np.testing.assert_allclose(target, start, rtol=1e-12, atol=1e-14)


def test_folded_vector_plain_and_row_gradients():
    rng = np.random.default_rng(6)
    bias = Parameter(np.zeros(5))
    tb = rng.standard_normal(5)
    start = tb.copy()
    delta = rng.standard_normal((7, 5))
    bias.sink = FoldSink(tb, 0.5)
    bias.accumulate_sum(delta)                                 # 1^T delta
    np.testing.assert_allclose(tb, 0.5 * start + delta.sum(axis=0), rtol=1e-13)

    table = Parameter(np.zeros((6, 2)))
    tt = rng.standard_normal((6, 2))
    start = tt.copy()
    g = rng.standard_normal((3, 2))
    table.sink = FoldSink(tt, 0.25)
    table.accumulate(g, rows=slice(0, 3))                      # positional embedding: only the first rows
    expected = 0.25 * start
    expected[:3] += g
    np.testing.assert_allclose(tt, expected, rtol=1e-13)


def test_a_sink_without_a_gradient_and_zero_grad_detaching_it():
    p = Parameter(np.ones(3))
    target = np.full(3, 2.0)
    p.sink = sink = FoldSink(target, 0.5)
    assert sink.arrived is False                               # nothing arrived: target untouched
    np.testing.assert_array_equal(target, 2.0)
    p.zero_grad()
    p.accumulate(np.ones(3))
    np.testing.assert_array_equal(p.grad, 1.0)
    np.testing.assert_array_equal(target, 2.0)


def test_parameters_pickle_and_old_pickles_start_unfolded():
    import pickle

    p = Parameter(np.arange(6.0).reshape(2, 3), name="w")
    p.accumulate(np.ones((2, 3)))
    q = pickle.loads(pickle.dumps(p))
    np.testing.assert_array_equal(q.value, p.value)
    np.testing.assert_array_equal(q.grad, 1.0)
    assert (q.name, q.decay, q.sink) == ("w", True, None)
    p.sink = FoldSink(np.zeros((2, 3)), 0.5)
    assert pickle.loads(pickle.dumps(p)).sink is None          # a sink belongs to one step: never pickled
    old = Parameter.__new__(Parameter)                       # the state a version with the fold slots pickled
    old.__setstate__((None, {"value": p.value, "_grad": np.zeros((2, 3)), "_grad_is_zero": True, "name": "w",
                             "decay": True, "_fold": None, "_fold_beta": None}))
    assert old.sink is None
    old.accumulate_matmul(np.ones((2, 1)), np.ones((1, 3)))
    np.testing.assert_array_equal(old.grad, 1.0)


# -- Optimizer.fold_gradients ----------------------------------------------------------------------
def _steps(net, opt, fold, steps=6, seed=0, dtype="float64", measure=False):
    rng = np.random.default_rng(seed)
    loss_fn = dn.SoftmaxCrossEntropy()
    folded = 0
    for _ in range(steps):
        x = rng.normal(size=(16, net[0].in_features)).astype(dtype)
        out = net.forward(x, training=True)
        loss_fn.forward(out, rng.integers(0, out.shape[1], size=16))
        opt.zero_grad()
        folded += bool(fold and opt.fold_gradients())
        net.backward(loss_fn.backward())
        opt.step(measure_grad_norm=measure)
    return folded


@needs_blas
@pytest.mark.parametrize("hyper", [{"momentum": 0.9}, {"momentum": 0.5, "weight_decay": 0.05}])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_folded_sgd_equals_the_ordinary_step(hyper, batch_norm):
    results = []
    for fold in (False, True):
        net = dn.mlp([6, 20, 9, 3], activation="relu", batch_norm=batch_norm, rng=0, dtype="float64")
        opt = SGD(net.parameters(), lr=0.05, **hyper)
        assert _steps(net, opt, fold) == (6 if fold else 0)
        results.append((net.state_dict(), opt.state_dict()["state"]))
    (w0, s0), (w1, s1) = results
    for k in w0:
        np.testing.assert_allclose(w1[k], w0[k], rtol=1e-12, atol=1e-14, err_msg=k)
    for k in s0:
        np.testing.assert_allclose(s1[k], s0[k], rtol=1e-12, atol=1e-14, err_msg=k)


@needs_blas
def test_folded_sgd_in_float32_and_a_parameter_without_gradient():
    net = dn.mlp([6, 20, 3], rng=0, dtype="float32")
    spare = Parameter(np.ones((2, 2), np.float32), name="spare")        # in the optimizer, never in backward
    ref_net = dn.mlp([6, 20, 3], rng=0, dtype="float32")
    ref_spare = Parameter(np.ones((2, 2), np.float32), name="spare")
    opt = SGD([*net.parameters(), spare], lr=0.05, momentum=0.9)
    ref = SGD([*ref_net.parameters(), ref_spare], lr=0.05, momentum=0.9)
    for o, sp in ((opt, spare), (ref, ref_spare)):              # a first step gives the spare a velocity
        o.zero_grad()
        sp.grad = np.ones((2, 2), np.float32)
        o.step()
    assert _steps(net, opt, True, dtype="float32") == 6
    _steps(ref_net, ref, False, dtype="float32")
    for p, q in zip(net.parameters(), ref_net.parameters(), strict=True):
        np.testing.assert_allclose(p.value, q.value, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(spare.value, ref_spare.value, rtol=1e-6)   # moved by the decaying velocity alone
    assert spare.value[0, 0] < 1 - 0.05


@needs_blas
@pytest.mark.parametrize("pooling, length", [("mean", 4), ("cls", 6)])
def test_folded_sgd_trains_a_transformer_like_the_ordinary_step(pooling, length):
    # attention, layer norm, a class token and a learned positional table (only its first rows when the
    # sequences are shorter than max_len): every kind of gradient accumulation goes through the fold
    rng = np.random.default_rng(10)
    xs = [rng.normal(size=(5, length, 3)) for _ in range(3)]
    ys = [rng.integers(0, 2, 5) for _ in range(3)]
    states = []
    for fold in (False, True):
        net = dn.transformer_classifier(3, 2, max_len=6, d_model=8, n_heads=2, n_blocks=1, pooling=pooling,
                                        rng=0, dtype="float64")
        opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
        loss_fn = dn.SoftmaxCrossEntropy()
        for x, y in zip(xs, ys, strict=True):
            loss_fn.forward(net.forward(x, training=True), y)
            opt.zero_grad()
            if fold:
                assert opt.fold_gradients()
            net.backward(loss_fn.backward())
            opt.step()
        states.append(net.state_dict())
    for k, v in states[0].items():
        np.testing.assert_allclose(states[1][k], v, rtol=1e-12, atol=1e-14, err_msg=k)


@needs_blas
def test_folding_with_one_flat_buffer_per_dtype():
    rng = np.random.default_rng(9)
    values = [np.asfortranarray(rng.standard_normal((5, 4)).astype(dt)) for dt in (np.float32, np.float64)]
    grads = [(rng.standard_normal((5, 3)), rng.standard_normal((3, 4))) for _ in values]
    weights = []
    for fold in (False, True):
        params = [Parameter(v.copy(order="F")) for v in values]
        opt = SGD(params, lr=0.1, momentum=0.8, weight_decay=0.1)
        for _ in range(3):
            opt.zero_grad()
            if fold:
                assert opt.fold_gradients()
            for p, (a, b) in zip(params, grads, strict=True):
                p.accumulate_matmul(a.astype(p.dtype), b.astype(p.dtype))
            opt.step()
        assert len(opt.flat_buffers) == 2
        weights.append([p.value for p in params])
    np.testing.assert_allclose(weights[1][0], weights[0][0], rtol=1e-5)
    np.testing.assert_allclose(weights[1][1], weights[0][1], rtol=1e-13)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps), lambda ps: RMSprop(ps, momentum=0.9),
                                  lambda ps: SGD(ps, lr=0.1), lambda ps: SGD(ps, momentum=0.9, nesterov=True),
                                  lambda ps: SGD(ps, momentum=0.9, fused=False)],
                         ids=["adam", "rmsprop", "plain-sgd", "nesterov", "unfused"])
def test_rules_without_a_running_gradient_sum_do_not_fold(make):
    net = dn.mlp([4, 5, 2], rng=0)
    opt = make(net.parameters())
    assert opt.fold_gradients() is False
    assert all(p.sink is None for p in net.parameters())


@needs_blas
def test_small_networks_are_not_folded(monkeypatch):
    monkeypatch.undo()
    small = SGD(dn.mlp([64, 32, 10], rng=0).parameters(), momentum=0.9)           # 2,410 elements
    large = SGD(dn.mlp([784, 64, 10], rng=0).parameters(), momentum=0.9)          # 50,890
    larger = SGD(dn.mlp([100, 256, 256, 10], rng=0).parameters(), momentum=0.9)   # 94,730
    assert folding.FOLD_MIN_SIZE == 65536
    assert [small.fold_gradients(), large.fold_gradients(), larger.fold_gradients()] == [False, False, True]


@needs_blas
def test_folded_step_measures_no_norm_and_zero_grad_cancels_folding():
    net = dn.mlp([4, 5, 2], rng=0, dtype="float64")
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    assert _steps(net, opt, True, steps=1, measure=True) == 1
    assert opt.last_grad_norm is None
    assert opt.fold_gradients()
    target = opt.state[0]["momentum_buffer"]
    before = target.copy()
    net[0].weight.accumulate_matmul(np.ones((5, 2)), np.ones((2, 4)))
    assert opt.fold_gradients()                                # armed already: not scaled a second time
    net[0].weight.accumulate_matmul(np.ones((5, 2)), np.ones((2, 4)))
    np.testing.assert_allclose(target, 0.9 * before + 4.0, rtol=1e-14)
    opt.zero_grad()                                            # cancelled: the next step is an ordinary one
    loss_fn = dn.SoftmaxCrossEntropy()
    loss_fn.forward(net.forward(np.ones((3, 4)), training=True), np.array([0, 1, 0]))
    net.backward(loss_fn.backward())
    expected = float(np.sqrt(sum(np.vdot(p.grad, p.grad) for p in net.parameters())))
    assert opt.step(measure_grad_norm=True) == pytest.approx(expected, rel=1e-12)
    assert opt.last_grad_norm == pytest.approx(expected, rel=1e-12)


# -- the trainer ---------------------------------------------------------------------------------------
class _ReadsGradients(Callback):
    """Overrides on_after_backward, which keeps every step ordinary (the gradients must exist there)."""

    def __init__(self):
        self.calls = 0

    def on_after_backward(self, trainer):
        self.calls += 1


def _fit(callbacks, n=200, batch_size=32, epochs=3, **kw):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    net = dn.mlp([8, 16, 3], rng=0, dtype="float64")
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9, **kw)
    counted = {"folded": 0}
    original = opt.fold_gradients

    def counting():
        done = original()
        counted["folded"] += done
        return done

    opt.fold_gradients = counting
    trainer = Trainer(net, optimizer=opt, batch_size=batch_size, epochs=epochs, record_layers=False, progress=False,
                      callbacks=callbacks)
    history = trainer.fit(X, y)
    return net, history, counted["folded"]


@needs_blas
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.01}])
def test_trainer_folds_all_but_each_epochs_last_batch_and_trains_the_same(kw):
    net, history, folded = _fit([], **kw)
    spy = _ReadsGradients()
    ref_net, ref_history, ref_folded = _fit([spy], **kw)
    assert folded == 3 * (7 - 1) and ref_folded == 0 and spy.calls == 3 * 7     # 200 samples / 32 = 7 batches
    for k, v in ref_net.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[k], v, rtol=1e-11, atol=1e-13, err_msg=k)
    np.testing.assert_allclose(history["train_loss"], ref_history["train_loss"], rtol=1e-11)
    assert all(g is not None and g > 0 for g in history["grad_norm"])


@needs_blas
def test_trainer_grad_norm_when_folding_is_the_epochs_last_batch():
    # one batch per epoch: the measured batch is the whole epoch, so the norm equals the ordinary run's
    _, history, folded = _fit([], n=64, batch_size=64)
    _, ref_history, _ = _fit([_ReadsGradients()], n=64, batch_size=64)
    assert folded == 0
    np.testing.assert_allclose(history["grad_norm"], ref_history["grad_norm"], rtol=1e-12)


@needs_blas
@pytest.mark.parametrize("kw", [{"record_layers": True}, {"clip_norm": 1.0}, {"stop_grad_norm_below": 1e-9},
                                {"gradient_hook": lambda params: None}], ids=lambda kw: next(iter(kw)))
def test_trainer_does_not_fold_when_something_needs_the_gradients(kw):
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(96, 4)), rng.integers(0, 2, 96)
    net = dn.mlp([4, 6, 2], rng=0, dtype="float64")
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    calls = []
    original = opt.fold_gradients
    opt.fold_gradients = lambda: calls.append(1) or original()
    trainer = Trainer(net, optimizer=opt, batch_size=16, epochs=2, progress=False,
                      **{"record_layers": False, **kw})
    trainer.fit(X, y)
    assert calls == []


# -- folding's consistency checks -----------------------------------------------------------------------
@needs_blas
def test_zeroing_gradients_after_arming_sends_them_to_grad_and_the_step_is_the_same():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(8, 4)), rng.integers(0, 2, 8)
    weights = []
    for zero_all in (False, True):
        net = dn.mlp([4, 5, 2], rng=0, dtype="float64")
        opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
        loss_fn = dn.SoftmaxCrossEntropy()
        loss_fn.forward(net.forward(x, training=True), y)
        opt.zero_grad()
        if zero_all:
            assert opt.fold_gradients()
            net.zero_grad()                                    # detaches every sink: an ordinary step follows
        net.backward(loss_fn.backward())
        opt.step()
        weights.append(np.concatenate([p.value.ravel() for p in net.parameters()]))
    np.testing.assert_array_equal(weights[1], weights[0])
    net = dn.mlp([4, 5, 2], rng=0, dtype="float64")
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss_fn.forward(net.forward(x, training=True), y)
    opt.zero_grad()
    assert opt.fold_gradients()
    net[0].weight.zero_grad()                                  # only one: its gradient goes to grad, the rest fold
    net.backward(loss_fn.backward())
    opt.step()
    np.testing.assert_allclose(np.concatenate([p.value.ravel() for p in net.parameters()]), weights[0], rtol=1e-12)


def test_blas_axpby_equals_numpy_in_both_memory_orders(blas_mode):
    rng = np.random.default_rng(11)
    for order in "CF":
        x, y = _operand(rng, (30, 7), np.float64, order), _operand(rng, (30, 7), np.float64, order)
        expected = 0.3 * x + 0.7 * y
        blas.axpby(0.3, x, 0.7, y)
        np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)
    x, y = _operand(rng, (30, 7), np.float64, "C"), _operand(rng, (30, 7), np.float64, "F")     # mixed orders: NumPy
    expected = 2.0 * x - y
    blas.axpby(2.0, x, -1.0, y)
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)
    with pytest.raises(ValueError, match="differ"):
        blas.axpby(1.0, np.ones(3), 1.0, np.ones(4))


# -- folding with no extra call: the optimizer arms itself -----------------------------------------------------------------
def _plain_loop(steps, *, read_grad_at=None, double_backward=False, module_zero_grad=False, fast=True):
    """The five plain calls with SGD momentum; returns (weights, optimizer)."""
    from deltanet import accel

    accel.set_fast_enabled(fast)
    try:
        rng = np.random.default_rng(21)
        x, y = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
        net = dn.mlp([6, 16, 16, 3], rng=1, dtype="float64")
        opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
        loss_fn = dn.SoftmaxCrossEntropy()
        for step in range(steps):
            xb, yb = x[step % 4 * 10:(step % 4 + 1) * 10], y[step % 4 * 10:(step % 4 + 1) * 10]
            (net if module_zero_grad else opt).zero_grad()
            loss_fn.forward(net.forward(xb, training=True), yb)
            net.backward(loss_fn.backward())
            if double_backward:                                 # two backward passes accumulate before the step
                loss_fn.forward(net.forward(xb[::-1], training=True), yb[::-1])
                net.backward(loss_fn.backward())
            if step == read_grad_at:
                clip_grad_norm(net.parameters(), 0.5)
            opt.step()
        return np.concatenate([p.value.ravel() for p in net.parameters()]), opt
    finally:
        accel.set_fast_enabled(None)


@pytest.mark.parametrize("kw", [{}, {"module_zero_grad": True}, {"double_backward": True}])
def test_the_plain_calls_fold_by_themselves_and_train_as_the_reference(kw):
    weights, opt = _plain_loop(6, **kw)
    reference, _ = _plain_loop(6, fast=False, **kw)
    np.testing.assert_allclose(weights, reference, rtol=1e-10, atol=1e-13)
    assert opt.engine.auto_fold and opt.engine.folding                       # armed for the next step
    assert all(isinstance(p.sink, FoldSink) and p.sink.persistent for p in opt.params)


def test_reading_the_gradients_gives_them_back_and_stops_the_folding():
    weights, opt = _plain_loop(6, read_grad_at=3)                # clip_grad_norm at step 3 reads every gradient
    reference, _ = _plain_loop(6, read_grad_at=3, fast=False)
    np.testing.assert_allclose(weights, reference, rtol=1e-10, atol=1e-13)
    assert not opt.engine.auto_fold and not opt.engine.folding
    assert all(p.sink is None for p in opt.params)


def test_a_fit_after_plain_steps_decides_folding_itself_and_equals_the_reference():
    from deltanet import accel

    results = []
    for fast in (True, False):
        accel.set_fast_enabled(fast)
        try:
            rng = np.random.default_rng(3)
            x, y = rng.normal(size=(64, 6)), rng.integers(0, 3, 64)
            net = dn.mlp([6, 16, 3], rng=2, dtype="float64")
            opt = SGD(net.parameters(), lr=0.05, momentum=0.9)
            loss_fn = dn.SoftmaxCrossEntropy()
            for _ in range(2):                                    # plain steps first: the optimizer arms itself
                opt.zero_grad()
                loss_fn.forward(net.forward(x, training=True), y)
                net.backward(loss_fn.backward())
                opt.step()
            trainer = Trainer(net, optimizer=opt, batch_size=16, epochs=2, record_layers=False)
            history = trainer.fit(x, y)
            results.append((np.concatenate([p.value.ravel() for p in net.parameters()]), history["train_loss"]))
        finally:
            accel.set_fast_enabled(None)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10)
