"""Shared fixtures: a seeded generator, and the global default dtype restored after every test."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn


@pytest.fixture(autouse=True)
def _restore_default_dtype():
    saved = dn.get_default_dtype()
    yield
    dn.set_default_dtype(saved)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
