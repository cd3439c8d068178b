"""The Module contract, Linear, BatchNorm, Dropout and the containers: hand-computed values and round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deltanet as dn


def every_module() -> list[dn.Module]:
    """One instance of every module type, non-default hyper-parameters where there are any."""
    return [
        dn.Linear(4, 3, bias=False, init="xavier_uniform", rng=0, dtype="float64"),
        dn.Linear(4, 3, rng=0),
        dn.Identity(), dn.Sigmoid(), dn.Tanh(), dn.ReLU(), dn.LeakyReLU(alpha=0.2), dn.Softmax(axis=0),
        dn.BatchNorm(4, eps=1e-3, momentum=0.3, dtype="float64"),
        dn.Dropout(0.25, rng=0),
        dn.Sequential(dn.Linear(4, 5, rng=0), dn.BatchNorm(5), dn.ReLU(), dn.Dropout(0.1, rng=1), dn.Linear(5, 4, rng=2)),
        dn.Residual(dn.Sequential(dn.Linear(4, 4, rng=0), dn.Tanh())),
        dn.Residual(dn.Linear(4, 6, rng=0), projection=dn.Linear(4, 6, bias=False, rng=1)),
        dn.Sequential(),
    ]


def _set(param: dn.Parameter, values) -> None:
    param.value[...] = np.asarray(values)


# -- Parameter ---------------------------------------------------------------------------------------------------
def test_parameter_value_grad_name_decay():
    p = dn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    assert p.grad.shape == p.value.shape == p.shape == (2, 3)
    assert p.grad.dtype == p.value.dtype == np.float32
    assert p.name == "w" and p.decay is True and p.size == 6
    np.testing.assert_array_equal(p.grad, 0.0)
    p.accumulate(np.ones((2, 3)))
    p.accumulate(np.ones((2, 3)))
    np.testing.assert_array_equal(p.grad, 2.0)
    p.zero_grad()
    np.testing.assert_array_equal(p.grad, 0.0)
    with pytest.raises(ValueError, match=r"gradient shape \(3, 2\) != value shape \(2, 3\)"):
        p.grad = np.zeros((3, 2))


def test_parameter_lazy_zero_then_matmul_and_sum_write_the_true_value():
    p = dn.Parameter(np.zeros((2, 2)))
    p.accumulate(np.full((2, 2), 5.0))
    p.zero_grad()
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    p.accumulate_matmul(a, b)                                  # writes a @ b, not 5 + a @ b
    np.testing.assert_array_equal(p.grad, [[3.0, 2.0], [7.0, 4.0]])
    p.accumulate_matmul(a, b)
    np.testing.assert_array_equal(p.grad, [[6.0, 4.0], [14.0, 8.0]])
    q = dn.Parameter(np.zeros(2))
    q.accumulate(np.ones(2))
    q.zero_grad()
    q.accumulate_sum(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(q.grad, [4.0, 6.0])


def test_decay_flags_weights_yes_biases_and_norm_no():
    net = dn.Sequential(dn.Linear(3, 4, rng=0), dn.BatchNorm(4), dn.Linear(4, 2, rng=1))
    assert {p.name: p.decay for p in net.parameters()} == {
        "0.weight": True, "0.bias": False, "1.gamma": False, "1.beta": False, "2.weight": True, "2.bias": False}


# -- Module contract -------------------------------------------------------------------------------------------------
def test_parameters_come_in_the_documented_order():
    net = dn.Sequential(dn.Linear(3, 4, rng=0), dn.BatchNorm(4), dn.ReLU(),
                        dn.Residual(dn.Sequential(dn.Linear(4, 4, rng=1), dn.Tanh()), dn.Linear(4, 4, bias=False, rng=2)),
                        dn.Linear(4, 2, rng=3))
    names = [p.name for p in net.parameters()]
    assert names == ["0.weight", "0.bias", "1.gamma", "1.beta", "3.block.0.weight", "3.block.0.bias",
                     "3.projection.weight", "4.weight", "4.bias"]
    assert names == [n for n, _ in net.named_parameters()]
    assert net.num_parameters() == 3 * 4 + 4 + 4 + 4 + 16 + 4 + 16 + 8 + 2
    assert [n for n, _ in net.named_buffers()] == ["1.running_mean", "1.running_var"]


@pytest.mark.parametrize("module", every_module(), ids=lambda m: type(m).__name__)
def test_backward_before_forward_raises(module):
    if isinstance(module, dn.Sequential) and len(module) == 0:   # the identity: nothing to remember
        np.testing.assert_array_equal(module.backward(np.ones((2, 4))), 1.0)
        return
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        module.backward(np.zeros((2, 4)))


@pytest.mark.parametrize("loss", [dn.SoftmaxCrossEntropy(), dn.MeanSquaredError(), dn.BinaryCrossEntropyWithLogits()],
                         ids=lambda m: type(m).__name__)
def test_loss_backward_before_forward_raises(loss):
    with pytest.raises(RuntimeError, match=rf"{type(loss).__name__}: backward\(\) called before forward\(\)"):
        loss.backward()


def test_backward_accumulates_and_zero_grad_resets(rng):
    layer = dn.Linear(3, 2, rng=0, dtype="float64")
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    layer.forward(x)
    layer.backward(g)
    once = [p.grad.copy() for p in layer.parameters()]
    layer.forward(x)
    layer.backward(g)
    for p, g1 in zip(layer.parameters(), once, strict=True):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-12)
    layer.zero_grad()
    for p in layer.parameters():
        np.testing.assert_array_equal(p.grad, 0.0)
    layer.forward(x)
    layer.backward(g)
    for p, g1 in zip(layer.parameters(), once, strict=True):
        np.testing.assert_allclose(p.grad, g1, rtol=1e-12)


def test_module_used_twice_in_a_sequential_gets_twice_the_gradient(rng):
    # W = I, b = 0: both uses see the same input, so each contributes the same gradient.
    shared = dn.Linear(3, 3, rng=0, dtype="float64")
    _set(shared.weight, np.eye(3))
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    single = dn.Linear(3, 3, rng=0, dtype="float64")
    _set(single.weight, np.eye(3))
    single.forward(x)
    single.backward(g)
    net = dn.Sequential(shared, shared)
    assert net.parameters() == [shared.weight, shared.bias]   # listed once
    net.zero_grad()
    net.forward(x)
    net.backward(g)
    np.testing.assert_allclose(shared.weight.grad, 2 * single.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(shared.bias.grad, 2 * single.bias.grad, rtol=1e-12)


def test_shared_module_gradient_is_the_sum_over_its_uses(rng):
    shared = dn.Linear(3, 3, rng=0, dtype="float64")
    a, b = dn.Linear(3, 3, rng=0, dtype="float64"), dn.Linear(3, 3, rng=0, dtype="float64")
    tied, untied = dn.Sequential(shared, dn.Tanh(), shared), dn.Sequential(a, dn.Tanh(), b)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    np.testing.assert_allclose(tied.forward(x), untied.forward(x), rtol=1e-12)
    np.testing.assert_allclose(tied.backward(g), untied.backward(g), rtol=1e-12)
    np.testing.assert_allclose(shared.weight.grad, a.weight.grad + b.weight.grad, rtol=1e-12)
    np.testing.assert_allclose(shared.bias.grad, a.bias.grad + b.bias.grad, rtol=1e-12)


# -- Linear ----------------------------------------------------------------------------------------------------------
def test_linear_forward_and_backward_by_hand():
    layer = dn.Linear(2, 3, rng=0, dtype="float64")
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (3,)
    _set(layer.weight, [[1, 2], [3, 4], [5, 6]])
    _set(layer.bias, [0.5, -1, 0])
    x = np.array([[1.0, -1.0], [0.0, 2.0]])
    # z = W x + b per row: [1-2+.5, 3-4-1, 5-6] and [4+.5, 8-1, 12]
    np.testing.assert_allclose(layer.forward(x), [[-0.5, -2.0, -1.0], [4.5, 7.0, 12.0]])
    grad_in = layer.backward(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(grad_in, [[11.0, 14.0], [3.0, 4.0]])          # delta W
    np.testing.assert_allclose(layer.weight.grad, [[1, -1], [0, 2], [2, -2]])  # delta^T x
    np.testing.assert_allclose(layer.bias.grad, [1, 1, 2])                   # sum of delta


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (2, 2, 3, 4)])
def test_linear_on_extra_batch_axes_equals_flattened_rows(shape, rng):
    layer = dn.Linear(4, 3, rng=0, dtype="float64")
    x, g = rng.standard_normal(shape), rng.standard_normal((*shape[:-1], 3))
    out = layer.forward(x)
    assert out.shape == (*shape[:-1], 3) == layer.output_shape(shape)
    grad_in = layer.backward(g)
    w_grad = layer.weight.grad.copy()
    flat = dn.Linear(4, 3, rng=0, dtype="float64")
    np.testing.assert_allclose(out.reshape(-1, 3), flat.forward(x.reshape(-1, 4)), rtol=1e-12)
    np.testing.assert_allclose(grad_in.reshape(-1, 4), flat.backward(g.reshape(-1, 3)), rtol=1e-12)
    np.testing.assert_allclose(w_grad, flat.weight.grad, rtol=1e-12)


def test_linear_without_bias_has_one_parameter():
    layer = dn.Linear(3, 2, bias=False, rng=0)
    assert layer.bias is None and [p.name for p in layer.parameters()] == ["weight"]
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_allclose(layer.forward(x), layer.weight.value.sum(axis=1)[None, :], rtol=1e-6)


def test_flops_count_the_matrix_products():
    net = dn.Sequential(dn.Linear(4, 8, rng=0), dn.ReLU(), dn.Linear(8, 3, rng=1))
    assert dn.count_flops(net, (32, 4)) == 2 * (4 * 8 + 8 * 3)
    assert net.output_shape((32, 4)) == (32, 3)


# -- BatchNorm -----------------------------------------------------------------------------------------------------
def test_batchnorm_training_forward_and_running_stats_by_hand():
    bn = dn.BatchNorm(2, eps=1e-5, momentum=0.1, dtype="float64")
    _set(bn.gamma, [2.0, 1.0])
    _set(bn.beta, [0.5, 0.0])
    x = np.array([[1.0, 0.0], [3.0, 0.0], [5.0, 6.0], [7.0, 6.0]])
    # column 0: mean 4, biased variance (9+1+1+9)/4 = 5, unbiased 20/3; column 1: mean 3, variance 9, unbiased 12
    y = bn.forward(x, training=True)
    expected = np.array([[2 * -3 / np.sqrt(5 + 1e-5) + 0.5, -3 / np.sqrt(9 + 1e-5)],
                         [2 * -1 / np.sqrt(5 + 1e-5) + 0.5, -3 / np.sqrt(9 + 1e-5)],
                         [2 * 1 / np.sqrt(5 + 1e-5) + 0.5, 3 / np.sqrt(9 + 1e-5)],
                         [2 * 3 / np.sqrt(5 + 1e-5) + 0.5, 3 / np.sqrt(9 + 1e-5)]])
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, [0.1 * 4, 0.1 * 3], rtol=1e-12)          # 0.9 * 0 + 0.1 * mu
    np.testing.assert_allclose(bn.running_var, [0.9 + 0.1 * 20 / 3, 0.9 + 0.1 * 12], rtol=1e-12)  # 0.9 * 1 + 0.1 * var_unbiased
    bn.forward(x, training=True)
    np.testing.assert_allclose(bn.running_mean, [0.9 * 0.4 + 0.4, 0.9 * 0.3 + 0.3], rtol=1e-12)


def test_batchnorm_eval_uses_running_stats_and_does_not_update_them():
    bn = dn.BatchNorm(1, eps=1e-5, dtype="float64")
    bn.running_mean[...] = 2.0
    bn.running_var[...] = 4.0
    _set(bn.gamma, [3.0])
    _set(bn.beta, [1.0])
    y = bn.forward(np.array([[2.0], [6.0], [0.0]]))
    np.testing.assert_allclose(y[:, 0], [1.0, 3 * 4 / np.sqrt(4 + 1e-5) + 1, 3 * -2 / np.sqrt(4 + 1e-5) + 1], rtol=1e-12)
    assert bn.running_mean[0] == 2.0 and bn.running_var[0] == 4.0
    np.testing.assert_allclose(bn.backward(np.ones((3, 1))), np.full((3, 1), 3 / np.sqrt(4 + 1e-5)), rtol=1e-12)


def test_batchnorm_training_output_is_normalized_per_feature_over_all_batch_axes(rng):
    bn = dn.BatchNorm(3, dtype="float64")
    x = rng.standard_normal((4, 5, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]
    y = bn.forward(x, training=True).reshape(-1, 3)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-3)   # eps = 1e-5 shrinks it a little
    g = rng.standard_normal((4, 5, 3))
    bn.backward(g)
    np.testing.assert_allclose(bn.beta.grad, g.reshape(-1, 3).sum(axis=0), rtol=1e-12)


# -- Dropout -------------------------------------------------------------------------------------------------------
def test_dropout_keeps_1_minus_rate_and_preserves_the_mean():
    rate = 0.3
    drop = dn.Dropout(rate, rng=0)
    x = np.full((400, 500), 2.0, dtype=np.float32)
    out = drop.forward(x, training=True)
    kept = out != 0
    assert abs(kept.mean() - (1 - rate)) < 0.005                     # binomial std ~ 0.0007
    np.testing.assert_allclose(out[kept], 2.0 / (1 - rate), rtol=1e-6)  # inverted scaling by 1/p
    assert abs(out.mean() - 2.0) < 0.02                               # E[out] = x
    g = np.ones_like(x)
    np.testing.assert_allclose(drop.backward(g), out / 2.0, rtol=1e-6)  # dL/dh = g m / p


def test_dropout_eval_is_identity_and_same_seed_same_mask(rng):
    x = rng.standard_normal((8, 16)).astype(np.float32)
    drop = dn.Dropout(0.5, rng=3)
    np.testing.assert_array_equal(drop.forward(x), x)
    np.testing.assert_array_equal(drop.backward(x), x)
    a, b, c = dn.Dropout(0.5, rng=3), dn.Dropout(0.5, rng=3), dn.Dropout(0.5, rng=4)
    out_a = a.forward(x, training=True)
    np.testing.assert_array_equal(out_a, b.forward(x, training=True))
    assert not np.array_equal(out_a != 0, c.forward(x, training=True) != 0)
    assert not np.array_equal(out_a != 0, a.forward(x, training=True) != 0)  # a new mask per batch
    assert a.generators() == [a.rng]


def test_dropout_rate_zero_and_integer_input():
    drop = dn.Dropout(0.0, rng=0)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(drop.forward(x, training=True), x)
    out = dn.Dropout(0.5, rng=0).forward(np.ones((2, 3), dtype=np.int64), training=True)
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 2.0}


# -- containers ----------------------------------------------------------------------------------------------------
def test_sequential_chains_and_backpropagates_in_reverse():
    net = dn.Sequential(dn.Linear(1, 1, rng=0, dtype="float64"), dn.ReLU(), dn.Linear(1, 1, rng=1, dtype="float64"))
    _set(net[0].weight, [[2.0]])
    _set(net[0].bias, [-1.0])
    _set(net[2].weight, [[3.0]])
    _set(net[2].bias, [0.5])
    x = np.array([[1.0], [0.0]])
    # row 0: relu(2 - 1) = 1 -> 3.5; row 1: relu(-1) = 0 -> 0.5
    np.testing.assert_allclose(net.forward(x), [[3.5], [0.5]])
    np.testing.assert_allclose(net.backward(np.ones((2, 1))), [[6.0], [0.0]])   # 3 * [z > 0] * 2
    np.testing.assert_allclose(net[0].weight.grad, [[3.0]])                       # only row 0 is active
    assert len(net) == 3 and list(net)[1] is net[1]
    assert [type(m).__name__ for m in net[1:]] == ["ReLU", "Linear"]


def test_residual_adds_the_input_and_its_gradient():
    block = dn.Linear(2, 2, rng=0, dtype="float64")
    _set(block.weight, [[1.0, 2.0], [3.0, -1.0]])
    _set(block.bias, [0.0, 1.0])
    res = dn.Residual(block)
    x = np.array([[1.0, 2.0]])
    # block(x) = [1 + 4 + 0, 3 - 2 + 1] = [5, 2], plus x = [6, 4]
    np.testing.assert_allclose(res.forward(x), [[6.0, 4.0]])
    # grad = g W + g = [1 + 3, 2 - 1] + [1, 1] = [5, 2] for g = [1, 1]
    np.testing.assert_allclose(res.backward(np.array([[1.0, 1.0]])), [[5.0, 2.0]])


def test_residual_width_change_needs_a_projection():
    with pytest.raises(ValueError, match=r"block output shape \(2, 3\) != skip shape \(2, 4\); pass projection="):
        dn.Residual(dn.Linear(4, 3, rng=0)).forward(np.ones((2, 4)))
    res = dn.Residual(dn.Linear(4, 3, rng=0), projection=dn.Linear(4, 3, bias=False, rng=1))
    assert res.forward(np.ones((2, 4))).shape == (2, 3)


# -- descriptions and state --------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", every_module(), ids=lambda m: type(m).__name__)
def test_config_round_trip(module):
    config = module.config()
    assert json.loads(json.dumps(config)) == config
    rebuilt = dn.build(config)
    assert type(rebuilt) is type(module)
    assert rebuilt.config() == config
    assert [(n, p.shape, p.dtype, p.decay) for n, p in rebuilt.named_parameters()] == \
           [(n, p.shape, p.dtype, p.decay) for n, p in module.named_parameters()]


@pytest.mark.parametrize("module", every_module(), ids=lambda m: type(m).__name__)
def test_state_dict_round_trip(module, rng):
    for p in module.parameters():
        p.value[...] = rng.standard_normal(p.shape)
    for name, buf in module.named_buffers():
        buf[...] = rng.uniform(0.5, 2.0, buf.shape) if name.endswith("var") else rng.standard_normal(buf.shape)
    clone = dn.build(module.config())
    clone.load_state_dict({k: v.copy() for k, v in module.state_dict().items()})
    assert clone.state_dict().keys() == module.state_dict().keys()
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(clone.state_dict()[k], v)
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(clone.forward(x), module.forward(x))


def test_load_state_dict_rejects_wrong_names_and_shapes():
    net = dn.Sequential(dn.Linear(3, 2, rng=0), dn.BatchNorm(2))
    state = {k: v.copy() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing \['1.running_var'\], unexpected \['1.running_varx'\]"):
        renamed = {("1.running_varx" if k == "1.running_var" else k): v for k, v in state.items()}
        net.load_state_dict(renamed)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 2\), expected \(2, 3\)"):
        net.load_state_dict({**state, "0.weight": np.zeros((3, 2))})


def test_build_rejects_unknown_types_and_bad_parameters():
    with pytest.raises(ValueError, match=r"unknown module type 'Conv2d'; known types: .*Linear.*ReLU.*Sigmoid"):
        dn.build({"type": "Conv2d"})
    with pytest.raises(ValueError, match="bad parameters for Linear"):
        dn.build({"type": "Linear", "in_features": 3, "out_features": 2, "colour": "red"})
    with pytest.raises(ValueError, match="a dict with a 'type' key"):
        dn.build(["Linear"])
    for name in ("Linear", "BatchNorm", "Dropout", "Sequential", "Residual", "Sigmoid", "Tanh", "ReLU", "LeakyReLU",
                 "Softmax", "Identity"):
        assert name in dn.modules.registered_types()
