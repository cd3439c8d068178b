"""The dtype policy (float32 default, float64 on request, mixed input converted once) and errors for bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import deltanet as dn


def small_net(dtype=None) -> dn.Sequential:
    return dn.Sequential(dn.Linear(4, 5, rng=0, dtype=dtype), dn.BatchNorm(5, dtype=dtype), dn.Tanh(),
                         dn.Dropout(0.2, rng=1), dn.Linear(5, 3, rng=2, dtype=dtype))


def dtypes(module: dn.Module) -> set:
    return {str(v.dtype) for v in module.state_dict().values()} | {str(p.grad.dtype) for p in module.parameters()}


# -- dtype policy --------------------------------------------------------------------------------------------------
def test_float32_is_the_default():
    assert dn.get_default_dtype() == np.float32
    net = small_net()
    assert dtypes(net) == {"float32"}
    assert net.forward(np.ones((3, 4), dtype=np.float32), training=True).dtype == np.float32


def test_float64_per_module():
    net = small_net(dtype="float64")
    assert dtypes(net) == {"float64"}
    assert net.forward(np.ones((3, 4)), training=True).dtype == np.float64
    assert dn.Linear(2, 2, dtype=np.float64).config()["dtype"] == "float64"


def test_float64_globally():
    dn.set_default_dtype("float64")
    assert dtypes(small_net()) == {"float64"}
    assert dn.Tanh().forward(np.array([[1, 2]])).dtype == np.float64     # integers become the default dtype
    dn.set_default_dtype(np.float32)
    assert dtypes(small_net()) == {"float32"}


def test_default_dtype_context_manager_restores_even_on_error():
    with dn.backend.default_dtype("float64") as dt:
        assert dt == np.float64 and dtypes(small_net()) == {"float64"}
    assert dn.get_default_dtype() == np.float32
    with pytest.raises(RuntimeError), dn.backend.default_dtype("float64"):
        raise RuntimeError("boom")
    assert dn.get_default_dtype() == np.float32


@pytest.mark.parametrize("bad", ["float16", "int32", np.complex64])
def test_only_float32_and_float64_are_accepted(bad):
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got"):
        dn.set_default_dtype(bad)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got"):
        dn.Linear(2, 2, dtype=bad)


def test_mixed_dtype_input_is_converted_once_at_the_first_layer(rng):
    net = small_net()                                               # float32
    x64 = rng.standard_normal((6, 4))
    x_copy = x64.copy()
    out = net.forward(x64, training=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(x64, x_copy)                      # the caller's array is untouched
    assert net[0]._x.dtype == np.float32                            # converted on entry ...
    assert net[4]._x.dtype == np.float32                            # ... so later layers see float32 only
    g = net.backward(np.ones((6, 3), dtype=np.float32))
    assert g.dtype == np.float32 and dtypes(net) == {"float32"}
    twin = small_net()
    np.testing.assert_allclose(out, twin.forward(x64.astype(np.float32), training=True), rtol=1e-6)


def test_matching_dtype_is_not_copied(rng):
    layer = dn.Linear(4, 2, rng=0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    layer.forward(x)
    assert layer._x is x


def test_float64_module_computes_in_float64_from_float32_and_integer_input(rng):
    layer = dn.Linear(4, 2, rng=0, dtype="float64")
    x32 = rng.standard_normal((3, 4)).astype(np.float32)
    out = layer.forward(x32)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x32.astype(np.float64) @ layer.weight.value.T, rtol=1e-14)
    assert layer.forward(np.arange(8).reshape(2, 4)).dtype == np.float64


def test_residual_output_follows_the_block_dtype(rng):
    res = dn.Residual(dn.Sequential(dn.Linear(3, 3, rng=0), dn.Tanh()))   # float32
    assert res.forward(rng.standard_normal((2, 3))).dtype == np.float32
    assert res.forward([[1.0, 2.0, 3.0]]).shape == (1, 3)                # lists are arrays too


def test_losses_follow_the_output_dtype():
    for dt in (np.float32, np.float64):
        ce = dn.SoftmaxCrossEntropy()
        ce.forward(np.zeros((2, 3), dtype=dt), np.eye(3)[[0, 1]])           # float64 targets do not promote
        assert ce.backward().dtype == dt


# -- bad input -----------------------------------------------------------------------------------------------------
LINEAR = r"Linear\(in_features=4, out_features=3, bias=True, init='he_normal', dtype='float32'\)"
BATCHNORM = r"BatchNorm\(num_features=4, eps=1e-05, momentum=0.1, dtype='float32'\)"


@pytest.mark.parametrize(("x", "match"), [
    (np.ones((32, 5)), rf"{LINEAR}: expected input of shape \(batch, 4\), got \(32, 5\)$"),
    (np.ones((2, 3, 5)), rf"{LINEAR}: expected input of shape \(\.\.\., 4\), got \(2, 3, 5\)$"),
    (np.ones(4), rf"{LINEAR}: expected input of shape \(batch, 4\), got \(4,\) \(rank 1\); "
                 r"reshape a single sample with x\[None, :\]"),
    (np.float64(1.0), rf"{LINEAR}: expected input of shape \(batch, 4\), got \(\) \(rank 0\)"),
])
def test_linear_wrong_shape(x, match):
    with pytest.raises(ValueError, match=match):
        dn.Linear(4, 3, rng=0).forward(x)


def test_batchnorm_wrong_shape_and_single_row():
    bn = dn.BatchNorm(4)
    with pytest.raises(ValueError, match=rf"{BATCHNORM}: expected input of shape \(batch, 4\), got \(8, 3\)"):
        bn.forward(np.ones((8, 3)))
    with pytest.raises(ValueError, match=rf"{BATCHNORM}: expected input of shape \(batch, 4\), got \(4,\) \(rank 1\)"):
        bn.forward(np.ones(4))
    with pytest.raises(ValueError, match=rf"{BATCHNORM}: training mode needs at least 2 rows per batch .* got 1"):
        bn.forward(np.ones((1, 4)), training=True)
    assert bn.forward(np.ones((1, 4))).shape == (1, 4)                   # eval mode is fine with one row


@pytest.mark.parametrize("module", [dn.Linear(4, 3, rng=0), dn.BatchNorm(4), dn.Sigmoid(), dn.Tanh(), dn.ReLU(),
                                    dn.LeakyReLU(), dn.Softmax(), dn.Identity(), dn.Dropout(0.5, rng=0)],
                         ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("x", [np.array([["a", "b", "c", "d"]]), np.array([[None, 1, 2, 3]], dtype=object),
                               np.ones((1, 4), dtype=np.complex128)], ids=["str", "object", "complex"])
def test_non_numeric_input_is_a_type_error(module, x):
    name = type(module).__name__
    with pytest.raises(TypeError, match=rf"^{name}\(.*\): expected a numeric array, got dtype {x.dtype}"):
        module.forward(x, training=True)


@pytest.mark.parametrize("module", [dn.Linear(4, 3, rng=0), dn.BatchNorm(4)], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_input_is_a_value_error(module, bad):
    x = np.ones((3, 4), dtype=np.float32)
    x[1, 2] = bad
    name = type(module).__name__
    with pytest.raises(dn.NonFiniteError, match=rf"^{name}\(.*\): input holds NaN or infinity \(first at index \(1, 2\)\)"):
        module.forward(x, training=True)
    assert issubclass(dn.NonFiniteError, ValueError)


def test_huge_but_finite_input_is_accepted_without_warnings():
    x = np.full((4, 4), 3e38, dtype=np.float32)                           # the sum overflows, the entries do not
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dn.BatchNorm(4).forward(x).shape == (4, 4)


@pytest.mark.parametrize(("loss", "out", "target", "err", "match"), [
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0, 3, 1]), ValueError,
     r"^SoftmaxCrossEntropy: labels must be in \[0, 3\), got 3$"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0, -1, 1]), ValueError,
     r"^SoftmaxCrossEntropy: labels must be in \[0, 3\), got -1$"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0.0, 1.5, 1.0]), TypeError,
     r"^SoftmaxCrossEntropy: float labels must be whole numbers"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array(["a", "b", "c"]), TypeError,
     r"^SoftmaxCrossEntropy: labels must be integers, got dtype <U1"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0, 1, 2, 0]), ValueError,
     r"^SoftmaxCrossEntropy: batch size mismatch: output has 3 rows, target has 4$"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.zeros((3, 2)), ValueError,
     r"^SoftmaxCrossEntropy: target must be labels of shape \(3,\) or probabilities of shape \(3, 3\), got \(3, 2\)$"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.array([0, np.nan, 1]), ValueError,
     r"^SoftmaxCrossEntropy \(labels\): input holds NaN or infinity \(first at index \(1,\)\)"),
    (dn.SoftmaxCrossEntropy(), np.zeros((3, 3)), np.full((3, 3), np.inf), ValueError,
     r"^SoftmaxCrossEntropy \(target\): input holds NaN or infinity"),
    (dn.SoftmaxCrossEntropy(), np.array([[0.0, np.nan]]), np.array([0]), ValueError,
     r"^SoftmaxCrossEntropy \(network output\): input holds NaN or infinity \(first at index \(0, 1\)\)"),
    (dn.SoftmaxCrossEntropy(), np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError,
     r"^SoftmaxCrossEntropy: got an empty batch \(output shape \(0, 3\)\)$"),
    (dn.SoftmaxCrossEntropy(), np.zeros((2, 3), dtype=int), np.array([0, 1]), TypeError,
     r"^SoftmaxCrossEntropy: output must be a float array, got dtype int64$"),
    (dn.MeanSquaredError(), np.zeros((3, 2)), np.zeros((4, 2)), ValueError,
     r"^MeanSquaredError: batch size mismatch: output has 3 rows, target has 4$"),
    (dn.MeanSquaredError(), np.zeros((3, 2)), np.zeros((3, 3)), ValueError,
     r"^MeanSquaredError: target shape \(3, 3\) does not match output shape \(3, 2\)$"),
    (dn.MeanSquaredError(), np.zeros((3, 2)), np.array([["a", "b"]] * 3), TypeError,
     r"^MeanSquaredError: target must be numeric, got dtype <U1$"),
    (dn.MeanSquaredError(), np.array([[np.inf]]), np.zeros((1, 1)), ValueError,
     r"^MeanSquaredError \(network output\): input holds NaN or infinity"),
    (dn.BinaryCrossEntropyWithLogits(), np.zeros((3, 1)), np.zeros(4), ValueError,
     r"^BinaryCrossEntropyWithLogits: batch size mismatch: output has 3 rows, target has 4$"),
    (dn.BinaryCrossEntropyWithLogits(), np.zeros((2, 2)), np.array([[0.0, 2.0], [1.0, 0.0]]), ValueError,
     r"^BinaryCrossEntropyWithLogits: targets must be in \[0, 1\]$"),
    (dn.BinaryCrossEntropyWithLogits(), np.zeros((2, 1)), np.array([np.nan, 1.0]), ValueError,
     r"^BinaryCrossEntropyWithLogits \(target\): input holds NaN or infinity"),
])
def test_loss_bad_targets(loss, out, target, err, match):
    with pytest.raises(err, match=match):
        loss.forward(out, target)


@pytest.mark.parametrize(("w", "match"), [
    (np.ones(4), r"^SoftmaxCrossEntropy: sample_weight has 4 entries, output has 3 rows$"),
    (np.array([1.0, -1.0, 1.0]), r"^SoftmaxCrossEntropy: sample_weight must be finite and >= 0$"),
    (np.array([1.0, np.nan, 1.0]), r"^SoftmaxCrossEntropy: sample_weight must be finite and >= 0$"),
    (np.zeros(3), r"^SoftmaxCrossEntropy: sample_weight sums to 0$"),
])
def test_bad_sample_weight(w, match):
    with pytest.raises(ValueError, match=match):
        dn.SoftmaxCrossEntropy().forward(np.zeros((3, 2)), np.array([0, 1, 0]), sample_weight=w)


def test_wrong_gradient_shapes_name_the_module():
    layer = dn.Linear(4, 3, rng=0)
    layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=rf"{LINEAR}: grad_out has shape \(2, 4\), expected \(2, 3\)"):
        layer.backward(np.ones((2, 4)))
    bn = dn.BatchNorm(4)
    bn.forward(np.ones((2, 4)), training=True)
    with pytest.raises(ValueError, match=rf"{BATCHNORM}: grad_out has shape \(3, 4\)"):
        bn.backward(np.ones((3, 4)))
    drop = dn.Dropout(0.5, rng=0)
    drop.forward(np.ones((2, 4)), training=True)
    with pytest.raises(ValueError, match=r"Dropout\(rate=0.5\): grad_out has shape \(2, 3\), expected \(2, 4\)"):
        drop.backward(np.ones((2, 3)))


@pytest.mark.parametrize(("make", "err", "match"), [
    (lambda: dn.Linear(0, 3), ValueError, r"^Linear: in_features must be a positive int, got 0$"),
    (lambda: dn.Linear(3, 2.5), ValueError, r"^Linear: out_features must be a positive int, got 2.5$"),
    (lambda: dn.BatchNorm(True), ValueError, r"^BatchNorm: num_features must be a positive int, got True$"),
    (lambda: dn.BatchNorm(3, eps=0), ValueError, r"^BatchNorm: eps must be > 0, got 0$"),
    (lambda: dn.BatchNorm(3, momentum=1.5), ValueError, r"^BatchNorm: momentum must be in \[0, 1\], got 1.5$"),
    (lambda: dn.Dropout(1.0), ValueError, r"^Dropout: rate must be in \[0, 1\), got 1.0$"),
    (lambda: dn.Dropout(-0.1), ValueError, r"^Dropout: rate must be in \[0, 1\), got -0.1$"),
    (lambda: dn.Sequential(dn.ReLU(), "relu"), TypeError, r"^Sequential: child '1' must be a Module, got str$"),
    (lambda: dn.mlp([4]), ValueError, r"^mlp needs at least \[d_in, d_out\], got \[4\]$"),
    (lambda: dn.mlp([4, 3, 2], activation="softmax"), ValueError, r"^unknown hidden activation 'softmax'; choose one of: "),
])
def test_bad_hyperparameters(make, err, match):
    with pytest.raises(err, match=match):
        make()
