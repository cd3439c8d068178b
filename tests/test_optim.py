"""Optimizers: the published update rules by hand, weight decay, validation, state_dict, equivalence with PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import deltanet as dn
from conftest import checkpoint_roundtrip
from deltanet.optim import OPTIMIZERS, SGD, Adam, AdamW, RMSprop, get_optimizer

# every test here runs with the compiled optimizer kernels and with the NumPy reference rules
pytestmark = pytest.mark.usefixtures("every_path")

W0 = np.array([1.0, -2.0])
GRADS = [np.array([0.5, -1.0]), np.array([-0.25, 2.0]), np.array([1.5, 0.125]), np.array([-0.75, -0.5])]


def run(opt_cls, grads=GRADS, w0=W0, decay=True, **hyper):
    """Apply ``opt_cls`` to a 2-element parameter with the fixed gradients; return the weights after each step."""
    p = dn.Parameter(w0.copy(), name="w", decay=decay)
    opt = opt_cls([p], **hyper)
    out = []
    for g in grads:
        p.grad = g
        opt.step()
        out.append(p.value.copy())
    return out


# -- the published rules, step by step, in the papers' notation ------------------------------------

def test_sgd_first_steps_by_hand():
    # lr 0.1, momentum 0.5: b1 = g1 = [0.5, -1];  w1 = [1, -2] - 0.1 [0.5, -1] = [0.95, -1.9]
    # b2 = 0.5 b1 + g2 = [0.25 - 0.25, -0.5 + 2] = [0, 1.5];  w2 = [0.95, -1.9 - 0.15] = [0.95, -2.05]
    w = run(SGD, GRADS[:2], lr=0.1, momentum=0.5)
    np.testing.assert_allclose(w[0], [0.95, -1.9], rtol=1e-15)
    np.testing.assert_allclose(w[1], [0.95, -2.05], rtol=1e-15)


@pytest.mark.parametrize("momentum, nesterov, wd", [(0.0, False, 0.0), (0.0, False, 0.1), (0.9, False, 0.0),
                                                    (0.9, True, 0.0), (0.5, True, 0.05)])
def test_sgd_rule(momentum, nesterov, wd):
    lr = 0.1
    w, b, expected = W0.copy(), None, []
    for g in GRADS:
        g = g + wd * w                                 # L2: g <- g + lambda W
        if momentum:
            b = g if b is None else momentum * b + g   # b_1 = g_1, b_t = mu b_{t-1} + g_t
            g = g + momentum * b if nesterov else b
        w = w - lr * g
        expected.append(w)
    got = run(SGD, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def adam_by_hand(lr, b1, b2, eps, wd, decoupled):
    w, m, v, out = W0.copy(), np.zeros(2), np.zeros(2), []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            w = w - lr * wd * w                        # AdamW: W <- W - alpha lambda W
        else:
            g = g + wd * w                             # Adam: g <- g + lambda W
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("betas, eps, wd", [((0.9, 0.999), 1e-8, 0.0), ((0.8, 0.99), 1e-3, 0.1), ((0.0, 0.5), 1e-12, 0.02)])
def test_adam_rule(cls, betas, eps, wd):
    lr = 0.01
    got = run(cls, lr=lr, betas=betas, eps=eps, weight_decay=wd)
    np.testing.assert_allclose(got, adam_by_hand(lr, *betas, eps, wd, decoupled=cls is AdamW), rtol=1e-13)


def test_adam_first_step_is_lr_times_sign():
    # t = 1: m_hat = g and v_hat = g^2, so the step is alpha g / (|g| + eps) ~ alpha sign(g) (Kingma & Ba, sec. 2.1)
    lr, eps = 0.01, 1e-8
    (w1,) = run(Adam, GRADS[:1], lr=lr, eps=eps)
    g = GRADS[0]
    np.testing.assert_allclose(w1, W0 - lr * g / (np.abs(g) + eps), rtol=1e-15)
    np.testing.assert_allclose(w1, W0 - lr * np.sign(g), rtol=1e-7)


@pytest.mark.parametrize("alpha, eps, momentum, wd, centered", [(0.99, 1e-8, 0.0, 0.0, False), (0.9, 1e-4, 0.9, 0.0, False),
                                                                (0.9, 1e-8, 0.0, 0.1, True), (0.5, 1e-6, 0.5, 0.05, True)])
def test_rmsprop_rule(alpha, eps, momentum, wd, centered):
    lr = 0.01
    w, v, a, b, expected = W0.copy(), np.zeros(2), np.zeros(2), np.zeros(2), []
    for g in GRADS:
        g = g + wd * w
        v = alpha * v + (1 - alpha) * g**2
        s = v
        if centered:
            a = alpha * a + (1 - alpha) * g
            s = v - a**2
        if momentum:
            b = momentum * b + g / (np.sqrt(s) + eps)
            w = w - lr * b
        else:
            w = w - lr * g / (np.sqrt(s) + eps)
        expected.append(w)
    got = run(RMSprop, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=wd, centered=centered)
    np.testing.assert_allclose(got, expected, rtol=1e-13)


def test_rmsprop_first_step_by_hand():
    # v1 = (1 - rho) g^2, so w1 = w0 - alpha g / (sqrt(1 - rho) |g| + eps)
    lr, rho = 0.01, 0.99
    (w1,) = run(RMSprop, GRADS[:1], lr=lr, alpha=rho, eps=1e-300)   # eps > 0; 1e-300 vanishes beside |g|
    np.testing.assert_allclose(w1, W0 - lr * np.sign(GRADS[0]) / math.sqrt(1 - rho), rtol=1e-14)


# -- weight decay only where p.decay -----------------------------------------------------------------

CONFIGS = [
    (SGD, {"lr": 0.1, "weight_decay": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (RMSprop, {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.1, "centered": True}),
]


@pytest.mark.parametrize("cls, hyper", CONFIGS)
def test_weight_decay_applies_to_weights_not_biases(cls, hyper):
    w = dn.Parameter(W0.copy(), name="weight", decay=True)
    b = dn.Parameter(W0.copy(), name="bias", decay=False)
    opt = cls([w, b], **hyper)
    for _ in range(3):
        w.grad = np.zeros(2)                 # with a zero loss gradient only the decay moves a parameter
        b.grad = np.zeros(2)
        opt.step()
    np.testing.assert_array_equal(b.value, W0)
    assert np.all(np.abs(w.value) < np.abs(W0))          # shrunk towards 0
    zero_grads = [np.zeros(2)] * 3
    np.testing.assert_allclose(w.value, run(cls, zero_grads, **hyper)[-1], rtol=0)  # same as alone


def test_adamw_decay_is_decoupled():
    # zero loss gradient: AdamW only multiplies by (1 - alpha lambda); Adam's L2 goes through the moments
    lr, wd = 0.01, 0.1
    got = run(AdamW, [np.zeros(2)] * 3, lr=lr, weight_decay=wd)
    np.testing.assert_allclose(got[-1], W0 * (1 - lr * wd) ** 3, rtol=1e-15)
    (adam1,) = run(Adam, [np.zeros(2)], lr=lr, weight_decay=wd)
    np.testing.assert_allclose(adam1, W0 - lr * np.sign(W0), rtol=1e-6)


@pytest.mark.parametrize("cls, hyper", CONFIGS)
def test_step_does_not_modify_the_gradient(cls, hyper):
    p = dn.Parameter(W0.copy(), decay=True)
    opt = cls([p], **hyper)
    for g in GRADS:
        p.grad = g
        opt.step()
        np.testing.assert_array_equal(p.grad, g)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mixed_dtypes_and_shapes(name):
    # the scratch space is per dtype and as large as the largest parameter
    params = [dn.Parameter(np.ones((3, 4), dtype=np.float32)), dn.Parameter(np.ones(5, dtype=np.float64), decay=False),
              dn.Parameter(np.ones(2, dtype=np.float32), decay=False)]
    opt = get_optimizer(name, params, lr=0.1)
    for p in params:
        p.grad = np.full(p.shape, 0.5, dtype=p.dtype)
    opt.step()
    for p in params:
        assert p.value.dtype == p.grad.dtype
        assert np.all(p.value < 1) and np.all(p.value == p.value.flat[0])


# -- hyper-parameter validation -------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, error, message", [
    (SGD, {"lr": -0.1}, ValueError, "lr must be > 0, got -0.1"),
    (SGD, {"lr": 0.0}, ValueError, "lr must be > 0, got 0.0"),
    (Adam, {"lr": float("nan")}, ValueError, "lr must be a finite number > 0, got nan"),
    (SGD, {"lr": "fast"}, TypeError, r"lr must be a number > 0, got 'fast' \(str\)"),
    (SGD, {"lr": "0.1"}, TypeError, r"lr must be a number > 0, got '0.1' \(str\)"),
    (SGD, {"lr": 0.1, "momentum": 1.5}, ValueError, r"momentum must be in \[0, 1\), got 1.5"),
    (SGD, {"lr": 0.1, "nesterov": True}, ValueError, "nesterov=True needs momentum > 0"),
    (SGD, {"lr": 0.1, "weight_decay": -1}, ValueError, "weight_decay must be >= 0, got -1"),
    (Adam, {"betas": (1.0, 0.999)}, ValueError, r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (AdamW, {"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be in \[0, 1\), got -0.1"),
    (Adam, {"betas": 0.9}, ValueError, r"betas must be a pair \(beta1, beta2\), got 0.9"),
    (Adam, {"eps": -1e-8}, ValueError, "eps must be > 0, got -1e-08"),
    (RMSprop, {"eps": 0.0}, ValueError, "eps must be > 0, got 0.0"),      # 0 / 0 for a gradient that stays 0
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": "yes"}, TypeError, r"nesterov must be True or False, got 'yes'"),
    (AdamW, {"weight_decay": -0.01}, ValueError, "weight_decay must be >= 0, got -0.01"),
    (RMSprop, {"alpha": 1.0}, ValueError, r"alpha must be in \[0, 1\), got 1.0"),
    (RMSprop, {"momentum": -0.5}, ValueError, r"momentum must be in \[0, 1\), got -0.5"),
])
def test_hyperparameter_validation(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls([dn.Parameter(W0.copy())], **kwargs)


def test_parameter_list_validation():
    p = dn.Parameter(W0.copy())
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(ValueError, match="more than once"):
        Adam([p, p])
    with pytest.raises(TypeError, match=r"expected Parameters .* got ndarray"):
        Adam([W0])


def test_get_optimizer():
    params = [dn.Parameter(W0.copy())]
    for name, cls in OPTIMIZERS.items():
        assert type(get_optimizer(name.upper(), params)) is cls
    opt = get_optimizer("adam", params, lr=None, weight_decay=0.1)
    assert (opt.lr, opt.weight_decay) == (1e-3, 0.1)
    assert get_optimizer("sgd", params, lr=0.5, momentum=0.9).momentum == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; choose one of: sgd, adam, adamw, rmsprop"):
        get_optimizer("adagrad", params)
    with pytest.raises(TypeError, match=r"optimizer 'sgd' .*momentom"):
        get_optimizer("sgd", params, momentom=0.9)
    assert repr(get_optimizer("sgd", params, lr=0.5)) == "SGD(lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.0)"


# -- state_dict: resume exactly ---------------------------------------------------------------------------

ALL_CONFIGS = [*CONFIGS, (SGD, {"lr": 0.05, "momentum": 0.9}), (AdamW, {"lr": 0.01, "betas": (0.8, 0.9)}),
               (RMSprop, {"lr": 0.01})]


def make_params():
    rng = np.random.default_rng(0)
    return [dn.Parameter(rng.normal(size=(3, 2)), name="w", decay=True), dn.Parameter(rng.normal(size=3), name="b", decay=False)]


def quadratic_step(opt):
    # a gradient that depends on the weights, as in training: L = sum (p - 1)^2 / 2 - 0.1 cos(3 p)
    for p in opt.params:
        p.grad = p.value - 1 + 0.3 * np.sin(3 * p.value)
    opt.step()


@pytest.mark.parametrize("cls, hyper", ALL_CONFIGS)
def test_state_dict_round_trip_continues_identically(cls, hyper):
    a = cls(make_params(), **hyper)
    for _ in range(7):
        quadratic_step(a)
    state = checkpoint_roundtrip(a.state_dict())
    b_params = make_params()
    for pa, pb in zip(a.params, b_params, strict=True):
        pb.value[...] = pa.value
    b = cls(b_params, lr=0.123)                  # hyper-parameters come back from the state
    b.load_state_dict(state)
    assert b.hyperparameters() == a.hyperparameters() and b.step_count == 7
    for _ in range(8):
        quadratic_step(a)
        quadratic_step(b)
    for pa, pb in zip(a.params, b.params, strict=True):
        assert np.all(np.isfinite(pa.value))
        np.testing.assert_array_equal(pa.value, pb.value)


def test_state_dict_is_a_copy_and_checked():
    opt = Adam(make_params())
    quadratic_step(opt)
    state = opt.state_dict()
    assert sorted(state["state"]) == ["0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq"]
    state["state"]["0.exp_avg"][...] = 99.0
    assert not np.any(opt.state[0]["exp_avg"] == 99.0)
    with pytest.raises(ValueError, match="state is for 'Adam', not AdamW"):
        AdamW(make_params()).load_state_dict(state)
    bad = {**state, "state": {"0.exp_avg": np.zeros(4)}}
    with pytest.raises(ValueError, match=r"'0.exp_avg' has shape \(4,\), parameter 'w' has shape \(3, 2\)"):
        Adam(make_params()).load_state_dict(bad)
    bad = {**state, "state": {"5.exp_avg": np.zeros(3)}}
    with pytest.raises(ValueError, match="does not match the 2 parameters"):
        Adam(make_params()).load_state_dict(bad)
    bad = {**state, "hyperparameters": {"lr": 0.1, "momentum": 0.9}}
    with pytest.raises(ValueError, match=r"unknown hyper-parameters \['momentum'\]"):
        Adam(make_params()).load_state_dict(bad)


# -- equivalence with PyTorch ----------------------------------------------------------------------------

TORCH_CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    ("sgd", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.05}),
    ("adam", {"lr": 1e-2}),
    ("adam", {"lr": 5e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}),
    ("adamw", {"lr": 1e-2}),
    ("adamw", {"lr": 5e-3, "betas": (0.85, 0.95), "weight_decay": 0.1}),
    ("rmsprop", {"lr": 1e-3}),
    ("rmsprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.9, "weight_decay": 1e-2}),
    ("rmsprop", {"lr": 1e-3, "momentum": 0.5, "centered": True}),
]


@pytest.mark.parametrize("name, hyper", TORCH_CONFIGS)
def test_same_weights_as_pytorch(name, hyper):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)                              # tiny tensors: threads only add contention
    torch_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                 "rmsprop": torch.optim.RMSprop}[name]
    rng = np.random.default_rng(1)
    x_all = rng.normal(size=(64, 5))
    y_all = rng.integers(0, 3, size=64)

    net = dn.mlp([5, 8, 6, 3], activation="tanh", rng=0, dtype="float64")
    ref = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6), torch.nn.Tanh(),
                              torch.nn.Linear(6, 3)).double()
    with torch.no_grad():
        for (n, p), (tn, tp) in zip(net.named_parameters(), ref.named_parameters(), strict=True):
            assert n == tn
            tp.copy_(torch.from_numpy(p.value))

    initial = [p.value.copy() for p in net.parameters()]
    opt = get_optimizer(name, net.parameters(), **hyper)
    # our rule decays only weights: give torch weight_decay=0 for the biases
    decayed = [tp for p, tp in zip(net.parameters(), ref.parameters(), strict=True) if p.decay]
    plain = [tp for p, tp in zip(net.parameters(), ref.parameters(), strict=True) if not p.decay]
    default_wd = {"adamw": 1e-2}.get(name, 0.0)
    torch_opt = torch_cls([{"params": decayed}, {"params": plain, "weight_decay": 0.0}],
                          **{**hyper, "weight_decay": hyper.get("weight_decay", default_wd)})
    loss_fn = dn.SoftmaxCrossEntropy()

    for step in range(60):
        idx = rng.choice(64, size=16, replace=False)
        x, y = x_all[idx], y_all[idx]
        lr = hyper["lr"] * 0.98**step                     # the rate may change between steps (schedules)
        opt.lr = lr
        for group in torch_opt.param_groups:
            group["lr"] = lr

        loss = loss_fn.forward(net.forward(x, training=True), y)
        net.zero_grad()
        net.backward(loss_fn.backward())
        opt.step()

        torch_opt.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        torch_loss.backward()
        torch_opt.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-10)

    for p, tp, p0 in zip(net.parameters(), ref.parameters(), initial, strict=True):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
        assert np.max(np.abs(p.value - p0)) > 1e-3        # every parameter really trained
