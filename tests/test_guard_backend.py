"""The core, training and inference under the guard backend (:mod:`deltanet.testing.guard`).

The guard is a NumPy namespace whose arrays refuse what CuPy refuses: a host
array mixed into device work, ``numpy.*`` functions where ``backend.xp`` is
meant, and, inside the batch loop (:func:`guard.hot`), Python scalars pulled
from arrays. A test green here is a test the GPU path passes without leaving
the array namespace. The fast path switches itself off (exact ``numpy.ndarray``
only), so these runs take what a CuPy backend takes: the reference arithmetic, with the fast path's once-per-fit
decisions (the data tested for NaN once, not per batch). Under ``DELTANET_FAST=0`` the trainer tests every batch
for NaN, a host read per batch the guard would refuse inside the batch loop.
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


@pytest.fixture
def fast_decisions():
    """The fast path's once-per-fit decisions on, whatever ``DELTANET_FAST`` says (see the module's docstring)."""
    from deltanet import accel

    accel.set_fast_enabled(True)
    yield
    accel.set_fast_enabled(None)


# -- training and inference --------------------------------------------------------------------------------------
def _hot(fn):
    def call(*args, **kwargs):
        with guard.hot():
            return fn(*args, **kwargs)
    return call


def _hot_in_training(forward):
    def call(x, training=False):
        if not training:                 # setup probes and evaluation passes: not the batch loop
            return forward(x, training=training)
        with guard.hot():
            return forward(x, training=training)
    return call


def _guard_batches(trainer):
    """The trainer's per-batch math (forward, backward, update) inside the hot scope."""
    trainer.model.forward = _hot_in_training(trainer.model.forward)
    trainer.model.backward = _hot(trainer.model.backward)
    trainer.optimizer.step = _hot(trainer.optimizer.step)
    trainer.loss.backward = _hot(trainer.loss.backward)
    return trainer


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


@pytest.mark.parametrize("record_layers", [True, False])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("layers", [{}, {"batch_norm": True, "dropout": 0.2}])
def test_trainer_fit_under_the_guard(optimizer, layers, record_layers, on_guard, fast_decisions):
    X, y = _blobs()
    with backend.use_backend("numpy"):
        ref = dn.Trainer(dn.mlp([6, 8, 3], rng=0, **layers), optimizer=optimizer, batch_size=16, epochs=3, seed=0,
                         record_layers=record_layers)
        ref_history = ref.fit(X, y)
    trainer = _guard_batches(dn.Trainer(dn.mlp([6, 8, 3], rng=0, **layers), optimizer=optimizer, batch_size=16, epochs=3,
                                                seed=0, record_layers=record_layers))
    history = trainer.fit(X, y)
    assert all(isinstance(p.value, guard.GuardArray) for p in trainer.params)
    np.testing.assert_allclose([r["train_loss"] for r in history], [r["train_loss"] for r in ref_history], rtol=1e-4)


def test_inference_under_the_guard(on_guard):
    X, y = _blobs()
    model = dn.mlp([6, 8, 3], rng=0)
    trainer = dn.Trainer(model, batch_size=16, epochs=1, seed=0)
    trainer.fit(X, y, validation_data=(X, y))
    out = dn.predict(model, X, batch_size=32)
    assert isinstance(out, guard.GuardArray) and out.shape == (96, 3)
    assert trainer.evaluate(X, y)["loss"] > 0


# -- devices: the paths that run without a GPU ------------------------------------------------------------------
def _no_cupy(monkeypatch):
    import builtins

    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    monkeypatch.delitem(__import__("sys").modules, "cupy", raising=False)


def test_cuda_without_cupy_says_what_to_install(monkeypatch):
    _no_cupy(monkeypatch)
    with pytest.raises(RuntimeError, match=r"needs CuPy.*deltanet\[gpu\]"):
        dn.mlp([4, 3], rng=0, device="cuda")
    model = dn.mlp([4, 3], rng=0)
    with pytest.raises(RuntimeError, match="needs CuPy"):
        dn.Trainer(model, device="cuda")
    assert backend.xp is np


def test_unknown_device():
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        dn.mlp([4, 3], rng=0, device="tpu")


def test_cpu_device_moves_guard_arrays_home():
    with backend.use_backend(G):
        model = dn.mlp([4, 5, 3], rng=0, batch_norm=True)
        assert isinstance(model.parameters()[0].value, guard.GuardArray)
        model.to("cpu")
    try:
        assert all(type(p.value) is np.ndarray and type(p.grad) is np.ndarray for p in model.parameters())
        assert all(type(b) is np.ndarray for _, b in model.named_buffers())
        X, y = _blobs()
        trainer = dn.Trainer(dn.mlp([6, 4, 3], rng=0), device="cpu", epochs=1, batch_size=32)
        assert trainer.fit(X, y).records[-1]["train_loss"] > 0
    finally:
        backend.set_backend("numpy")


def test_model_files_hold_host_arrays(tmp_path, on_guard):
    model = dn.mlp([4, 5, 3], rng=0)
    dn.save(model, tmp_path / "m.npz")
    with backend.use_backend("numpy"):
        loaded = dn.load(tmp_path / "m.npz")
        assert all(type(p.value) is np.ndarray for p in loaded.parameters())
        np.testing.assert_array_equal(loaded.parameters()[0].value, model.parameters()[0].value.get())


def test_cli_train_device_cuda_without_cupy(monkeypatch, tmp_path, capsys):
    from deltanet.cli import main

    _no_cupy(monkeypatch)
    assert main(["train", "--device", "cuda", "--out-dir", str(tmp_path), "--quiet", "--no-report"]) != 0
    assert "needs CuPy" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # 3 iterations, on purpose
def test_estimators_device(monkeypatch):
    from deltanet.sklearn import MLPClassifier, MLPRegressor

    X, y = _blobs()
    clf = MLPClassifier((8,), max_iter=3, random_state=0, device="cpu").fit(X, y)
    assert type(clf.predict_proba(X)) is np.ndarray and clf.get_params()["device"] == "cpu"
    with pytest.raises(ValueError, match="device"):
        MLPRegressor((8,), max_iter=2, device="gpu").fit(X, X[:, 0])
    _no_cupy(monkeypatch)
    with pytest.raises(RuntimeError, match="needs CuPy"):
        MLPClassifier((8,), max_iter=2, device="cuda").fit(X, y)
    assert backend.xp is np
