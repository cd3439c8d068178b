"""Fused optimizers (flat buffers): the same numbers as one update per parameter, and the flat layout's contract."""

from __future__ import annotations

import copy
import math
import pickle
import tracemalloc

import numpy as np
import pytest

import deltanet as dn
from conftest import checkpoint_roundtrip
from deltanet.accel import flat_grads
from deltanet.optim import SGD, Adam, AdamW, FlatBuffer, RMSprop, clip_grad_norm, flatten, grad_norm

# every test here runs with the compiled optimizer kernels and with the NumPy reference rules
pytestmark = pytest.mark.usefixtures("both_kernel_paths")

CONFIGS = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "weight_decay": 0.05}),
    (SGD, {"lr": 0.05, "momentum": 0.9}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (Adam, {"lr": 1e-2}),
    (Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    (AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (RMSprop, {"lr": 1e-3}),
    (RMSprop, {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.01}),
    (RMSprop, {"lr": 1e-3, "alpha": 0.9, "momentum": 0.5, "centered": True}),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in hyper.items())}" for cls, hyper in CONFIGS]
SMALL_CHUNK = 256        # bytes: many chunks, one of them cut at the decay boundary (64 float32 / 32 float64)


def train(net, opt, steps, seed=0, dtype="float64"):
    """``steps`` steps of softmax cross-entropy on random batches (the same batches for the same seed)."""
    rng = np.random.default_rng(seed)
    loss_fn = dn.SoftmaxCrossEntropy()
    for _ in range(steps):
        x = rng.normal(size=(16, 6)).astype(dtype)
        y = rng.integers(0, 3, size=16)
        loss_fn.forward(net.forward(x, training=True), y)
        net.zero_grad()
        net.backward(loss_fn.backward())
        opt.step()


def make_net(dtype="float64"):
    return dn.mlp([6, 20, 9, 3], activation="tanh", rng=0, dtype=dtype)


def assert_same(opt_a, opt_b):
    """Identical weights and optimizer state, bit for bit."""
    for pa, pb in zip(opt_a.params, opt_b.params, strict=True):
        np.testing.assert_array_equal(pa.value, pb.value)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["step_count"] == sb["step_count"] and sorted(sa["state"]) == sorted(sb["state"])
    for key, arr in sa["state"].items():
        np.testing.assert_array_equal(arr, sb["state"][key])


# -- fused and unfused: the same numbers --------------------------------------------------------------

@pytest.mark.parametrize("chunk", [None, SMALL_CHUNK])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls, hyper", CONFIGS, ids=IDS)
def test_fused_equals_unfused_bit_for_bit(cls, hyper, dtype, chunk):
    net_a, net_b = make_net(dtype), make_net(dtype)
    plain = cls(net_a.parameters(), fused=False, **hyper)
    fused = cls(net_b.parameters(), **hyper)
    assert fused.fused and not plain.fused
    fused._engine.chunk_bytes = chunk
    fused._engine.regroup()
    initial = [p.value.copy() for p in net_a.parameters()]
    train(net_a, plain, 25, dtype=dtype)
    train(net_b, fused, 25, dtype=dtype)
    assert_same(plain, fused)
    assert all(np.max(np.abs(p.value - p0)) > 1e-4 for p, p0 in zip(net_a.parameters(), initial, strict=True))


@pytest.mark.parametrize("cls, hyper", CONFIGS, ids=IDS)
def test_weight_decay_only_on_decay_parameters(cls, hyper):
    # zero loss gradients: only the decay moves a parameter, and only one marked decay=True
    def params():
        return [dn.Parameter(np.full((3, 4), 2.0), name="w0"), dn.Parameter(np.full(4, 2.0), name="b0", decay=False),
                dn.Parameter(np.full((2, 3), -1.0), name="w1"), dn.Parameter(np.full(2, 3.0), name="b1", decay=False)]
    a, b = params(), params()
    plain, fused = cls(a, fused=False, **hyper), cls(b, **hyper)
    for _ in range(4):
        for p in a + b:
            p.grad = np.zeros(p.shape)
        plain.step()
        fused.step()
    assert_same(plain, fused)
    np.testing.assert_array_equal(b[1].value, 2.0)
    np.testing.assert_array_equal(b[3].value, 3.0)
    if hyper.get("weight_decay", 0.1 if cls is AdamW else 0.0):
        assert np.all(np.abs(b[0].value) < 2.0) and np.all(np.abs(b[2].value) < 1.0)


def test_lazily_zeroed_gradients_read_as_zero():
    # step 1 leaves nonzero numbers in every parameter's slice of the flat gradient; zero_grad() only marks them
    # (lazy), and a parameter that receives no gradient in step 2 must count as zero, not as its stale numbers
    a, b = make_net(), make_net()
    plain, fused = Adam(a.parameters(), fused=False, lr=0.01), Adam(b.parameters(), lr=0.01)
    train(a, plain, 1)
    train(b, fused, 1)
    flat = fused.flat_buffers[0].grad
    assert np.count_nonzero(flat) > 0.9 * flat.size
    for net, opt in ((a, plain), (b, fused)):
        net.zero_grad()
        first = net.parameters()[0]
        first.accumulate(np.ones(first.shape))          # only the first weight gets a gradient
        opt.step()
    assert_same(plain, fused)
    np.testing.assert_array_equal(b.parameters()[1].grad, 0.0)
    assert np.count_nonzero(flat) == b.parameters()[0].size


def test_unused_parameter_in_the_list():
    # a parameter no backward ever touches: its gradient is lazily zero from the start
    def params():
        net = make_net()
        extra = dn.Parameter(np.ones((5, 2)), name="unused")
        extra.zero_grad()
        return net, [*net.parameters(), extra]
    (net_a, pa), (net_b, pb) = params(), params()
    plain, fused = AdamW(pa, fused=False, lr=0.01), AdamW(pb, lr=0.01)
    train(net_a, plain, 5)
    train(net_b, fused, 5)
    assert_same(plain, fused)
    np.testing.assert_allclose(pb[-1].value, (1 - 0.01 * 0.01) ** 5)       # only the decoupled decay moved it


@pytest.mark.parametrize("cls, hyper", [CONFIGS[3], CONFIGS[5], CONFIGS[8]], ids=[IDS[3], IDS[5], IDS[8]])
def test_mixed_dtypes_one_buffer_per_dtype(cls, hyper):
    def params():
        rng = np.random.default_rng(2)
        return [dn.Parameter(rng.normal(size=(4, 3)).astype(np.float32), name="w32"),
                dn.Parameter(rng.normal(size=5), name="w64"),
                dn.Parameter(rng.normal(size=3).astype(np.float32), name="b32", decay=False),
                dn.Parameter(rng.normal(size=(2, 2)), name="v64", decay=False)]
    a, b = params(), params()
    plain, fused = cls(a, fused=False, **hyper), cls(b, **hyper)
    assert b[0].value.base is b[2].value.base and b[1].value.base is b[3].value.base
    assert b[0].value.base is not b[1].value.base
    rng = np.random.default_rng(3)
    for _ in range(10):
        for pa, pb in zip(a, b, strict=True):
            pa.grad = pb.grad = rng.normal(size=pa.shape).astype(pa.dtype)
        plain.step()
        fused.step()
    assert_same(plain, fused)
    assert [p.value.dtype for p in b] == [np.float32, np.float64, np.float32, np.float64]


def test_subset_of_a_model():
    # an optimizer over the last layer only: the other parameters keep their arrays and values
    net_a, net_b = make_net(), make_net()
    first_b = net_b.parameters()[:2]
    arrays_before = [p.value for p in first_b]
    values_before = [p.value.copy() for p in first_b]
    plain, fused = SGD(net_a.parameters()[-2:], lr=0.1, momentum=0.9, fused=False), SGD(net_b.parameters()[-2:], lr=0.1, momentum=0.9)
    train(net_a, plain, 6)
    train(net_b, fused, 6)
    assert_same(plain, fused)
    for p, arr, v0 in zip(first_b, arrays_before, values_before, strict=True):
        assert p.value is arr
        np.testing.assert_array_equal(p.value, v0)


# -- state_dict between fused and unfused ---------------------------------------------------------------

@pytest.mark.parametrize("first_fused", [True, False])
@pytest.mark.parametrize("cls, hyper", CONFIGS, ids=IDS)
def test_state_dict_round_trip_between_fused_and_unfused(cls, hyper, first_fused):
    net_a = make_net()
    a = cls(net_a.parameters(), fused=first_fused, **hyper)
    train(net_a, a, 7, seed=1)
    net_b = make_net()
    net_b.load_state_dict(net_a.state_dict())
    b = cls(net_b.parameters(), fused=not first_fused, lr=0.5)
    b.load_state_dict(checkpoint_roundtrip(a.state_dict()))
    assert b.step_count == 7 and b.hyperparameters() == a.hyperparameters()
    assert_same(a, b)
    train(net_a, a, 6, seed=2)
    train(net_b, b, 6, seed=2)
    assert_same(a, b)


def test_fused_state_arrays_are_views_and_load_copies_into_them():
    net = make_net()
    opt = Adam(net.parameters(), lr=0.01)
    train(net, opt, 3)
    flat_m = opt._engine.groups[0].state["exp_avg"]
    assert all(st["exp_avg"].base is flat_m for st in opt.state)
    saved = opt.state_dict()
    train(net, opt, 2)
    opt.load_state_dict(saved)
    assert opt._engine.groups[0].state["exp_avg"] is flat_m                        # loaded in place, no new arrays
    for i, st in enumerate(opt.state):
        assert st["exp_avg"].base is flat_m
        np.testing.assert_array_equal(st["exp_avg"], saved["state"][f"{i}.exp_avg"])


def test_incomplete_state_is_refused_by_a_fused_optimizer_and_changes_nothing():
    net = make_net()
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9)
    train(net, opt, 2)
    state = opt.state_dict()
    before = opt.state_dict()
    del state["state"]["1.momentum_buffer"]
    state["step_count"] = 99
    with pytest.raises(ValueError, match=r"state 'momentum_buffer' exists for parameters .* but not for the others"):
        opt.load_state_dict(state)
    assert opt.step_count == 2
    for key, arr in before["state"].items():
        np.testing.assert_array_equal(opt.state_dict()["state"][key], arr)
    SGD(make_net().parameters(), lr=0.1, momentum=0.9, fused=False).load_state_dict(state)    # fine unfused


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickled_or_copied_optimizer_and_model_keep_training_together(how):
    # pickle and deepcopy store each view into a flat buffer as an array of its own; the copy must re-flatten
    net = make_net()
    opt = SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    train(net, opt, 3)
    net2, opt2 = pickle.loads(pickle.dumps((net, opt))) if how == "pickle" else copy.deepcopy((net, opt))
    assert opt2.params == net2.parameters()
    train(net, opt, 4, seed=1)
    train(net2, opt2, 4, seed=1)
    assert_same(opt, opt2)
    assert all(p.value.base is opt2.flat_buffers[0].value for p in net2.parameters())


# -- the flat layout ------------------------------------------------------------------------------------

def test_flattening_keeps_contents_and_replaces_the_arrays():
    net = make_net()
    params = net.parameters()
    old = [p.value for p in params]
    copies = [p.value.copy() for p in params]
    opt = SGD(params, lr=0.1)
    (buf,) = opt.flat_buffers
    assert isinstance(buf, FlatBuffer) and buf.size == sum(p.size for p in params)
    assert [p.decay for p in buf.params] == sorted((p.decay for p in params), reverse=True)   # decay first
    assert buf.n_decay == sum(p.size for p in params if p.decay)
    for p, o, c in zip(params, old, copies, strict=True):
        assert p.value is not o and p.value.base is buf.value and p.grad.base is buf.grad
        np.testing.assert_array_equal(p.value, c)
        assert p.value.shape == c.shape                                      # same shape and memory order (Linear weights are column-major)
        assert (p.value.flags.c_contiguous, p.value.flags.f_contiguous) == (o.flags.c_contiguous, o.flags.f_contiguous)
        assert (p.grad.flags.c_contiguous, p.grad.flags.f_contiguous) == (o.flags.c_contiguous, o.flags.f_contiguous)
    np.testing.assert_array_equal(buf.value[:buf.n_decay],
                                  np.concatenate([p.value.ravel(order="A") for p in params if p.decay]))
    train(net, opt, 1)
    np.testing.assert_array_equal(old[0], copies[0])          # an array taken before the optimizer is not updated
    with pytest.raises(AttributeError):
        opt.fused = False                                      # fixed at construction
    other = make_net()
    arrays = [p.value for p in other.parameters()]
    assert SGD(other.parameters(), lr=0.1, fused=False).flat_buffers == []
    assert all(p.value is a for p, a in zip(other.parameters(), arrays, strict=True))       # unfused: no rebinding


def test_flat_buffer_validation():
    with pytest.raises(ValueError, match="empty parameter list"):
        FlatBuffer([])
    with pytest.raises(ValueError, match=r"one dtype, got \['float32', 'float64'\]"):
        FlatBuffer([dn.Parameter(np.zeros(2)), dn.Parameter(np.zeros(2, dtype=np.float32))])
    p = dn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="more than once"):
        FlatBuffer([p, p])


def test_flatten_one_buffer_per_dtype_and_reuse():
    params = [dn.Parameter(np.arange(3.0), decay=False), dn.Parameter(np.ones((2, 2), dtype=np.float32)),
              dn.Parameter(np.arange(4.0).reshape(2, 2))]
    b64, b32 = flatten(params)                                            # in order of first appearance
    assert (b64.dtype, b32.dtype) == (np.float64, np.float32)
    assert b64.params == [params[2], params[0]] and b64.offsets == [0, 4] and b64.n_decay == 4
    np.testing.assert_array_equal(b64.value, [0, 1, 2, 3, 0, 1, 2])
    again = flatten(params)
    assert again[0] is b64 and again[1] is b32                            # an intact layout is reused, not copied
    assert flatten(params[:1])[0] is not b64                              # a subset gets a buffer of its own ...
    assert not b64.is_bound() and b32.is_bound()                          # ... which leaves the old one stale
    np.testing.assert_array_equal(params[0].value, [0, 1, 2])


def test_a_second_optimizer_over_the_same_parameters_shares_the_buffer():
    net = make_net()
    a = Adam(net.parameters(), lr=0.01)
    arrays = [p.value for p in net.parameters()]
    b = SGD(net.parameters(), lr=0.1)
    assert all(p.value is arr for p, arr in zip(net.parameters(), arrays, strict=True))      # nothing rebound
    assert b.flat_buffers[0] is a.flat_buffers[0]


def test_overlapping_optimizers_stay_correct():
    # two fused optimizers over overlapping lists rebind the shared parameters in turn; each notices and re-flattens
    net_a, net_b = make_net(), make_net()
    outs = []
    for net, fused in ((net_a, False), (net_b, True)):
        ps = net.parameters()
        outs.append((net, Adam(ps, lr=0.01, fused=fused), SGD(ps[2:], lr=0.05, momentum=0.9, fused=fused)))
    for step in range(6):
        for net, adam, sgd in outs:
            train(net, sgd if step % 2 else adam, 1, seed=step)
    assert_same(outs[0][1], outs[1][1])
    assert_same(outs[0][2], outs[1][2])


def test_changing_a_decay_flag_after_construction():
    net_a, net_b = make_net(), make_net()
    plain, fused = SGD(net_a.parameters(), lr=0.1, weight_decay=0.1, fused=False), SGD(net_b.parameters(), lr=0.1, weight_decay=0.1)
    train(net_a, plain, 2)
    train(net_b, fused, 2)
    net_a.parameters()[1].decay = net_b.parameters()[1].decay = True       # a bias now decays too
    train(net_a, plain, 2, seed=1)
    train(net_b, fused, 2, seed=1)
    assert_same(plain, fused)
    assert fused.flat_buffers[0].n_decay == sum(p.size for p in net_b.parameters() if p.decay)


def test_no_array_allocated_per_step():
    net = dn.mlp([100, 200, 50, 10], rng=0, dtype="float64")            # 30,000 parameters: 240 KB per array
    opt = RMSprop(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=0.01, centered=True)
    for p in net.parameters():
        p.grad = np.full(p.shape, 0.1)
    opt.step()                                                            # the first step creates the state
    tracemalloc.start()
    try:
        opt.step()
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000                   # Python objects only; any temporary array of a chunk would be >= 64 KB


# -- clipping over the flat gradient ------------------------------------------------------------------

@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-13), ("float32", 1e-5)])
def test_clip_grad_norm_over_flat_buffers(dtype, rtol):
    net_a, net_b = make_net(dtype), make_net(dtype)
    opt = SGD(net_b.parameters(), lr=0.1)                                 # flattens net_b (while it lives)
    rng = np.random.default_rng(4)
    for pa, pb in zip(net_a.parameters(), net_b.parameters(), strict=True):
        pa.grad = pb.grad = rng.normal(size=pa.shape).astype(dtype)
    net_a.parameters()[1].zero_grad()                                     # a lazily zeroed gradient counts as 0
    net_b.parameters()[1].zero_grad()
    assert flat_grads(net_b.parameters()) is not None and flat_grads(net_a.parameters()) is None
    assert opt.fused
    expected = math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in net_a.parameters()))
    assert grad_norm(net_b.parameters()) == pytest.approx(expected, rel=rtol)
    norm_a = clip_grad_norm(net_a.parameters(), 1.0)
    norm_b = clip_grad_norm(net_b.parameters(), 1.0)
    assert norm_a == pytest.approx(norm_b, rel=rtol) and norm_b == pytest.approx(expected, rel=rtol)
    for pa, pb in zip(net_a.parameters(), net_b.parameters(), strict=True):
        np.testing.assert_allclose(pb.grad, pa.grad, rtol=rtol, atol=1e-7)
    assert grad_norm(net_b.parameters()) == pytest.approx(1.0, rel=rtol)
    sub = net_b.parameters()[2:]                                          # a subset: per parameter, still right
    assert grad_norm(sub) == pytest.approx(math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in sub)), rel=rtol)


# -- a flattened model keeps working ----------------------------------------------------------------------

def test_flattened_model_saves_loads_and_trains(tmp_path):
    from deltanet.training import Trainer

    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5)
    net = make_net()
    opt = Adam(net.parameters(), lr=0.01)
    flat = opt.flat_buffers[0]
    trainer = Trainer(net, optimizer=opt, batch_size=16, epochs=3, seed=0,
                      early_stopping=dn.training.EarlyStopping(patience=5, restore_best=True))
    history = trainer.fit(x, y, validation_fraction=0.25)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert all(p.value.base is flat.value for p in net.parameters())      # still flat after fit and restore

    path = tmp_path / "model.safetensors"
    dn.save(net, path)
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))

    snapshot = {k: v.copy() for k, v in net.state_dict().items()}
    train(net, opt, 3, dtype="float64")
    assert not np.array_equal(net.parameters()[0].value, snapshot["0.weight"])
    net.load_state_dict(snapshot)                                          # copies into the views
    assert all(p.value.base is flat.value for p in net.parameters())
    np.testing.assert_array_equal(net.forward(x), loaded.forward(x))
    before = net.parameters()[0].value.copy()
    train(net, opt, 1)                                                     # the optimizer still drives the model
    assert not np.array_equal(net.parameters()[0].value, before)


@pytest.mark.parametrize("fused", [True, False])
def test_subnormal_values_and_state_are_flushed_periodically(fused, both_kernel_paths):
    from deltanet.optim import Adam

    tiny = np.finfo(np.float32).tiny
    p = dn.Parameter(np.array([1e-39, 3e-39, 0.5, -2e-40], dtype=np.float32))
    opt = Adam([p], lr=1e-3, fused=fused)
    for _ in range(opt.flush_subnormals_every - 1):
        p.grad = np.array([0.0, 1e-40, 0.1, 0.0], dtype=np.float32)
        opt.step()
    subnormal = [bool(np.any((a != 0) & (np.abs(a) < tiny))) for a in [p.value, *opt.state[0].values()]]
    if fused and both_kernel_paths == "kernels":       # the compiled step stores no subnormal number, ever
        assert subnormal == [False, False, False]
        assert p.value[2] != 0
        return
    assert subnormal[0]                                                                # subnormals present before
    p.grad = np.zeros(4, dtype=np.float32)
    opt.step()
    for a in [p.value, *opt.state[0].values()]:
        assert not np.any((a != 0) & (np.abs(a) < tiny))
    assert p.value[2] != 0                                                             # normal values untouched


@pytest.mark.parametrize("fused", [True, False])
def test_step_can_measure_the_gradient_norm_it_applies(fused):
    from deltanet.optim.clipping import grad_norm

    net = make_net()
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9, fused=fused)
    x = np.random.default_rng(5).standard_normal((16, net[0].in_features))
    loss = dn.SoftmaxCrossEntropy()
    loss.forward(net.forward(x, training=True), np.arange(16) % net[-1].out_features)
    opt.zero_grad()
    net.backward(loss.backward())
    expected = grad_norm(net.parameters())
    assert opt.step() is None and opt.last_grad_norm is None        # off by default
    assert opt.step(measure_grad_norm=True) == pytest.approx(expected, rel=1e-12)
    assert opt.last_grad_norm == pytest.approx(expected, rel=1e-12)
