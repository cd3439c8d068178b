"""Activations: values and derivatives computed by hand, and behaviour at extreme inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import deltanet as dn

LN2, LN3 = np.log(2.0), np.log(3.0)

# (module, input, output, derivative dh/dz) -- every number worked out by hand:
# sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4, sigma' = sigma (1 - sigma) = 3/16;
# tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 3/5, tanh' = 1 - 9/25 = 16/25.
ELEMENTWISE = [
    (dn.Identity, [-2.0, 0.5, 3.0], [-2.0, 0.5, 3.0], [1.0, 1.0, 1.0]),
    (dn.Sigmoid, [0.0, LN3, -LN3], [0.5, 0.75, 0.25], [0.25, 3 / 16, 3 / 16]),
    (dn.Tanh, [0.0, LN2, -LN2], [0.0, 0.6, -0.6], [1.0, 16 / 25, 16 / 25]),
    (dn.ReLU, [-2.0, 0.0, 3.0], [0.0, 0.0, 3.0], [0.0, 0.0, 1.0]),       # derivative at 0 taken as 0
    (dn.LeakyReLU, [-2.0, 0.0, 3.0], [-0.02, 0.0, 3.0], [0.01, 0.01, 1.0]),
    (lambda: dn.LeakyReLU(alpha=0.2), [-5.0, 4.0], [-1.0, 4.0], [0.2, 1.0]),
]


@pytest.mark.parametrize(("make", "z", "h", "dh"), ELEMENTWISE, ids=["identity", "sigmoid", "tanh", "relu", "leaky", "leaky0.2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_values_and_derivatives_by_hand(make, z, h, dh, dtype):
    act = make()
    out = act.forward(np.array([z], dtype=dtype))
    assert out.dtype == dtype and out.shape == (1, len(z))
    np.testing.assert_allclose(out[0], h, rtol=1e-6, atol=1e-7)
    g = np.array([[2.0] * len(z)], dtype=dtype)
    grad = act.backward(g)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad[0], 2.0 * np.array(dh), rtol=1e-6, atol=1e-7)


def test_softmax_by_hand():
    # exp([0, ln 2, ln 5]) = [1, 2, 5] -> [1/8, 2/8, 5/8]; shifting every logit by 100 changes nothing
    z = np.array([[0.0, np.log(2.0), np.log(5.0)], [100.0, 100.0 + np.log(2.0), 100.0 + np.log(5.0)]])
    sm = dn.Softmax()
    np.testing.assert_allclose(sm.forward(z), [[1 / 8, 2 / 8, 5 / 8]] * 2, rtol=1e-12)
    # y = [1/4, 3/4], g = [1, 0]: dz = y (g - g.y) = [1/4 * 3/4, 3/4 * -1/4] = [3/16, -3/16]
    sm.forward(np.array([[0.0, LN3]]))
    np.testing.assert_allclose(sm.backward(np.array([[1.0, 0.0]])), [[3 / 16, -3 / 16]], rtol=1e-12)


def test_softmax_axis():
    z = np.zeros((2, 4, 3))
    z[:, 0, :] = LN3                                 # along axis 1: [3, 1, 1, 1] / 6
    out = dn.Softmax(axis=1).forward(z)
    np.testing.assert_allclose(out[:, :, 0], [[0.5, 1 / 6, 1 / 6, 1 / 6]] * 2, rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(dn.Softmax().forward(z).sum(axis=-1), 1.0, rtol=1e-12)


EXTREME = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_give_finite_outputs_with_the_right_limits(dtype):
    z = EXTREME.astype(dtype)
    g = np.ones_like(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no overflow or invalid-value warnings either
        s = dn.Sigmoid()
        np.testing.assert_array_equal(s.forward(z)[0, [0, 4]], [0.0, 1.0])
        np.testing.assert_array_equal(s.backward(g)[0, [0, 4]], [0.0, 0.0])
        t = dn.Tanh()
        np.testing.assert_array_equal(t.forward(z)[0, [0, 4]], [-1.0, 1.0])
        np.testing.assert_array_equal(t.backward(g)[0, [0, 4]], [0.0, 0.0])
        np.testing.assert_array_equal(dn.ReLU().forward(z)[0, [0, 4]], [0.0, 1000.0])
        np.testing.assert_allclose(dn.LeakyReLU().forward(z)[0, [0, 4]], [-10.0, 1000.0], rtol=1e-6)
        sm = dn.Softmax()
        y = sm.forward(z)
        np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 0.0, 1.0]])
        assert np.isfinite(sm.backward(g)).all()
        two = dn.Softmax().forward(np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-1000.0, 1000.0]], dtype=dtype))
        np.testing.assert_array_equal(two, [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
        assert dn.modules.log_softmax(z)[0, 0] == pytest.approx(-2000.0)


def test_activations_keep_shape_for_3d_input(rng):
    x = rng.standard_normal((2, 3, 4))
    for act in (dn.Identity(), dn.Sigmoid(), dn.Tanh(), dn.ReLU(), dn.LeakyReLU(), dn.Softmax()):
        assert act.forward(x).shape == (2, 3, 4)
        assert act.backward(np.ones((2, 3, 4))).shape == (2, 3, 4)
        with pytest.raises(ValueError, match=rf"{type(act).__name__}\(.*\): grad_out has shape \(2, 3\), expected \(2, 3, 4\)"):
            act.backward(np.ones((2, 3)))


def test_integer_input_is_converted_to_the_default_dtype():
    out = dn.Tanh().forward(np.array([[0, 1]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, np.tanh(1.0)]], rtol=1e-6)


def test_dead_fraction_counts_units_zero_for_every_sample():
    relu = dn.ReLU()
    relu.forward(np.array([[1.0, -1.0, -2.0, 0.0], [-1.0, -1.0, 3.0, 0.0]]))
    assert relu.dead_fraction() == 0.5               # units 1 and 3 never fire
    leaky = dn.LeakyReLU()
    leaky.forward(np.array([[1.0, -1.0, -2.0, 0.0], [-1.0, -1.0, -3.0, 0.0]]))
    assert leaky.dead_fraction() == 0.75


def test_activation_hyperparameters_are_validated():
    with pytest.raises(ValueError, match=r"LeakyReLU: alpha must be in \[0, 1\), got 1.5"):
        dn.LeakyReLU(1.5)
    assert dn.modules.ACTIVATIONS["logistic"] is dn.Sigmoid


def test_sigmoid_function_is_stable_and_writes_in_place():
    from deltanet.modules.activations import sigmoid

    z = np.array([-1000.0, -30.0, -1.0, 0.0, 1.0, 30.0, 1000.0])
    want = np.array([0.0, np.exp(-30.0) / (1 + np.exp(-30.0)), 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1.0)),
                     1 / (1 + np.exp(-30.0)), 1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # no overflow on the way
        got = sigmoid(z.copy())
        same = z.copy()
        out = sigmoid(same, out=same)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)
    assert out is same
    np.testing.assert_array_equal(same, got)
