"""Memory layout: column-major weights and results give the same numbers as the row-major formulas."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.accel.plan import input_prechecked
from deltanet.errors import NonFiniteError
from deltanet.modules import check_finite
from deltanet.modules.base import SMALL_CHECK
from deltanet.optim import SGD, Adam, FlatBuffer


def test_linear_stores_weights_column_major_and_computes_the_row_major_formulas():
    rng = np.random.default_rng(0)
    lin = dn.Linear(7, 5, rng=1, dtype="float64")
    lin.bias.value[...] = rng.standard_normal(5)
    w = np.ascontiguousarray(lin.weight.value)
    assert lin.weight.value.flags.f_contiguous and not lin.weight.value.flags.c_contiguous
    assert lin.weight.grad.flags.f_contiguous

    x = rng.standard_normal((4, 7))
    z = lin.forward(x)
    assert z.shape == (4, 5) and z.flags.f_contiguous                  # (W X^T)^T
    np.testing.assert_allclose(z, x @ w.T + lin.bias.value, rtol=1e-14, atol=1e-14)
    g = rng.standard_normal((4, 5))
    lin.zero_grad()
    dx = lin.backward(g)
    assert dx.shape == (4, 7) and dx.flags.f_contiguous
    np.testing.assert_allclose(dx, g @ w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lin.weight.grad, g.T @ x, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lin.bias.grad, g.sum(axis=0), rtol=1e-14, atol=1e-14)

    big = rng.standard_normal((lin.column_major_below, 7))               # large batches: row-major results
    zb = lin.forward(big)
    assert zb.flags.c_contiguous
    np.testing.assert_allclose(zb, big @ w.T + lin.bias.value, rtol=1e-14, atol=1e-14)
    gb = rng.standard_normal(zb.shape)
    lin.zero_grad()
    dxb = lin.backward(gb)
    assert dxb.flags.c_contiguous
    np.testing.assert_allclose(dxb, gb @ w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lin.weight.grad, gb.T @ big, rtol=1e-13, atol=1e-13)

    x3 = rng.standard_normal((2, 3, 7))                                   # sequences: row-major results
    z3 = lin.forward(x3)
    assert z3.flags.c_contiguous
    np.testing.assert_allclose(z3, x3 @ w.T + lin.bias.value, rtol=1e-14, atol=1e-14)
    g3 = rng.standard_normal((2, 3, 5))
    lin.zero_grad()
    np.testing.assert_allclose(lin.backward(g3), g3 @ w, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lin.weight.grad, g3.reshape(-1, 5).T @ x3.reshape(-1, 7), rtol=1e-13, atol=1e-13)


def test_cross_entropy_gives_the_same_loss_and_gradient_for_either_layout():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    loss = dn.SoftmaxCrossEntropy()
    row = loss.forward(z, y), loss.backward()
    col = loss.forward(np.asfortranarray(z), y), loss.backward()
    assert row[0] == col[0]
    np.testing.assert_array_equal(row[1], col[1])
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(row[0], -np.log(p[np.arange(6), y]).mean(), rtol=1e-14)
    p[np.arange(6), y] -= 1
    np.testing.assert_allclose(row[1], p / 6, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_flat_buffers_keep_each_parameter_layout_and_the_update_matches_per_parameter(opt_cls):
    def run(fused):
        net = dn.mlp([5, 8, 3], rng=2, dtype="float64")
        opt = opt_cls(net.parameters(), lr=0.05, fused=fused) if opt_cls is Adam else opt_cls(net.parameters(), lr=0.05, momentum=0.9, fused=fused)
        x = np.random.default_rng(3).standard_normal((10, 5))
        y = np.arange(10) % 3
        loss = dn.SoftmaxCrossEntropy()
        for _ in range(3):
            loss.forward(net.forward(x, training=True), y)
            opt.zero_grad()
            net.backward(loss.backward())
            opt.step()
        return net, opt

    net, opt = run(True)
    ref, _ = run(False)
    (buf,) = opt.flat_buffers
    assert isinstance(buf, FlatBuffer)
    for p, q in zip(net.parameters(), ref.parameters(), strict=True):
        assert p.value.base is buf.value
        assert (p.value.flags.f_contiguous, p.value.flags.c_contiguous) == (q.value.flags.f_contiguous, q.value.flags.c_contiguous)
        np.testing.assert_array_equal(p.value, q.value)                 # bit for bit


@pytest.mark.parametrize("rows", [3, 3 + SMALL_CHECK // 4])       # the exact test alone / a reduction first
@pytest.mark.parametrize("order", ["C", "F"])
def test_check_finite_catches_nan_and_infinity_in_either_order(rows, order):
    a = np.ones((rows, 4), np.float32, order=order)
    check_finite(a, "a")
    check_finite(a[:, 1], "a column")                                   # strided
    for bad in (np.nan, np.inf, -np.inf):
        a[2, 1] = bad
        with pytest.raises(NonFiniteError, match=r"^a: input holds NaN or infinity \(first at index \(2, 1\)\)"):
            check_finite(a, "a")
        with pytest.raises(NonFiniteError, match=r"first at index \(2,\)"):
            check_finite(a[:, 1], "a")
        a[2, 1] = 1.0
    a[:] = 3e38                                                         # squares overflow: the exact test decides
    check_finite(a, "a")


def test_input_prechecked_skips_the_entry_test_inside_the_block_only():
    net = dn.mlp([3, 4, 2], rng=0)
    bad = np.array([[1.0, np.nan, 0.0]], np.float32)
    with pytest.raises(NonFiniteError):
        net.forward(bad)
    before = [m.check_finite_input for m in net.modules()]
    with input_prechecked(net):
        out = net.forward(bad)                                          # no test: the NaN reaches the output
        assert np.isnan(out).any()
    assert [m.check_finite_input for m in net.modules()] == before
    with pytest.raises(NonFiniteError):
        net.forward(bad)
