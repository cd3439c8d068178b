"""deltanet.predict: the eval-mode forward pass over a data set in chunks, with reused buffers."""

import numpy as np
import pytest

import deltanet as dn
from deltanet.accel import blas
from deltanet.accel.predict import _BUFFERS, _test_column
from deltanet.errors import NonFiniteError


def chunked_forward(net, X, batch_size):
    """What predict must equal: the model's own forward, chunk by chunk."""
    return np.concatenate([net.forward(X[s:s + batch_size]) for s in range(0, len(X), batch_size)])


def networks(dtype):
    rng = 3
    shared = dn.Linear(12, 12, rng=7, dtype=dtype)
    return {
        "relu mlp": dn.mlp([12, 16, 9, 4], activation="relu", rng=rng, dtype=dtype),
        "tanh (sigma(1) != 1)": dn.mlp([12, 16, 9, 4], activation="tanh", rng=rng, dtype=dtype),
        "sigmoid, leaky": dn.Sequential(dn.Linear(12, 8, rng=1, dtype=dtype), dn.Sigmoid(),
                                        dn.Linear(8, 8, rng=2, dtype=dtype), dn.LeakyReLU(0.1),
                                        dn.Linear(8, 3, rng=4, dtype=dtype)),
        "no bias in the middle": dn.Sequential(dn.Linear(12, 8, rng=1, dtype=dtype), dn.ReLU(),
                                               dn.Linear(8, 8, bias=False, rng=2, dtype=dtype), dn.ReLU(),
                                               dn.Linear(8, 3, rng=4, dtype=dtype)),
        "nested, two activations, batch norm, dropout": dn.Sequential(
            dn.Sequential(dn.Linear(12, 10, rng=1, dtype=dtype), dn.ReLU(), dn.Tanh()),
            dn.Linear(10, 10, rng=2, dtype=dtype), dn.BatchNorm(10, dtype=dtype), dn.ReLU(), dn.Dropout(0.5),
            dn.Sequential(dn.Linear(10, 6, rng=5, dtype=dtype)), dn.Softmax()),
        "single linear": dn.Linear(12, 5, rng=1, dtype=dtype),
        "one layer used twice": dn.Sequential(shared, dn.ReLU(), shared, dn.Tanh(), dn.Linear(12, 4, rng=6, dtype=dtype)),
    }


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("batch_size", [1, 7, 64, 600, 5000])
@pytest.mark.parametrize("rows", [1100, 5])         # 5 < the layers' widths: inner biases added by a pass
@pytest.mark.parametrize("numpy_blas", [True, False], ids=["blas", "no-blas"])
def test_predict_equals_the_chunked_forward(dtype, rtol, batch_size, rows, numpy_blas, monkeypatch):
    if not numpy_blas:                               # the first layer's bias rows without deltanet.blas.gemm
        monkeypatch.setattr(blas, "_LIB", None)
    X = np.random.default_rng(0).standard_normal((rows, 12))
    for name, net in networks(dtype).items():
        for m in net.modules():
            if isinstance(m, dn.Linear) and m.bias is not None:
                m.bias.value[...] = np.linspace(-0.5, 0.5, m.out_features)    # biases that matter
        want = chunked_forward(net, X.astype(dtype), batch_size)
        got = dn.predict(net, X, batch_size=batch_size)
        assert got.shape == want.shape and got.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=name)


def test_results_are_not_overwritten_by_the_next_call_and_follow_the_weights():
    net = dn.mlp([12, 16, 9, 4], rng=0, dtype="float64")
    rng = np.random.default_rng(1)
    X1, X2 = rng.standard_normal((50, 12)), rng.standard_normal((50, 12))
    for batch_size in (20, 50, 100):                   # several chunks, one chunk, one short chunk
        first = dn.predict(net, X1, batch_size=batch_size)
        kept = first.copy()
        second = dn.predict(net, X2, batch_size=batch_size)
        np.testing.assert_array_equal(first, kept)     # buffers are reused, results are not
        np.testing.assert_allclose(second, net.forward(X2), rtol=1e-12)
    assert net in _BUFFERS                             # the buffers wait for the next call
    for p in net.parameters():                         # new weights (as after a training step) are used
        p.value[...] *= 1.5
    np.testing.assert_allclose(dn.predict(net, X1, batch_size=20), net.forward(X1), rtol=1e-12)


def test_a_transformer_runs_through_its_own_forward():
    net = dn.transformer_classifier(3, 4, max_len=6, d_model=8, n_heads=2, n_blocks=1, rng=0, dtype="float64")
    X = np.random.default_rng(2).standard_normal((10, 6, 3))
    np.testing.assert_allclose(dn.predict(net, X, batch_size=4), chunked_forward(net, X, 4), rtol=1e-12)


@pytest.mark.parametrize("n_in, width", [(40, 8), (4, 30)])   # first layer narrower / wider than the data
def test_nan_and_infinity_are_rejected_with_their_index_in_x(n_in, width):
    net = dn.mlp([n_in, width, 3], rng=0, dtype="float32")
    X = np.random.default_rng(3).standard_normal((100, n_in))
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[57, 2] = bad
        with pytest.raises(NonFiniteError, match=r"^X: input holds NaN or infinity \(first at index \(57, 2\)\)"):
            dn.predict(net, Xb, batch_size=16)
    with np.errstate(invalid="ignore", over="ignore"):
        assert dn.predict(net, Xb, batch_size=16, check_finite=False).shape == (100, 3)   # the caller's word


@pytest.mark.parametrize("zeros", ["first row", "every row"])
def test_zero_weights_do_not_hide_a_bad_input(zeros):
    # the test reads one output column, of a weight row without zeros (a BLAS may skip a zero weight's products)
    net = dn.mlp([6, 5, 3], rng=0, dtype="float32")
    w = net[0].weight.value
    if zeros == "first row":
        w[0, 2] = 0.0                                    # row 0 cannot tell; row 1 can
        assert _test_column(net[0]) == 1
    else:
        w[np.arange(5), np.arange(5)] = 0.0               # no row can: every chunk is tested itself
        assert _test_column(net[0]) is None
    X = np.random.default_rng(4).standard_normal((40, 6))
    for col in range(6):
        Xb = X.copy()
        Xb[21, col] = np.inf
        with pytest.raises(NonFiniteError, match=rf"first at index \(21, {col}\)"):
            dn.predict(net, Xb, batch_size=8)
    np.testing.assert_allclose(dn.predict(net, X, batch_size=8), net.forward(X.astype(np.float32)), rtol=1e-6)


def test_a_finite_input_whose_first_product_overflows_is_not_rejected():
    net = dn.Sequential(dn.Linear(2, 1, bias=False, dtype="float32"))
    net[0].weight.value[...] = 3e38
    out = dn.predict(net, np.array([[3.0, 3.0]]))               # 1.8e39: inf in float32, from finite data
    assert np.isinf(out).all()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, net.forward(np.array([[3.0, 3.0]])))


def test_bad_arguments():
    net = dn.mlp([3, 4, 2], rng=0)
    with pytest.raises(ValueError, match=r"^predict: batch_size must be a positive int, got 0$"):
        dn.predict(net, np.zeros((2, 3)), batch_size=0)
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3\), got \(2, 5\)"):
        dn.predict(net, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"^X has no samples$"):
        dn.predict(net, np.zeros((0, 3)))
