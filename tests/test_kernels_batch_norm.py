"""The batch-norm kernels equal the reference BatchNorm (float32 to rounding, float64 to 1e-12) and pass gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import accel

K = pytest.importorskip("deltanet.accel.kernels.batch_norm")

SHAPES = [(2, 1), (3, 7), (17, 33), (128, 300), (511, 5)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


@pytest.fixture(autouse=True)
def kernels_for_small_arrays(monkeypatch):
    """The hook hands out kernels for arrays of every size here (by default from ELEMENTWISE_MIN_SIZE on)."""
    monkeypatch.setattr(accel, "ELEMENTWISE_MIN_SIZE", 0)


def reference_forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    x_hat = xc * inv_std
    return x_hat * gamma + beta, mu, inv_std, var, x_hat


def data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = np.asfortranarray((rng.standard_normal(shape) * 3 + 1).astype(dtype))
    g = np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    return x, g, gamma, beta


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_equal_the_reference(shape, dtype):
    x, g, gamma, beta = data(shape, dtype)
    y, mean, inv_std, var = K.forward(x, gamma, beta, 1e-5)
    y_ref, mu_ref, inv_ref, var_ref, x_hat = reference_forward(x, gamma, beta, 1e-5)
    assert y.dtype == dtype and y.flags.f_contiguous
    for got, want in ((y, y_ref), (mean, mu_ref), (inv_std, inv_ref), (var, var_ref)):
        np.testing.assert_allclose(got, want, **TOL[dtype])
    dx, dbeta, dgamma = K.backward(g, x, gamma, mean, inv_std)
    n = shape[0]
    dbeta_ref, dgamma_ref = g.sum(axis=0), (g * x_hat).sum(axis=0)
    dx_ref = (g * n - dbeta_ref - x_hat * dgamma_ref) * (gamma * inv_ref / n)
    scale = np.abs(g * gamma * inv_ref).max()          # the size of the terms that cancel in dx
    np.testing.assert_allclose(dx / scale, dx_ref / scale, **TOL[dtype])
    np.testing.assert_allclose(dbeta, dbeta_ref, **TOL[dtype])
    np.testing.assert_allclose(dgamma, dgamma_ref, **TOL[dtype])


def test_only_column_major_matrices_of_two_rows_or_more_get_the_kernel():
    f = np.asfortranarray(np.ones((8, 4), np.float32))
    assert accel.kernel("batch_norm_forward", f) is not None
    assert accel.kernel("batch_norm_forward", np.ones((8, 4), np.float32)) is None         # row-major: the reference
    assert accel.kernel("batch_norm_forward", f[:, ::2]) is None                            # strided
    assert accel.kernel("batch_norm_forward", np.asfortranarray(np.ones((1, 4)))) is None   # one row


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_on_the_kernel_path_equals_the_module_on_the_reference_path(dtype):
    from deltanet.accel import kernels

    x, g, _, _ = data((64, 24), dtype, seed=3)
    results = {}
    for on in (True, False):
        kernels.set_enabled(on)
        try:
            bn = dn.BatchNorm(24, dtype=dtype)
            bn.gamma.value[:] = np.linspace(0.5, 1.5, 24)
            y = bn.forward(x, training=True)
            dx = bn.backward(g)
            results[on] = (y, dx, bn.gamma.grad.copy(), bn.beta.grad.copy(), bn.running_mean.copy(), bn.running_var.copy())
        finally:
            kernels.set_enabled(None)
    for got, want in zip(results[True], results[False], strict=True):
        np.testing.assert_allclose(got, want, **TOL[dtype])


def test_module_gradcheck_through_the_kernels():
    x = np.asfortranarray(np.random.default_rng(5).standard_normal((12, 7)))
    bn = dn.BatchNorm(7, dtype="float64")
    assert accel.kernel("batch_norm_forward", x) is not None
    result = dn.gradcheck(bn, x, training=True, max_entries=None)
    assert result.worst < 1e-6
