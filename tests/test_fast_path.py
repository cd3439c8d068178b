"""The fast path (deltanet.accel) against the reference path (DELTANET_FAST=0): the same results, and the boundary
between them (nothing outside deltanet.accel imports its submodules; only its documented hooks)."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import deltanet as dn
from deltanet import accel
from deltanet.optim import SGD, Adam

SRC = pathlib.Path(dn.__file__).parent


@pytest.fixture
def fast_path_off():
    """Run the block with the fast path off; put the environment's choice back afterwards."""
    yield lambda on: accel.set_fast_enabled(on)
    accel.set_fast_enabled(None)


def _data(n=300, d=12, k=4, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (np.abs(X[:, :k]).argmax(axis=1) + (X[:, -1] > 1)) % k
    return X, y


RECIPES = {
    "sgd-momentum (folded)": dict(optimizer="sgd", optimizer_kwargs={"momentum": 0.9}, lr=0.05, record_layers=False),
    "sgd-momentum, l2, clip": dict(optimizer="sgd", optimizer_kwargs={"momentum": 0.9}, lr=0.05, l2=1e-3, clip_norm=1.0),
    "adam, l2, cosine": dict(optimizer="adam", lr=3e-3, l2=1e-3, schedule="cosine", record_layers=False),
    "adamw, dropout, bn": dict(optimizer="adamw", lr=3e-3, record_layers=True),
    "rmsprop": dict(optimizer="rmsprop", lr=1e-3),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_training_on_the_fast_path_equals_the_reference_path(name, fast_path_off, monkeypatch):
    from deltanet.accel import folding
    from deltanet.accel.fused import FusedStep

    monkeypatch.setattr(folding, "FOLD_MIN_SIZE", 0)          # small networks take every fast route too
    monkeypatch.setattr(FusedStep, "kernel_min_size", 0)
    X, y = _data()
    kw = dict(RECIPES[name])
    regularized = name.startswith("adamw")
    results = {}
    for fast in (True, False):
        fast_path_off(fast)
        net = dn.mlp([12, 64, 32, 4], dropout=0.2 if regularized else 0.0, batch_norm=regularized, rng=0,
                     dtype="float64")
        trainer = dn.Trainer(net, batch_size=32, epochs=4, seed=5, **kw)
        history = trainer.fit(X, y, validation_fraction=0.2)
        assert trainer.optimizer.fused is fast
        results[fast] = ({k: v.copy() for k, v in net.state_dict().items()}, history)
    (w_fast, h_fast), (w_ref, h_ref) = results[True], results[False]
    # the same operations in another grouping (flat buffers, folded momentum, one-pass kernels): each step
    # rounds differently in the last bits, and 4 epochs x 8 batches compound that to ~1e-13 relative
    for key, ref in w_ref.items():
        np.testing.assert_allclose(w_fast[key], ref, rtol=1e-9, atol=1e-11, err_msg=key)
    np.testing.assert_allclose(h_fast["train_loss"], h_ref["train_loss"], rtol=1e-9)
    np.testing.assert_allclose(h_fast["val_loss"], h_ref["val_loss"], rtol=1e-9)
    assert h_fast["val_accuracy"] == h_ref["val_accuracy"]
    moved = max(float(np.abs(w_ref[k] - v).max()) for k, v in dn.mlp([12, 64, 32, 4], rng=0, dtype="float64",
                dropout=0.2 if regularized else 0.0, batch_norm=regularized).state_dict().items() if k in w_ref)
    assert moved > 1e-3                                        # the comparison is between trained networks


def _models(dtype="float64"):
    return {
        "mlp": dn.mlp([12, 40, 20, 3], rng=1, dtype=dtype),
        "mlp-bn-dropout": dn.mlp([12, 40, 3], batch_norm=True, dropout=0.5, activation="tanh", rng=1, dtype=dtype),
        "residual": dn.Sequential(dn.Linear(12, 16, rng=1, dtype=dtype), dn.ReLU(),
                                  dn.Residual(dn.Sequential(dn.Linear(16, 16, rng=2, dtype=dtype), dn.GELU())),
                                  dn.Linear(16, 3, rng=3, dtype=dtype)),
    }


@pytest.mark.parametrize("name", list(_models()))
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_predict_on_the_fast_path_equals_the_reference_path(name, dtype, rtol, fast_path_off):
    model = _models(dtype)[name]
    X = np.random.default_rng(4).normal(size=(2500, 12)).astype(dtype)
    fast_path_off(True)
    fast = dn.predict(model, X, batch_size=1000)
    fast_path_off(False)
    ref = dn.predict(model, X, batch_size=1000)
    assert fast.shape == ref.shape == (2500, 3) and fast.dtype == ref.dtype == np.dtype(dtype)
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()))
    X[1234, 5] = np.nan
    for on in (True, False):
        fast_path_off(on)
        with pytest.raises(dn.NonFiniteError):
            dn.predict(model, X, batch_size=1000)


def test_the_switch_turns_every_fast_route_off(fast_path_off):
    fast_path_off(False)
    net = dn.mlp([300, 256, 10], rng=0)                         # large enough for folding and the kernels
    sgd = SGD(net.parameters(), lr=0.1, momentum=0.9)
    assert (sgd.fused, sgd.flat_buffers, sgd.fold_gradients()) == (False, [], False)
    assert Adam(net.parameters()).fused is False
    from deltanet.accel import kernels

    assert kernels.enabled() is False
    fast_path_off(True)
    sgd = SGD(net.parameters(), lr=0.1, momentum=0.9)
    assert sgd.fused and len(sgd.flat_buffers) == 1
    assert sgd.fold_gradients() is accel.blas.available()


# -- the boundary -----------------------------------------------------------------------------------------
HOOKS = set(accel.__all__)


def _accel_imports(path: pathlib.Path) -> list[str]:
    """What a module outside deltanet.accel imports from it: submodules (forbidden) or names of the package."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base == "deltanet" and any(a.name == "accel" for a in node.names):
                found.append("deltanet.accel")
            elif base.startswith("deltanet.accel"):
                found += [f"{base}:{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("deltanet.accel")]
    return found


def test_nothing_outside_the_fast_path_imports_its_submodules():
    offenders = {}
    users = set()
    for path in SRC.rglob("*.py"):
        if "accel" in path.relative_to(SRC).parts:
            continue
        for name in _accel_imports(path):
            users.add(path.relative_to(SRC).as_posix())
            if name != "deltanet.accel" and not (name.startswith("deltanet.accel:") and name.split(":")[1] in HOOKS):
                offenders.setdefault(path.relative_to(SRC).as_posix(), []).append(name)
    assert offenders == {}
    # the hooks' users: the optimizers, clipping, prediction, the trainer (and the optimizer package's re-export)
    assert {"optim/base.py", "optim/clipping.py", "inference.py", "training/trainer.py", "optim/__init__.py"} <= users


def test_the_boundary_check_sees_a_forbidden_import(tmp_path):
    bad = SRC / "optim" / "_probe_for_the_boundary_test.py"
    assert not bad.exists()
    tree_text = "from ..accel.fused import FusedStep\nfrom ..accel import fused_step\n"
    bad.write_text(tree_text)
    try:
        assert _accel_imports(bad) == ["deltanet.accel.fused:FusedStep", "deltanet.accel:fused_step"]
    finally:
        bad.unlink()
