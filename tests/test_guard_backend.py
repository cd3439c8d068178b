"""The core, training and inference under the guard backend (:mod:`deltanet.testing.guard`).

The guard is a NumPy namespace whose arrays refuse what CuPy refuses: a host
array mixed into device work, ``numpy.*`` functions where ``backend.xp`` is
meant, and, inside the batch loop (:func:`guard.hot`), Python scalars pulled
from arrays. A test green here is a test the GPU path passes without leaving
the array namespace. The fast path switches itself off (exact ``numpy.ndarray``
only), so these runs take the reference path, the one a CuPy backend takes.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import backend
from deltanet.accel.plan import input_prechecked
from deltanet.testing import guard
from test_gradcheck import MODULE_CASES, _module_id, off_kinks, randomize

G = guard.xp


@pytest.fixture
def on_guard():
    with backend.use_backend(G):
        yield G


# -- the guard itself -------------------------------------------------------------------------------------------
def test_guard_refuses_what_cupy_refuses(on_guard):
    x = G.asarray(np.ones((3, 2)))
    assert isinstance(x, guard.GuardArray) and isinstance(x.sum(), guard.GuardArray) and x.sum().ndim == 0
    assert float(x.sum()) == 6.0                               # outside the batch loop: allowed (one sync)
    with pytest.raises(guard.GuardViolation, match="host numpy"):
        x + np.ones((3, 2))
    with pytest.raises(guard.GuardViolation, match="host numpy"):
        G.dot(x.T, np.ones((3, 2)))
    with pytest.raises(guard.GuardViolation, match=r"use backend\.xp\.concatenate"):
        np.concatenate([x, x])
    with pytest.raises(guard.GuardViolation, match="implicit conversion"):
        x.__array__()
    with guard.hot():
        for pull in (float, int, bool, lambda a: a.item(), lambda a: a.tolist(), list):
            with pytest.raises(guard.GuardViolation, match="inside the batch loop"):
                pull(x[0, 0] if pull is not list else x)
        assert isinstance(x * 2.0 + np.float64(1.0), guard.GuardArray)     # scalars are fine
    assert isinstance(backend.to_numpy(x), np.ndarray) and type(backend.to_numpy(x)) is np.ndarray


def test_the_fast_path_refuses_guard_arrays(on_guard):
    from deltanet.accel import kernels

    x = G.ones((4, 4), dtype=np.float32)
    assert not kernels.takes(x, x)
    assert G.__name__ != "numpy"                     # folding and chunked fused steps ask for "numpy"


def test_use_backend_restores_numpy():
    with backend.use_backend(G):
        assert backend.xp is G
    assert backend.xp is np


# -- modules and losses: forward, backward, step inside the batch loop --------------------------------------------
HOT_CASES = [c for c in MODULE_CASES]


@pytest.mark.parametrize("case", HOT_CASES, ids=[_module_id(c) for c in HOT_CASES])
def test_module_forward_backward_in_the_batch_loop(case, on_guard):
    _, make, shape, training = case
    rng = np.random.default_rng(0)
    with backend.default_dtype("float64"):
        module = make()
    x = G.asarray(off_kinks(rng, shape))
    g = G.asarray(rng.standard_normal(module.forward(x, training=training).shape))
    with guard.hot(), input_prechecked(module):     # as in the trainer: fit tests the data once, not per batch
        out = module.forward(x, training=training)
        dx = module.backward(g)
    assert isinstance(out, guard.GuardArray) and isinstance(dx, guard.GuardArray)
    assert dx.shape == x.shape
    for p in module.parameters():
        assert isinstance(p.value, guard.GuardArray) and isinstance(p.grad, guard.GuardArray)


@pytest.mark.parametrize("case", MODULE_CASES[:8] + MODULE_CASES[-8:], ids=[_module_id(c) for c in MODULE_CASES[:8] + MODULE_CASES[-8:]])
def test_gradcheck_under_the_guard(case, on_guard):
    _, make, shape, training = case
    rng = np.random.default_rng(0)
    with backend.default_dtype("float64"):
        module = randomize(make(), rng)
    result = dn.gradcheck(module, G.asarray(off_kinks(rng, shape)), training=training, max_entries=20, raise_on_fail=False)
    assert result.worst < 1e-6, str(result)


@pytest.mark.parametrize("loss, target", [
    ("cross_entropy", lambda rng: rng.integers(0, 3, size=6)),
    ("mse", lambda rng: rng.standard_normal((6, 3))),
    ("binary_cross_entropy", lambda rng: rng.integers(0, 2, size=(6, 3)).astype(float)),
])
def test_losses_in_the_batch_loop(loss, target, on_guard):
    rng = np.random.default_rng(0)
    fn = dn.get_loss(loss)
    z, y = G.asarray(rng.standard_normal((6, 3))), G.asarray(target(rng))
    # Loss.forward returns the batch's loss as a Python float (and tests the output for NaN): one host sync per
    # batch, which the trainer's divergence check reads; it stays outside the hot scope (see the README's GPU notes)
    value = fn.forward(z, y)
    with guard.hot():
        grad = fn.backward()
    assert isinstance(grad, guard.GuardArray) and np.isfinite(value)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizer_steps_in_the_batch_loop(name, on_guard):
    model = dn.mlp([4, 5, 3], rng=0)
    opt = dn.optim.get_optimizer(name, model.parameters(), lr=0.01)
    x = G.asarray(np.random.default_rng(0).standard_normal((8, 4)), dtype=np.float32)
    before = [backend.to_numpy(p.value).copy() for p in model.parameters()]
    with guard.hot(), input_prechecked(model):
        for _ in range(2):
            model.backward(G.ones_like(model.forward(x, training=True)))
            opt.step()
    assert all(isinstance(p.value, guard.GuardArray) for p in model.parameters())
    assert any(not np.array_equal(b, backend.to_numpy(p.value)) for b, p in zip(before, model.parameters(), strict=True))
