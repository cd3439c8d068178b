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


@pytest.fixture(params=["kernels", "numpy"])
def both_kernel_paths(request, monkeypatch):
    """Run a test with the compiled kernels on (where Numba is installed; for models of every size) and with the
    NumPy reference only."""
    from deltanet.accel import kernels
    from deltanet.optim import Optimizer

    monkeypatch.setattr(Optimizer, "kernel_min_size", 0)
    if request.param == "kernels" and not kernels.set_enabled(True):
        pytest.skip("Numba is not installed: no compiled kernels")
    if request.param == "numpy":
        kernels.set_enabled(False)
    yield request.param
    kernels.set_enabled(None)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def checkpoint_roundtrip(state: dict) -> dict:
    """``state`` written and read back the way the trainer's checkpoints do it (.npz without pickle + JSON)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.npz"
        save_state(path, state)
        return load_state(path)
