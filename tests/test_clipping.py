"""Gradient clipping by global norm."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deltanet as dn
from deltanet.optim import clip_grad_norm, grad_norm


def make_params(dtype=np.float64):
    rng = np.random.default_rng(3)
    params = [dn.Parameter(np.zeros((4, 3), dtype=dtype)), dn.Parameter(np.zeros(4, dtype=dtype), decay=False),
              dn.Parameter(np.zeros((2, 4), dtype=dtype))]
    for p in params:
        p.grad = rng.normal(size=p.shape).astype(dtype)
    return params


def global_norm(grads):
    return math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))


def test_grad_norm_by_hand():
    a, b = dn.Parameter(np.zeros(2)), dn.Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert grad_norm([a, b]) == 5.0                      # sqrt(3^2 + 4^2) over both parameters together


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_clip_scales_all_gradients_together(dtype, rtol):
    params = make_params(dtype)
    before = [p.grad.copy() for p in params]
    norm0 = global_norm(before)
    max_norm = norm0 / 3
    returned = clip_grad_norm(params, max_norm)
    assert returned == pytest.approx(norm0, rel=rtol)                  # the norm before clipping
    assert global_norm([p.grad for p in params]) == pytest.approx(max_norm, rel=rtol)
    for p, g in zip(params, before, strict=True):                     # one factor tau/||g|| for all: direction kept
        np.testing.assert_allclose(p.grad, g * (max_norm / norm0), rtol=rtol)
        assert p.grad.dtype == dtype


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_no_change_at_or_below_max_norm(factor):
    params = make_params()
    before = [p.grad.copy() for p in params]
    norm0 = grad_norm(params)
    assert norm0 == pytest.approx(global_norm(before), rel=1e-14)
    assert clip_grad_norm(params, norm0 * factor) == norm0           # ||g|| == tau exactly is not clipped
    for p, g in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.grad, g)


def test_clip_by_hand():
    a, b = dn.Parameter(np.zeros(2)), dn.Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm([a, b], 1.0) == 5.0
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-15)


def test_clip_works_on_a_model_after_backward():
    net = dn.mlp([3, 5, 2], rng=0, dtype="float64")
    loss_fn = dn.SoftmaxCrossEntropy()
    x = np.random.default_rng(0).normal(size=(8, 3)) * 10
    loss_fn.forward(net.forward(x, training=True), np.arange(8) % 2)
    net.zero_grad()
    net.backward(loss_fn.backward())
    norm0 = clip_grad_norm(net.parameters(), 1e-3)        # a generator of parameters is fine too
    assert norm0 > 1e-3
    assert grad_norm(net.parameters()) == pytest.approx(1e-3, rel=1e-12)


def test_non_finite_gradients_are_left_alone():
    params = make_params()
    params[1].grad = np.array([np.inf, 0.0, 1.0, 2.0])
    before = [p.grad.copy() for p in params]
    assert clip_grad_norm(params, 1.0) == math.inf
    for p, g in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("max_norm, error, message", [(0.0, ValueError, "max_norm must be > 0, got 0.0"),
                                                      (-1, ValueError, "max_norm must be > 0, got -1"),
                                                      ("big", TypeError, "max_norm must be a number > 0, got 'big'")])
def test_max_norm_validation(max_norm, error, message):
    with pytest.raises(error, match=message):
        clip_grad_norm(make_params(), max_norm)


def test_clip_grad_norm_uses_a_norm_the_caller_already_has():
    a, b = dn.Parameter(np.array([3.0, 0.0])), dn.Parameter(np.array([4.0]))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm([a, b], 1.0, norm=5.0) == 5.0
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8])
