"""The CUDA kernels (deltanet.accel.kernels.cuda) without a GPU.

1. Dispatch: CuPy arrays (here NumPy arrays of a type named as CuPy's) get the CUDA counterpart of each kernel
   behind the same hook and the same fused step; other types, mixed types and other dtypes get none.
2. Their sources, compiled as C++ for the CPU (deltanet.accel.kernels.cuda.emulation), equal the Numba kernels bit for
   bit (the optimizer steps, dropout) or to rounding (batch norm's sums in another order), and the references.
   The GPU's own compilation and arithmetic are checked by benchmarks/gpu_check.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet import accel, backend
from deltanet.accel import kernels
from deltanet.accel.kernels import cuda
from deltanet.accel.kernels.cuda import batch_norm as cuda_bn
from deltanet.accel.kernels.cuda import dropout as cuda_dropout
from deltanet.accel.kernels.cuda import emulation as cuda_emulation
from deltanet.accel.kernels.cuda import optim as cuda_optim
from deltanet.modules.dropout import keep_mask, keep_threshold
from deltanet.optim import rules
from deltanet.testing import guard


class ndarray(np.ndarray):                       # the name CuPy's array type has
    """A NumPy array whose type is named as CuPy's: what the dispatch sees of a device array."""


ndarray.__module__ = "cupy._core.core"


def fake(a):
    return np.asarray(a).view(ndarray)


@pytest.fixture
def cuda_on(monkeypatch):
    monkeypatch.setattr(kernels, "_CUDA", True)          # as where CuPy is installed


# -- 1. dispatch ----------------------------------------------------------------------------------------------------
def test_family_follows_the_array_type(cuda_on, monkeypatch):
    x = np.ones((4, 4), np.float32)
    assert kernels.is_cupy_array(fake(x)) and not kernels.is_cupy_array(x)
    assert kernels.family(fake(x)) == "cuda"
    assert kernels.family(fake(x), fake(x)) == "cuda"
    assert kernels.family(x) == ("numba" if kernels.enabled() else None)
    assert kernels.family(fake(x), x) is None                                    # mixed types
    assert kernels.family(fake(x), fake(x.astype(np.float64))) is None           # mixed dtypes
    assert kernels.family(fake(x.astype(np.float16))) is None
    assert kernels.family(fake(x.astype(np.int64))) is None
    assert kernels.family(guard.xp.asarray(x)) is None                           # the guard namespace: none
    monkeypatch.setattr(kernels, "_CUDA", False)                                 # DELTANET_KERNELS=numpy, no CuPy
    assert kernels.family(fake(x)) is None


def test_cuda_kernels_follow_the_environment(monkeypatch):
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: object())   # "installed"
    for var, value, expected in (("DELTANET_KERNELS", "numpy", False), ("DELTANET_FAST", "0", False),
                                 ("DELTANET_KERNELS", "numba", True)):
        monkeypatch.setenv(var, value)
        accel.set_fast_enabled(None)
        assert kernels.cuda_enabled() is expected
        monkeypatch.delenv(var)
    accel.set_fast_enabled(None)


def test_load_hands_out_each_family_under_one_name():
    assert kernels.load("optim", "cuda") is cuda_optim
    assert kernels.load("dropout", "cuda") is cuda_dropout
    assert kernels.load("batch_norm", "cuda") is cuda_bn
    assert kernels.load("compiled", "cuda") is None                      # a Numba module without a counterpart
    assert set(cuda_optim.KERNELS) == {"sgd", "adam", "rmsprop"}
    assert {k: ref for k, (_, ref) in cuda_optim.KERNELS.items()} == {"sgd": rules.sgd, "adam": rules.adam,
                                                                      "rmsprop": rules.rmsprop}


def test_the_hook_hands_out_the_cuda_counterparts(cuda_on, monkeypatch):
    c = fake(np.ones((3, 5), np.float32))                                 # small: no size minimum on the GPU
    f = fake(np.asfortranarray(np.ones((3, 5), np.float32)))
    assert accel.kernel("dropout", c) is cuda_dropout.dropout
    assert accel.kernel("dropout", f) is cuda_dropout.dropout
    assert accel.kernel("dropout", fake(np.ones((2, 3, 4), np.float32)).transpose(2, 0, 1)) is None   # strided
    assert accel.kernel("batch_norm_forward", c) is cuda_bn.forward       # any layout on the GPU
    assert accel.kernel("batch_norm_forward", f) is cuda_bn.forward
    assert accel.kernel("batch_norm_backward", c, f) is cuda_bn.backward
    assert accel.kernel("batch_norm_forward", fake(np.ones((1, 5), np.float32))) is None          # one row
    monkeypatch.setitem(accel.ELEMENTWISE, "numba_only", ("compiled", "LOCK"))  # a kernel only Numba has
    assert accel.kernel("numba_only", c) is None
    monkeypatch.setattr(kernels, "_CUDA", False)
    assert accel.kernel("dropout", c) is None


def test_the_fused_step_picks_the_cuda_optimizer_kernel(cuda_on):
    from deltanet.optim import SGD, Adam, Optimizer, RMSprop

    net = dn.mlp([4, 5, 3], rng=0)                                        # small: still one launch on the GPU
    for make, name in ((Adam, "adam"), (SGD, "sgd"), (RMSprop, "rmsprop")):
        engine = make(net.parameters())._engine
        assert engine.compiled_kernel(fake(engine.groups[0].buffer.value)) is cuda_optim.KERNELS[name][0]

    class Custom(Adam):                                                   # a rule of its own: no kernel
        def _rule(self, w, grad, state, work, decay):
            Optimizer._rule(self, w, grad, state, work, decay)

    engine = Custom(net.parameters())._engine
    assert engine.compiled_kernel(fake(engine.groups[0].buffer.value)) is None
    engine = Adam(net.parameters())._engine
    assert engine.compiled_kernel(guard.xp.asarray(engine.groups[0].buffer.value)) is None


def test_every_kernel_is_compiled_without_contraction():
    table = cuda_emulation.kernels()
    assert cuda.OPTIONS == ("--fmad=false",)
    assert len(table) == 15 and all(name.startswith("deltanet_") for name in table)
    assert {k.kind for k in table.values()} == {"elementwise", "reduction"}


# -- 2. the sources on the CPU --------------------------------------------------------------------------------------
needs_compiler = pytest.mark.skipif(not cuda_emulation.available(), reason="no C++ compiler to emulate the kernels")

CASES = [
    ("sgd", {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}, ()),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 1e-2}, ("momentum_buffer",)),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}, ("momentum_buffer",)),
    ("adam", {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "decoupled": False},
     ("exp_avg", "exp_avg_sq")),
    ("adam", {"lr": 1e-2, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 1e-2, "decoupled": False},
     ("exp_avg", "exp_avg_sq")),
    ("adam", {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1, "decoupled": True},
     ("exp_avg", "exp_avg_sq")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0, "centered": False},
     ("square_avg",)),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "weight_decay": 1e-2, "centered": False},
     ("square_avg", "momentum_buffer")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.0, "weight_decay": 0.0, "centered": True},
     ("square_avg", "grad_avg")),
    ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "weight_decay": 1e-2, "centered": True},
     ("square_avg", "grad_avg", "momentum_buffer")),
]
TOL = {"float32": 2e-6, "float64": 1e-12}


@needs_compiler
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("decay", [True, False, 600])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0] + "-" + "-".join(k for k, v in c[1].items() if v))
def test_optimizer_kernels_equal_numba_bit_for_bit_and_the_rule(case, decay, dtype):
    from deltanet.accel.kernels import optim as numba_optim

    name, hyper, keys = case
    rng = np.random.default_rng(0)
    n = 1237
    w0 = rng.standard_normal(n).astype(dtype)
    w_c, w_n, w_r = w0.copy(), w0.copy(), w0.copy()
    st_c, st_n, st_r = ({k: np.zeros(n, dtype) for k in keys} for _ in range(3))
    work = [np.empty(n, dtype) for _ in range(2)]
    with cuda_emulation.emulated():
        for t in range(1, 6):
            g = rng.standard_normal(n).astype(dtype)
            extra = {"t": t} if name == "adam" else {}
            sq = cuda_optim.KERNELS[name][0](w_c, g, st_c, decay=decay, measure=True, **hyper, **extra)
            numba_optim.KERNELS[name][0](w_n, g, st_n, decay=decay, measure=True, **hyper, **extra)
            if decay is True or decay is False:
                rules_kw = {**hyper, **extra}
                getattr(rules, name)(w_r, g, st_r, work, decay=decay, **rules_kw)
            else:                                           # the first 600 elements decayed, the rest not
                for lo, hi, d in ((0, decay, True), (decay, n, False)):
                    getattr(rules, name)(w_r[lo:hi], g[lo:hi], {k: v[lo:hi] for k, v in st_r.items()},
                                         [a[:hi - lo] for a in work], decay=d, **hyper, **extra)
            assert float(sq) == pytest.approx(float((g.astype("float64") ** 2).sum()),
                                              rel=1e-5 if dtype == "float32" else 1e-12)
            assert cuda_optim.KERNELS[name][0](w_c.copy(), g, {k: v.copy() for k, v in st_c.items()}, decay=decay,
                                               measure=False, **hyper, **extra) == 0.0
    np.testing.assert_array_equal(w_c, w_n)
    for k in keys:
        np.testing.assert_array_equal(st_c[k], st_n[k])
    np.testing.assert_allclose(w_c, w_r, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(w0).max())
    for k in keys:
        np.testing.assert_allclose(st_c[k], st_r[k], rtol=TOL[dtype], atol=TOL[dtype] * np.abs(st_r[k]).max())


@needs_compiler
def test_optimizer_kernel_stores_no_subnormal_numbers():
    tiny = np.finfo(np.float32).tiny
    w = np.array([tiny / 4, 1e-33, 1.0, -1e-30], np.float32)          # a subnormal, one below tiny / eps, two kept
    state = {"exp_avg": np.array([tiny / 8, 0, 0, 0], np.float32), "exp_avg_sq": np.zeros(4, np.float32)}
    with cuda_emulation.emulated():
        cuda_optim.adam(w, np.zeros(4, np.float32), state, decay=True, measure=False, lr=1e-3, beta1=0.9,
                        beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, t=1)
    assert w[0] == 0 and w[1] == 0 and w[2] == 1.0 and w[3] == np.float32(-1e-30)
    assert state["exp_avg"][0] == 0


@needs_compiler
@pytest.mark.parametrize("shape", [(1,), (7,), (5, 7, 9), (33, 17), (2, 3, 4, 5)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_kernel_draws_the_cpu_mask_bit_for_bit(shape, order, dtype):
    from deltanet.accel.kernels import dropout as numba_dropout

    x = np.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype, order=order)
    if not cuda_dropout.takes(x):                           # N-D column-major arrays go to the reference
        assert order == "F" and x.ndim > 2
        return
    key, rate = 0xFEDCBA9876543210, 0.3                      # key + (i + 1) gamma wraps around 2^64
    scale = dtype(1.0 / (1.0 - rate))
    want = x * (keep_mask(key, shape, rate) * scale).astype(dtype)
    with cuda_emulation.emulated():
        got = cuda_dropout.dropout(x, key, keep_threshold(rate), scale)
    assert got.dtype == dtype and got.flags.f_contiguous == x.flags.f_contiguous
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, numba_dropout.dropout(x, key, keep_threshold(rate), scale))
    assert 0.6 < np.count_nonzero(got) / x.size <= 0.8 or x.size < 50


def _reference_forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc * xc).mean(axis=0)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    return xc * inv_std * gamma + beta, mu, inv_std, var, xc * inv_std


@needs_compiler
@pytest.mark.parametrize("shape", [(2, 1), (3, 7), (17, 33), (128, 30)])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_kernels_equal_the_reference(shape, order, dtype):
    tol = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}[dtype]
    rng = np.random.default_rng(1)
    x = np.asarray((rng.standard_normal(shape) * 3 + 1).astype(dtype), order=order)
    g = np.asarray(rng.standard_normal(shape).astype(dtype), order=order)
    gamma, beta = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    with cuda_emulation.emulated():
        y, mean, inv_std, var = cuda_bn.forward(x, gamma, beta, 1e-5)
        dx, dbeta, dgamma = cuda_bn.backward(g, x, gamma, mean, inv_std)
    y_ref, mu_ref, inv_ref, var_ref, x_hat = _reference_forward(x, gamma, beta, 1e-5)
    assert y.dtype == dtype and y.flags.f_contiguous == x.flags.f_contiguous and mean.dtype == dtype
    for got, want in ((y, y_ref), (mean, mu_ref), (inv_std, inv_ref), (var, var_ref)):
        np.testing.assert_allclose(got, want, **tol)
    n = shape[0]
    dbeta_ref, dgamma_ref = g.sum(axis=0), (g * x_hat).sum(axis=0)
    dx_ref = (g * n - dbeta_ref - x_hat * dgamma_ref) * (gamma * inv_ref / n)
    scale = np.abs(g * gamma * inv_ref).max()
    np.testing.assert_allclose(dx / scale, dx_ref / scale, **tol)
    np.testing.assert_allclose(dbeta, dbeta_ref, **tol)
    np.testing.assert_allclose(dgamma, dgamma_ref, **tol)
    if order == "F":                                        # the Numba kernel's layout: the same numbers to rounding
        from deltanet.accel.kernels import batch_norm as numba_bn

        for got, want in zip((y, mean, inv_std, var), numba_bn.forward(x, gamma, beta, 1e-5), strict=True):
            np.testing.assert_allclose(got, want, **tol)


def test_emulation_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="only 'type name'"):
        cuda_emulation._params("raw T x")
    assert backend.xp is np


# -- 3. a fit on arrays of CuPy's type: every module reaches its CUDA kernel, the NumPy run's numbers -----------------
class _DeviceArray(guard.GuardArray):
    """A guard array (refuses what CuPy refuses) whose type is named as CuPy's: the dispatch takes it for one."""


_DeviceArray.__name__ = _DeviceArray.__qualname__ = "ndarray"
_DeviceArray.__module__ = "cupy._emulated"


@pytest.fixture
def cupy_typed(monkeypatch, cuda_on):
    """The guard namespace making arrays of CuPy's type name, and the CUDA kernels compiled as C++, counted."""
    real = backend.get_array_module
    monkeypatch.setattr(guard, "GuardArray", _DeviceArray)      # the type the guard's functions return
    monkeypatch.setattr(backend, "get_array_module", lambda x: guard.xp if isinstance(x, _DeviceArray) else real(x))
    calls: dict[str, int] = {}
    with cuda_emulation.emulated() as table:
        for k in table.values():
            def counted(*args, _run=k._kernel, _name=k.name, **kwargs):
                calls[_name] = calls.get(_name, 0) + 1
                return _run(*args, **kwargs)
            k._kernel = counted
        yield calls


@needs_compiler
@pytest.mark.parametrize(("optimizer", "kwargs", "kernel"), [
    ("adam", {}, "deltanet_adam"),
    ("sgd", {"optimizer_kwargs": {"momentum": 0.9, "nesterov": True}, "l2": 1e-3}, "deltanet_sgd_momentum_nesterov"),
    ("rmsprop", {"optimizer_kwargs": {"centered": True, "momentum": 0.5}}, "deltanet_rmsprop_centered_momentum"),
])
def test_a_fit_on_cupy_typed_arrays_runs_the_cuda_kernels_with_the_numpy_numbers(cupy_typed, optimizer, kwargs, kernel):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((256, 12))
    y = X[:, :3].argmax(axis=1)
    histories, models = {}, {}
    for name, namespace in (("numpy", "numpy"), ("device", guard.xp)):
        with backend.use_backend(namespace):
            model = dn.mlp([12, 16, 8, 3], batch_norm=True, dropout=0.2, rng=0, dtype="float64")
            trainer = dn.Trainer(model, optimizer=optimizer, batch_size=32, epochs=2, seed=0, record_layers=False,
                                 **kwargs)
            with guard.count_reads() as reads:
                histories[name] = [r["train_loss"] for r in trainer.fit(X, y)]
            models[name] = {k: backend.to_numpy(v) for k, v in model.state_dict().items()}
    assert type(model.parameters()[0].value) is _DeviceArray
    np.testing.assert_allclose(histories["device"], histories["numpy"], rtol=1e-12)
    for k, v in models["numpy"].items():
        np.testing.assert_allclose(models["device"][k], v, rtol=1e-10, atol=1e-12)
    batches = 2 * 8
    # every elementwise pass through its CUDA kernel: per batch two batch norms (forward: sum, squares, statistics,
    # normalize; backward: two sums, input gradient), two dropouts each way, one optimizer step
    assert cupy_typed["deltanet_bn_forward"] == cupy_typed["deltanet_bn_backward"] == 2 * batches
    assert cupy_typed["deltanet_bn_sum"] == 4 * batches and cupy_typed["deltanet_bn_squares"] == 2 * batches
    assert cupy_typed["deltanet_dropout"] == 4 * batches
    assert cupy_typed[kernel] == batches
    per_batch = 2 + (3 if "l2" in kwargs else 0)             # the loss and the norm; the L2 term's three weights
    assert per_batch * batches <= reads.count <= per_batch * batches + 30       # and the fit's own, once
