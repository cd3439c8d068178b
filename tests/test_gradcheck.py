"""Finite-difference gradient checks, in float64, for every module and every loss.

Every case checks the input gradient and every parameter gradient against
central differences (``dn.gradcheck``, all entries) and asks for a relative
error below 1e-6. Inputs are kept at least 0.1 away from 0, the kink of ReLU
and LeakyReLU. ``python tests/test_gradcheck.py`` prints the worst error per
module and loss over all cases.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import deltanet as dn

TOL = 1e-6


def off_kinks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random values with |x| >= 0.1 (no entry within reach of a kink at 0)."""
    return rng.choice([-1.0, 1.0], size=shape) * (0.1 + np.abs(rng.standard_normal(shape)))


def randomize(module: dn.Module, rng: np.random.Generator) -> dn.Module:
    """Random parameters (biases and beta would otherwise start at 0) and running statistics."""
    for p in module.parameters():
        p.value[...] = rng.standard_normal(p.shape) * 0.7
    for name, buf in module.named_buffers():
        buf[...] = rng.uniform(0.5, 2.0, buf.shape) if name.endswith("running_var") else rng.standard_normal(buf.shape)
    return module


# -- module cases: (table name, factory, input shape, training) -------------------------------------------------
def _shared_linear() -> dn.Module:
    lin = dn.Linear(4, 4, rng=1)
    return dn.Sequential(lin, dn.Tanh(), lin)


def _shared_nested() -> dn.Module:
    inner = dn.Sequential(dn.Linear(4, 4, rng=2), dn.Sigmoid())
    lin = dn.Linear(4, 4, rng=3)
    return dn.Sequential(inner, dn.Residual(dn.Sequential(lin, dn.Tanh())), inner, lin)


MODULE_CASES: list[tuple[str, Callable[[], dn.Module], tuple[int, ...], bool]] = [
    ("Linear", lambda: dn.Linear(4, 3, rng=0), (5, 4), False),
    ("Linear", lambda: dn.Linear(4, 3, rng=0), (2, 3, 4), False),
    ("Linear", lambda: dn.Linear(4, 3, rng=0), (2, 2, 3, 4), False),
    ("Linear", lambda: dn.Linear(4, 3, bias=False, rng=0), (5, 4), False),
    ("Linear", lambda: dn.Linear(1, 1, rng=0), (3, 1), False),
    ("Identity", dn.Identity, (5, 4), False),
    ("Identity", dn.Identity, (2, 3, 4), False),
    ("Sigmoid", dn.Sigmoid, (5, 4), False),
    ("Sigmoid", dn.Sigmoid, (2, 3, 4), False),
    ("Tanh", dn.Tanh, (5, 4), False),
    ("Tanh", dn.Tanh, (2, 3, 4), False),
    ("ReLU", dn.ReLU, (5, 4), False),
    ("ReLU", dn.ReLU, (2, 3, 4), False),
    ("LeakyReLU", dn.LeakyReLU, (5, 4), False),
    ("LeakyReLU", lambda: dn.LeakyReLU(alpha=0.2), (2, 3, 4), False),
    ("Softmax", dn.Softmax, (5, 4), False),
    ("Softmax", dn.Softmax, (2, 3, 4), False),
    ("Softmax", lambda: dn.Softmax(axis=1), (2, 3, 4), False),
    ("Softmax", lambda: dn.Softmax(axis=0), (5, 4), False),
    ("BatchNorm", lambda: dn.BatchNorm(4), (6, 4), True),
    ("BatchNorm", lambda: dn.BatchNorm(4), (6, 4), False),
    ("BatchNorm", lambda: dn.BatchNorm(4), (2, 3, 4), True),
    ("BatchNorm", lambda: dn.BatchNorm(4), (2, 3, 4), False),
    ("BatchNorm", lambda: dn.BatchNorm(1, eps=1e-3), (2, 1), True),
    ("Dropout", lambda: dn.Dropout(0.3, rng=0), (5, 4), True),
    ("Dropout", lambda: dn.Dropout(0.3, rng=0), (5, 4), False),
    ("Dropout", lambda: dn.Dropout(0.5, rng=1), (2, 3, 4), True),
    ("Dropout", lambda: dn.Dropout(0.0, rng=1), (2, 3, 4), True),
    ("Sequential", lambda: dn.Sequential(dn.Linear(4, 6, rng=0), dn.Tanh(), dn.Linear(6, 3, rng=1)), (5, 4), False),
    ("Sequential", lambda: dn.Sequential(dn.Linear(4, 6, rng=0), dn.ReLU(), dn.Linear(6, 3, rng=1)), (2, 3, 4), False),
    ("Sequential", lambda: dn.mlp([4, 6, 5, 3], activation="leaky_relu", batch_norm=True, dropout=0.2, rng=0), (8, 4), True),
    ("Sequential", lambda: dn.mlp([4, 6, 5, 3], activation="leaky_relu", batch_norm=True, dropout=0.2, rng=0), (8, 4), False),
    ("Sequential", lambda: dn.mlp([4, 5, 3], activation="sigmoid", batch_norm=True, rng=0), (2, 3, 4), True),
    ("Sequential", _shared_linear, (5, 4), False),
    ("Sequential", _shared_nested, (5, 4), False),
    ("Residual", lambda: dn.Residual(dn.Sequential(dn.Linear(4, 4, rng=0), dn.Tanh())), (5, 4), False),
    ("Residual", lambda: dn.Residual(dn.Sequential(dn.Linear(4, 4, rng=0), dn.Tanh())), (2, 3, 4), False),
    ("Residual", lambda: dn.Residual(dn.Sequential(dn.Linear(4, 6, rng=0), dn.Sigmoid()), dn.Linear(4, 6, bias=False, rng=1)),
     (5, 4), False),
    ("Residual", lambda: dn.Residual(dn.Sequential(dn.BatchNorm(4), dn.Dropout(0.25, rng=3))), (6, 4), True),
]


def _module_id(case: tuple) -> str:
    name, _, shape, training = case
    return f"{name}-{'x'.join(map(str, shape))}-{'train' if training else 'eval'}"


def run_module_case(case: tuple, seed: int = 0) -> dn.GradcheckResult:
    _, make, shape, training = case
    rng = np.random.default_rng(seed)
    with dn.backend.default_dtype("float64"):
        module = randomize(make(), rng)
    return dn.gradcheck(module, off_kinks(rng, shape), training=training, max_entries=None, tol=TOL, raise_on_fail=False)


@pytest.mark.parametrize("case", MODULE_CASES, ids=[_module_id(c) for c in MODULE_CASES])
def test_module_gradients(case):
    _, make, shape, _ = case
    with dn.backend.default_dtype("float64"):
        names = {name for name, _ in make().named_parameters()}
    result = run_module_case(case)
    assert set(result.errors) == {"input"} | names          # the input and every parameter were checked
    assert result.checked["input"] == int(np.prod(shape))    # every entry
    assert result.worst < TOL, str(result)


# -- loss cases: (table name, factory, output shape, target maker) ----------------------------------------------
class WithWeights(dn.Loss):
    """A loss with a fixed sample_weight, so that gradcheck (which passes no weights) covers the weighted gradient."""

    def __init__(self, loss: dn.Loss, weights: np.ndarray) -> None:
        super().__init__()
        self.loss, self.weights = loss, weights

    def forward(self, output, target, sample_weight=None):
        return self.loss.forward(output, target, self.weights)

    def backward(self):
        return self.loss.backward()


def _labels(rng, shape):
    return rng.integers(0, shape[-1], size=shape[:-1])


def _probs(rng, shape):
    p = rng.uniform(0.05, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


def _weights(n):
    return np.linspace(0.0, 2.0, n)


LOSS_CASES: list[tuple[str, Callable[[], dn.Loss], tuple[int, ...], Callable]] = [
    ("SoftmaxCrossEntropy", dn.SoftmaxCrossEntropy, (6, 4), _labels),
    ("SoftmaxCrossEntropy", dn.SoftmaxCrossEntropy, (2, 3, 4), _labels),
    ("SoftmaxCrossEntropy", dn.SoftmaxCrossEntropy, (5, 3), _probs),
    ("SoftmaxCrossEntropy", dn.SoftmaxCrossEntropy, (5, 3), lambda rng, s: rng.uniform(0, 1, s)),   # rows not summing to 1
    ("SoftmaxCrossEntropy", dn.SoftmaxCrossEntropy, (1, 2), _labels),
    ("SoftmaxCrossEntropy", lambda: WithWeights(dn.SoftmaxCrossEntropy(), _weights(6)), (6, 4), _labels),
    ("SoftmaxCrossEntropy", lambda: WithWeights(dn.SoftmaxCrossEntropy(), _weights(2)), (2, 3, 4), _labels),
    ("MeanSquaredError", dn.MeanSquaredError, (5, 3), lambda rng, s: rng.standard_normal(s)),
    ("MeanSquaredError", dn.MeanSquaredError, (5, 1), lambda rng, s: rng.standard_normal(s[0])),
    ("MeanSquaredError", dn.MeanSquaredError, (2, 3, 4), lambda rng, s: rng.standard_normal(s)),
    ("MeanSquaredError", lambda: WithWeights(dn.MeanSquaredError(), _weights(5)), (5, 3), lambda rng, s: rng.standard_normal(s)),
    ("BinaryCrossEntropyWithLogits", dn.BinaryCrossEntropyWithLogits, (6, 1), lambda rng, s: rng.integers(0, 2, s)),
    ("BinaryCrossEntropyWithLogits", dn.BinaryCrossEntropyWithLogits, (6, 1), lambda rng, s: rng.integers(0, 2, s[0])),
    ("BinaryCrossEntropyWithLogits", dn.BinaryCrossEntropyWithLogits, (5, 4), lambda rng, s: rng.integers(0, 2, s)),
    ("BinaryCrossEntropyWithLogits", dn.BinaryCrossEntropyWithLogits, (5, 4), lambda rng, s: rng.uniform(0, 1, s)),
    ("BinaryCrossEntropyWithLogits", lambda: WithWeights(dn.BinaryCrossEntropyWithLogits(), _weights(5)), (5, 4),
     lambda rng, s: rng.integers(0, 2, s)),
]


def run_loss_case(case: tuple, seed: int = 0, scale: float = 2.0) -> dn.GradcheckResult:
    _, make, shape, target = case
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * scale
    return dn.gradcheck(make(), z, target(rng, shape), max_entries=None, tol=TOL, raise_on_fail=False)


def _loss_id(case: tuple) -> str:
    name, make, shape, _ = case
    return f"{name}{'-weighted' if isinstance(make(), WithWeights) else ''}-{'x'.join(map(str, shape))}"


@pytest.mark.parametrize("case", LOSS_CASES, ids=[f"{_loss_id(c)}-{i}" for i, c in enumerate(LOSS_CASES)])
@pytest.mark.parametrize("scale", [0.5, 5.0])
def test_loss_gradients(case, scale):
    result = run_loss_case(case, scale=scale)
    assert result.checked["input"] == int(np.prod(case[2]))
    assert result.worst < TOL, str(result)


# -- the checker itself -------------------------------------------------------------------------------------------
class WrongTanh(dn.Tanh):
    """tanh with a wrong derivative (1 - h instead of 1 - h^2)."""

    registered = False

    def backward(self, grad_out):
        return grad_out * (1.0 - self._cached())


class ForgetsBias(dn.Linear):
    """A Linear whose backward leaves the bias gradient at zero."""

    registered = False

    def backward(self, grad_out):
        self.weight.accumulate_matmul(grad_out.T, self._x)
        return grad_out @ self.weight.value


def test_gradcheck_catches_a_wrong_input_gradient(rng):
    with pytest.raises(dn.GradcheckError, match=r"WrongTanh[\s\S]*input .*FAIL"):
        dn.gradcheck(WrongTanh(), rng.standard_normal((4, 3)))
    result = dn.gradcheck(WrongTanh(), rng.standard_normal((4, 3)), raise_on_fail=False)
    assert not result.passed
    assert result.worst > 0.1


def test_gradcheck_catches_a_wrong_parameter_gradient(rng):
    layer = randomize(ForgetsBias(3, 2, rng=0, dtype="float64"), rng)
    result = dn.gradcheck(layer, rng.standard_normal((4, 3)), raise_on_fail=False)
    assert result.errors["input"] < TOL and result.errors["weight"] < TOL
    assert result.errors["bias"] == pytest.approx(1.0)      # analytical 0 against a non-zero difference quotient
    assert "bias" in str(result) and "FAIL" in str(result)
    with pytest.raises(dn.GradcheckError, match="ForgetsBias"):
        dn.gradcheck(layer, rng.standard_normal((4, 3)))


def test_gradcheck_checks_float32_modules_through_a_float64_copy(rng):
    net = dn.Sequential(dn.Linear(3, 5, rng=0), dn.Tanh(), dn.Linear(5, 2, rng=1))
    before = {k: v.copy() for k, v in net.state_dict().items()}
    result = dn.gradcheck(net, rng.standard_normal((4, 3)))
    assert result.passed and result.worst < TOL
    assert set(result.errors) == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    for k, v in net.state_dict().items():                   # the float32 original is untouched
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, before[k])


def test_gradcheck_samples_at_most_max_entries(rng):
    layer = dn.Linear(20, 30, rng=0, dtype="float64")
    result = dn.gradcheck(layer, rng.standard_normal((8, 20)), max_entries=25)
    assert result.checked == {"input": 25, "weight": 25, "bias": 25}


def test_gradcheck_restores_batchnorm_buffers_and_dropout_generator(rng):
    net = dn.Sequential(dn.BatchNorm(3, dtype="float64"), dn.Dropout(0.5, rng=7))
    gen_state = net.generators()[0].bit_generator.state
    running = net[0].running_mean.copy()
    dn.gradcheck(net, rng.standard_normal((6, 3)), training=True)
    assert net.generators()[0].bit_generator.state == gen_state
    np.testing.assert_array_equal(net[0].running_mean, running)


def test_gradcheck_rejects_bad_arguments(rng):
    with pytest.raises(TypeError, match="y is for losses"):
        dn.gradcheck(dn.Tanh(), rng.standard_normal((2, 2)), np.zeros(2))
    with pytest.raises(TypeError, match="expected a Module or a Loss"):
        dn.gradcheck(np.tanh, rng.standard_normal((2, 2)))


def worst_table() -> dict[str, float]:
    """Worst relative error per module and loss over every case (and seeds 0-2)."""
    worst: dict[str, float] = {}
    for seed in range(3):
        for case in MODULE_CASES:
            worst[case[0]] = max(worst.get(case[0], 0.0), run_module_case(case, seed).worst)
        for case in LOSS_CASES:
            for scale in (0.5, 5.0):
                worst[case[0]] = max(worst.get(case[0], 0.0), run_loss_case(case, seed, scale).worst)
    return worst


if __name__ == "__main__":
    table = worst_table()
    width = max(map(len, table))
    print(f"{'module / loss':<{width}}  worst relative error (float64, central differences, all entries)")
    for name, err in table.items():
        print(f"{name:<{width}}  {err:.2e}")
