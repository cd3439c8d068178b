"""Losses: hand-computed values and gradients, stability, sample weights, target forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import deltanet as dn

LN2, LN3 = np.log(2.0), np.log(3.0)


def test_softmax_cross_entropy_by_hand():
    # row 0: softmax([0, ln 3]) = [1/4, 3/4], label 1 -> -ln(3/4); row 1: [1/2, 1/2], label 0 -> ln 2
    z = np.array([[0.0, LN3], [0.0, 0.0]])
    loss = dn.SoftmaxCrossEntropy()
    assert loss.forward(z, np.array([1, 0])) == pytest.approx((np.log(4 / 3) + LN2) / 2, rel=1e-12)
    # delta = (y - t) / B
    np.testing.assert_allclose(loss.backward(), [[1 / 8, -1 / 8], [-1 / 4, 1 / 4]], rtol=1e-12)
    np.testing.assert_allclose(loss.probabilities(z), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-12)


def test_softmax_cross_entropy_with_probability_targets_by_hand():
    # y = [1/4, 3/4], t = [1/2, 1/2]: -(ln(1/4) + ln(3/4)) / 2 ; delta = y - t = [-1/4, 1/4]
    loss = dn.SoftmaxCrossEntropy()
    assert loss.forward(np.array([[0.0, LN3]]), np.array([[0.5, 0.5]])) == pytest.approx(-(np.log(0.25) + np.log(0.75)) / 2)
    np.testing.assert_allclose(loss.backward(), [[-0.25, 0.25]], rtol=1e-12)


def test_labels_and_one_hot_probabilities_agree(rng):
    z = rng.standard_normal((7, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 7)
    a, b = dn.SoftmaxCrossEntropy(), dn.SoftmaxCrossEntropy()
    assert a.forward(z, labels) == pytest.approx(b.forward(z, np.eye(4)[labels]), rel=1e-6)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-5, atol=1e-7)
    assert a.forward(z, labels.astype(np.float64)) == pytest.approx(b.forward(z, np.eye(4)[labels]), rel=1e-6)  # whole floats


def test_mean_squared_error_by_hand():
    y, t = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 4.0]])
    loss = dn.MeanSquaredError()
    assert loss.forward(y, t) == pytest.approx((0 + 4 + 9 + 0) / 4)
    np.testing.assert_allclose(loss.backward(), [[0.0, 1.0], [1.5, 0.0]])   # 2 (y - t) / (B D)
    assert loss.forward(np.array([[2.0], [0.0]]), np.array([1.0, 0.0])) == pytest.approx(0.5)  # (batch,) target


def test_binary_cross_entropy_by_hand():
    # sigmoid(ln 3) = 3/4: t = 1 -> -ln(3/4), t = 0 -> -ln(1/4); sigmoid(0) = 1/2 -> ln 2
    loss = dn.BinaryCrossEntropyWithLogits()
    z = np.array([[LN3], [LN3]])
    assert loss.forward(z, np.array([1.0, 0.0])) == pytest.approx((np.log(4 / 3) + np.log(4.0)) / 2, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), [[-1 / 8], [3 / 8]], rtol=1e-12)   # (sigma - t) / B
    # multi-label: K = 2 labels per row, mean over all B K entries
    assert loss.forward(np.array([[0.0, LN3]]), np.array([[1.0, 0.0]])) == pytest.approx((LN2 + np.log(4.0)) / 2, rel=1e-12)
    np.testing.assert_allclose(loss.backward(), [[-1 / 4, 3 / 8]], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_exact_losses(dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce = dn.SoftmaxCrossEntropy()
        z = np.array([[1000.0, -1000.0], [1000.0, -1000.0], [-1000.0, -1000.0]], dtype=dtype)
        # -log y: row 0 right (0), row 1 wrong by 2000, row 2 a tie (ln 2)
        assert ce.forward(z, np.array([0, 1, 0])) == pytest.approx((0.0 + 2000.0 + LN2) / 3, rel=1e-6)
        np.testing.assert_allclose(ce.backward(), np.array([[0, 0], [1, -1], [-0.5, 0.5]]) / 3, atol=1e-7)
        bce = dn.BinaryCrossEntropyWithLogits()
        zb = np.array([[1000.0, -1000.0, 1000.0, -1000.0]], dtype=dtype)
        assert bce.forward(zb, np.array([[0.0, 1.0, 1.0, 0.0]])) == pytest.approx(2000.0 / 4, rel=1e-6)
        np.testing.assert_allclose(bce.backward(), [[0.25, -0.25, 0.0, 0.0]], atol=1e-7)
        mse = dn.MeanSquaredError()
        assert np.isfinite(mse.forward(np.array([[1e15]], dtype=dtype), np.array([[-1e15]])))


LOSSES = [
    (dn.SoftmaxCrossEntropy, lambda rng: rng.integers(0, 3, 5)),
    (dn.SoftmaxCrossEntropy, lambda rng: rng.dirichlet(np.ones(3), 5)),
    (dn.MeanSquaredError, lambda rng: rng.standard_normal((5, 3))),
    (dn.BinaryCrossEntropyWithLogits, lambda rng: rng.integers(0, 2, (5, 3)).astype(float)),
]


@pytest.mark.parametrize(("make", "target"), LOSSES, ids=["ce-labels", "ce-probs", "mse", "bce"])
def test_weight_two_equals_duplicating_the_row(make, target, rng):
    z, t = rng.standard_normal((5, 3)), target(rng)
    w = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    weighted, duplicated = make(), make()
    loss_w = weighted.forward(z, t, sample_weight=w)
    rows = [0, 1, 1, 2, 3, 4]
    loss_d = duplicated.forward(z[rows], t[rows])
    assert loss_w == pytest.approx(loss_d, rel=1e-12)
    g_w, g_d = weighted.backward(), duplicated.backward()
    np.testing.assert_allclose(g_w[[0, 2, 3, 4]], g_d[[0, 3, 4, 5]], rtol=1e-12)
    np.testing.assert_allclose(g_w[1], g_d[1] + g_d[2], rtol=1e-12)       # the duplicate's gradient lands on one row
    ones, plain = make(), make()
    assert ones.forward(z, t, sample_weight=np.ones(5)) == pytest.approx(plain.forward(z, t), rel=1e-12)
    np.testing.assert_allclose(ones.backward(), plain.backward(), rtol=1e-12)


def test_zero_weight_drops_the_row(rng):
    z, t = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    a, b = dn.SoftmaxCrossEntropy(), dn.SoftmaxCrossEntropy()
    assert a.forward(z, t, sample_weight=[1, 1, 0, 1]) == pytest.approx(b.forward(z[[0, 1, 3]], t[[0, 1, 3]]), rel=1e-12)
    np.testing.assert_array_equal(a.backward()[2], 0.0)


def test_cross_entropy_over_positions(rng):
    z, labels = rng.standard_normal((2, 5, 3)), rng.integers(0, 3, (2, 5))
    a, b = dn.SoftmaxCrossEntropy(), dn.SoftmaxCrossEntropy()
    assert a.forward(z, labels) == pytest.approx(b.forward(z.reshape(-1, 3), labels.reshape(-1)), rel=1e-12)
    np.testing.assert_allclose(a.backward().reshape(-1, 3), b.backward(), rtol=1e-12)
    # a (batch,) sample weight covers every position of its sample: weight 2 == the sample twice
    w, d = dn.SoftmaxCrossEntropy(), dn.SoftmaxCrossEntropy()
    assert w.forward(z, labels, sample_weight=[2.0, 1.0]) == pytest.approx(d.forward(z[[0, 0, 1]], labels[[0, 0, 1]]), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_is_the_same_for_row_and_column_major_logits(rng, weighted):
    # the label path works in the logits' own memory order (a Linear's small batch is column-major); one loss
    # object sees both orders and two batch sizes in turn, so its cached row offsets must follow
    loss, ref = dn.SoftmaxCrossEntropy(), dn.SoftmaxCrossEntropy()
    for n in (6, 9, 6):
        for order in ("F", "C", "F"):
            z = np.asarray(rng.standard_normal((n, 4)), order=order)
            labels = rng.integers(0, 4, n)
            w = rng.uniform(0.5, 2.0, n) if weighted else None
            value = loss.forward(z, labels, sample_weight=w)
            expected = ref.forward(z, np.eye(4)[labels], sample_weight=w)             # the probability path
            assert value == pytest.approx(expected, rel=1e-12)
            grad = loss.backward()
            np.testing.assert_allclose(grad, ref.backward(), rtol=1e-12, atol=1e-15)
            y = np.exp(z - z.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
            r = (np.ones(n) / n) if w is None else w / w.sum()
            np.testing.assert_allclose(grad, (y - np.eye(4)[labels]) * r[:, None], rtol=1e-12, atol=1e-15)
            assert value == pytest.approx(float(-(np.log(y[np.arange(n), labels]) * r).sum()), rel=1e-12)


def test_gradient_is_in_the_output_dtype():
    for loss, t in ((dn.SoftmaxCrossEntropy(), np.array([0, 1])), (dn.MeanSquaredError(), np.zeros((2, 2))),
                    (dn.BinaryCrossEntropyWithLogits(), np.zeros((2, 2)))):
        value = loss.forward(np.ones((2, 2), dtype=np.float32), t)
        assert isinstance(value, float)
        assert loss.backward().dtype == np.float32


def test_backward_returns_a_fresh_array():
    loss = dn.MeanSquaredError()
    loss.forward(np.ones((2, 1)), np.zeros((2, 1)))
    g = loss.backward()
    g[...] = 0
    np.testing.assert_array_equal(loss.backward(), 1.0)


def test_get_loss_by_name():
    assert isinstance(dn.get_loss("cross_entropy"), dn.SoftmaxCrossEntropy)
    assert isinstance(dn.get_loss("mse"), dn.MeanSquaredError)
    assert isinstance(dn.get_loss("binary_cross_entropy"), dn.BinaryCrossEntropyWithLogits)
    mine = dn.MeanSquaredError()
    assert dn.get_loss(mine) is mine
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; choose one of: .*cross_entropy.*mse"):
        dn.get_loss("hinge")
    assert dn.SoftmaxCrossEntropy().config() == {"type": "SoftmaxCrossEntropy"}


def test_targets_prechecked_skips_only_the_value_tests_and_restores_them(rng):
    from deltanet.accel.plan import targets_prechecked

    z = rng.standard_normal((5, 3))
    ce, mse = dn.SoftmaxCrossEntropy(), dn.MeanSquaredError()
    good, bad = np.array([0, 2, 1, 1, 0]), np.array([0, 2, 3, 1, 0])
    expected = ce.forward(z, good)
    with targets_prechecked(ce), targets_prechecked(mse):
        assert ce.forward(z, good) == expected                            # the same loss, without the range test
        assert np.isnan(mse.forward(z, np.full((5, 3), np.nan)))        # a NaN target is not tested: it passes through
        with pytest.raises(ValueError, match="batch size mismatch"):      # shapes are still tested
            ce.forward(z, good[:4])
        with pytest.raises(TypeError, match="labels must be integers"):  # and dtypes
            ce.forward(z, np.array(["a"] * 5))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 3"):
        ce.forward(z, bad)
    with pytest.raises(dn.NonFiniteError):
        mse.forward(z, np.full((5, 3), np.nan))
    assert "check_targets" not in ce.__dict__ and "check_targets" not in mse.__dict__


def test_the_trainer_tests_targets_once_and_leaves_the_loss_checking(rng):
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    trainer = dn.Trainer(dn.mlp([4, 8, 3], rng=0), loss="cross_entropy", epochs=1, batch_size=8, progress=False)
    y_bad = y.copy()
    y_bad[17] = 3
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 3\)"):
        trainer.fit(X, y_bad)                                              # the one test before training
    trainer.fit(X, y)
    assert trainer.loss.check_targets
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 3"):
        trainer.loss.forward(np.zeros((2, 3)), np.array([0, 3]))


def test_softmax_cross_entropy_gradient_holds_no_subnormal_numbers():
    # a confident network: the wrong classes' probabilities exp(-100) are subnormal in float32; stored as 0
    z = np.array([[100.0, 0.0, 10.0], [0.0, 95.0, 0.0]], dtype=np.float32)
    loss = dn.SoftmaxCrossEntropy()
    loss.forward(z, np.array([0, 1]))
    grad = loss.backward()
    tiny = np.finfo(np.float32).tiny
    assert not np.any((grad != 0) & (np.abs(grad) < tiny))
    p = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[[0, 1], [0, 1]] -= 1.0
    np.testing.assert_allclose(grad, p / 2, rtol=1e-5, atol=tiny)    # the same gradient to float resolution
