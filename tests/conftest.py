"""Shared fixtures (a seeded generator, the global default dtype restored after every test) and helpers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

import deltanet as dn
from deltanet.training.checkpoint import load_state, save_state


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    saved = dn.get_default_dtype()
    yield
    dn.set_default_dtype(saved)


def _select_path(path: str, monkeypatch) -> None:
    from deltanet import accel
    from deltanet.accel import kernels
    from deltanet.accel.fused import FusedStep

    monkeypatch.setattr(FusedStep, "kernel_min_size", 0)
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 0)       # the elementwise kernels for small arrays too
    accel.set_fast_enabled(path != "reference")
    if path == "kernels" and not kernels.set_enabled(True):
        pytest.skip("Numba is not installed: no compiled kernels")
    if path == "numpy":
        kernels.set_enabled(False)


def _reset_paths() -> None:
    from deltanet import accel

    accel.set_fast_enabled(None)          # also puts the kernels back to the environment's choice


@pytest.fixture(params=["kernels", "numpy"])
def both_kernel_paths(request, monkeypatch):
    """Run a test with the compiled kernels on (where Numba is installed; for models of every size) and with the
    NumPy fast path only."""
    _select_path(request.param, monkeypatch)
    yield request.param
    _reset_paths()


@pytest.fixture(params=["kernels", "numpy", "reference"])
def every_path(request, monkeypatch):
    """Run a test on the fast path with compiled kernels, on the fast path without them, and on the reference
    path alone (``DELTANET_FAST=0``: unfused optimizers, no folding, no prediction engine, every batch checked)."""
    _select_path(request.param, monkeypatch)
    yield request.param
    _reset_paths()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def checkpoint_roundtrip(state: dict) -> dict:
    """``state`` written and read back the way the trainer's checkpoints do it (.npz without pickle + JSON)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.npz"
        save_state(path, state)
        return load_state(path)


@pytest.fixture
def quiet_convergence():
    """scikit-learn's ConvergenceWarning silenced (short fits in the estimator tests stop at max_iter on purpose)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
