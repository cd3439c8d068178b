"""The bias + activation kernels and the softmax cross-entropy kernel equal their references (float32 to
rounding, float64 to 1e-12), on odd shapes, both memory orders and strided views; the fast path's moved bias
gives the plain Linear + activation's numbers and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import accel
from deltanet.accel import plan

A = pytest.importorskip("deltanet.accel.kernels.activation")
S = pytest.importorskip("deltanet.accel.kernels.softmax_ce")

SHAPES = [(1, 1), (3, 7), (17, 33), (128, 65), (513, 5)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
MODULES = {"relu": lambda: dn.ReLU(), "leaky_relu": lambda: dn.LeakyReLU(0.1), "tanh": lambda: dn.Tanh(),
           "sigmoid": lambda: dn.Sigmoid()}


@pytest.fixture(autouse=True)
def kernels_for_small_arrays(monkeypatch):
    """The hook hands out kernels for arrays of every size here (by default from ELEMENTWISE_MIN_SIZE on)."""
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 0)


def layout(a, kind):
    """``a`` row-major, column-major, or as a strided view (every other row and column of a larger array)."""
    if kind == "C":
        return np.ascontiguousarray(a)
    if kind == "F":
        return np.asfortranarray(a)
    big = np.zeros((2 * a.shape[0], 2 * a.shape[1]), a.dtype)
    big[::2, ::2] = a
    view = big[::2, ::2]
    assert a.size == 1 or not (view.flags.c_contiguous or view.flags.f_contiguous)
    return view


def data(shape, dtype, kind, seed=0):
    rng = np.random.default_rng(seed)
    z = layout((rng.standard_normal(shape) * 3).astype(dtype), kind)
    g = layout(rng.standard_normal(shape).astype(dtype), kind)
    return z, g, rng.standard_normal(shape[1]).astype(dtype)


@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_bias_activation_equals_the_module(name, dtype, shape, kind):
    z, g, b = data(shape, dtype, kind)
    module = MODULES[name]()
    alpha = getattr(module, "alpha", 0.0)
    h_ref = module.forward(z + b, training=True)
    delta_ref = module.backward(g)
    h = A.forward(z, b, name, alpha)
    assert h.dtype == dtype and h.shape == shape
    np.testing.assert_allclose(h, h_ref, **TOL[dtype])
    delta, db = A.backward(g, h, name, alpha)
    assert delta.dtype == db.dtype == dtype
    np.testing.assert_allclose(delta, delta_ref, **TOL[dtype])
    np.testing.assert_allclose(db, delta_ref.sum(axis=0), **TOL[dtype])


@pytest.mark.parametrize("order", ["C", "F"])
def test_outputs_keep_the_memory_order_and_may_overwrite_the_input(order):
    z, g, b = data((9, 4), np.float64, order)
    want = np.maximum(z + b, 0)
    assert A.forward(z, b, "relu").flags[f"{order}_CONTIGUOUS"]
    assert A.backward(g, want, "relu")[0].flags[f"{order}_CONTIGUOUS"]
    out = A.forward(z, b, "relu", out=z)
    assert out is z
    np.testing.assert_array_equal(z, want)


def reference_ce(z, labels, w=None):
    """The loss's own labels path (kernels off)."""
    accel.kernels.set_enabled(False)
    try:
        loss = dn.losses.SoftmaxCrossEntropy()
        value = loss.forward(z, labels, w)
        return value, loss.backward()
    finally:
        accel.kernels.set_enabled(None)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["C", "F", "strided"])
@pytest.mark.parametrize("shape", [(1, 2), (5, 3), (37, 10), (130, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_equals_the_loss(dtype, shape, kind, weighted):
    rng = np.random.default_rng(3)
    z = layout((rng.standard_normal(shape) * 4).astype(dtype), kind)
    z[0, 0] = -150.0                                  # a probability below float32's smallest normal: flushed
    labels = rng.integers(0, shape[1], shape[0])
    w = rng.random(shape[0]) + 0.1 if weighted else None
    value, grad_ref = reference_ce(z, labels, w)
    wd = None if w is None else w.astype(dtype)
    total = shape[0] if w is None else float(wd.sum())
    num, grad = S.loss_and_grad(z, labels, wd, None if w is None else total)
    np.testing.assert_allclose(num / total, value, **TOL[dtype])
    np.testing.assert_allclose(grad, grad_ref, **TOL[dtype])
    assert grad.dtype == dtype
    assert np.array_equal(grad == 0, grad_ref == 0)
    with_kernel = dn.losses.SoftmaxCrossEntropy()     # and through the hook, with Numba loaded
    np.testing.assert_allclose(with_kernel.forward(z, labels, w), value, **TOL[dtype])
    np.testing.assert_allclose(with_kernel.backward(), grad_ref, **TOL[dtype])


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_cross_entropy_parallel_build_equals_the_loss(weighted):
    """Logits of at least ``PARALLEL_MIN_SIZE`` elements take the parallel build (its sum in another order)."""
    from deltanet.accel.kernels import compiled

    rows = compiled.PARALLEL_MIN_SIZE // 10 + 3                    # just over the threshold, 10 classes
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((rows, 10)) * 4).astype(np.float32)
    labels = rng.integers(0, 10, rows)
    w = (rng.random(rows) + 0.1).astype(np.float32) if weighted else None
    value, grad_ref = reference_ce(z, labels, w)
    total = rows if w is None else float(w.sum())
    num, grad = S.loss_and_grad(z, labels, w, None if w is None else total)
    np.testing.assert_allclose(num / total, value, rtol=1e-5)     # float32 rows summed in float64 in another order
    np.testing.assert_allclose(grad, grad_ref, **TOL[np.float32])


def test_softmax_cross_entropy_non_finite_logits_still_raise():
    z = np.zeros((4, 3))
    z[1, 2] = np.inf
    loss = dn.losses.SoftmaxCrossEntropy()
    with pytest.raises(dn.errors.NonFiniteError):
        loss.forward(z, np.array([0, 1, 2, 0]))
    loss.check_targets = False                        # the deferred test, read with the loss value
    with np.errstate(invalid="ignore"), pytest.raises(dn.errors.NonFiniteError):
        loss.forward(z, np.array([0, 1, 2, 0]))


def network(act, dtype, seed=0):
    return dn.Sequential(dn.Linear(6, 9, rng=seed, dtype=dtype), act(), dn.Linear(9, 5, rng=seed + 1, dtype=dtype),
                         act(), dn.Linear(5, 3, rng=seed + 2, dtype=dtype))


def moved(net):
    """The block with both pairs of :func:`network` moved (the kernels where they run, else the plain formulas)."""
    return plan.bias_in_activations(net, [(net[0], net[1]), (net[2], net[3])])


@pytest.mark.parametrize("act", [dn.ReLU, lambda: dn.LeakyReLU(0.05), dn.Tanh])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_moved_bias_gives_the_plain_pair_s_numbers(act, order, dtype, both_kernel_paths):
    rng = np.random.default_rng(1)
    x = layout(rng.standard_normal((11, 6)).astype(dtype), order)
    g = rng.standard_normal((11, 3)).astype(dtype)
    results = []
    for move in (False, True):
        net = network(act, dtype)
        if move:
            with moved(net):
                assert not net[0].adds_bias and net[1].bias is net[0].bias
                out = net.forward(x, training=True)
                net.zero_grad()
                net.backward(g)
            assert net[0].adds_bias and net[1].bias is None     # put back
        else:
            out = net.forward(x, training=True)
            net.zero_grad()
            net.backward(g)
        results.append((out, [p.grad.copy() for p in net.parameters()]))
    (out0, grads0), (out1, grads1) = results
    np.testing.assert_allclose(out1, out0, **TOL[dtype])
    for a, b in zip(grads1, grads0, strict=True):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def test_the_moved_bias_without_the_kernel_runs_the_plain_formulas(monkeypatch):
    monkeypatch.setattr(accel, "kernel", lambda name, *arrays: None)
    x = np.random.default_rng(2).standard_normal((7, 6))
    plain, shifted = network(dn.ReLU, np.float64), network(dn.ReLU, np.float64)
    want = plain.forward(x, training=True)
    plain.backward(np.ones_like(want))
    with moved(shifted):
        got = shifted.forward(x, training=True)
        shifted.backward(np.ones_like(got))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    for a, b in zip(shifted.parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-14, atol=1e-15)


def test_gradcheck_in_float64_with_the_moved_bias(both_kernel_paths):
    net = network(lambda: dn.LeakyReLU(0.1), np.float64, seed=4)
    x = np.random.default_rng(5).standard_normal((8, 6))
    labels = np.arange(8) % 3
    loss = dn.losses.SoftmaxCrossEntropy()
    with moved(net):
        loss.forward(net.forward(x, training=True), labels)
        net.zero_grad()
        net.backward(loss.backward())
        analytic = [p.grad.copy() for p in net.parameters()]
        for p, grad in zip(net.parameters(), analytic, strict=True):
            for k in range(0, p.value.size, max(1, p.value.size // 7)):
                i = np.unravel_index(k, p.value.shape)
                old = p.value[i]
                p.value[i] = old + 1e-6
                up = loss.forward(net.forward(x), labels)
                p.value[i] = old - 1e-6
                down = loss.forward(net.forward(x), labels)
                p.value[i] = old
                numeric = (up - down) / 2e-6
                assert abs(numeric - grad[i]) <= 1e-7 * max(1.0, abs(numeric)), (p.name, i, numeric, grad[i])


def test_only_plain_pairs_in_a_sequential_move_their_bias():
    shared = dn.ReLU()
    net = dn.Sequential(dn.Linear(4, 4, rng=0), shared, dn.Linear(4, 4, rng=1), shared,
                        dn.Linear(4, 4, bias=False, rng=2), dn.ReLU(), dn.Linear(4, 3, rng=3), dn.Sigmoid())
    assert plan.bias_pairs(net) == []                 # shared activation, no bias, sigmoid (not in BIAS_MOVES_INTO)
    if accel.kernels.set_enabled(True):
        pairs = plan.bias_pairs(network(dn.ReLU, np.float64))
        assert [(type(a), type(b)) for a, b in pairs] == [(dn.Linear, dn.ReLU)] * 2
    accel.kernels.set_enabled(False)
    try:
        assert plan.bias_pairs(network(dn.ReLU, np.float64)) == []    # kernels off: nothing moves
    finally:
        accel.kernels.set_enabled(None)


def test_a_trainer_fit_gives_the_numbers_of_the_plain_path():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 6)), rng.integers(0, 3, 200)
    accel.kernels.load("activation")                  # Numba loaded: the per-call kernels run at this size
    weights = []
    for on in (True, False):
        accel.kernels.set_enabled(on)
        try:
            net = network(dn.ReLU, np.float64)
            dn.Trainer(net, loss="cross_entropy", optimizer="sgd", lr=0.1, batch_size=16, epochs=2, seed=0).fit(X, y)
        finally:
            accel.kernels.set_enabled(None)
        weights.append([p.value.copy() for p in net.parameters()])
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batches_needed, moved_in_fit", [(10**9, False), (10, True)])
def test_a_long_fit_loads_numba_for_the_per_call_kernels(batches_needed, moved_in_fit, monkeypatch):
    """A small network's fit (an optimizer below its kernel's size) moves the biases only when it runs at least
    PER_CALL_MIN_BATCHES batches, or Numba is loaded already."""
    if not accel.kernels.set_enabled(True):
        pytest.skip("Numba is not installed: no compiled kernels")
    monkeypatch.setattr(accel.kernels, "_NUMBA_LOADED", False)      # as in a process that loaded no kernel yet
    monkeypatch.setattr(accel.kernels, "_LOADED", {})
    monkeypatch.setattr(plan, "PER_CALL_MIN_BATCHES", batches_needed)
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 1 << 15)      # the default (this file lowers it)
    net = network(dn.ReLU, np.float64)
    seen = []

    class Probe(dn.training.Callback):
        def on_batch_end(self, trainer, batch, loss):
            seen.append(net[1].bias is not None)

    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((64, 6)), rng.integers(0, 3, 64)
    try:
        dn.Trainer(net, optimizer="sgd", lr=0.1, batch_size=16, epochs=3, seed=0, callbacks=[Probe()],
                   progress=False).fit(X, y)                       # 12 batches
    finally:
        accel.kernels.set_enabled(None)
    assert seen and all(s is moved_in_fit for s in seen)
    assert accel.kernels.numba_loaded() is moved_in_fit
    assert net[1].bias is None                                       # put back after the fit
