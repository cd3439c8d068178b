"""The fast path: every speed trick of deltanet, beside the math path it must agree with.

The math path (``deltanet.parameter``, ``deltanet.modules``, ``deltanet.losses``,
``deltanet.optim`` with its rules, the ``Trainer``'s loop, ``deltanet.predict``'s
chunked forward) is the reference and reads as the course text. This package
holds what makes it fast; each module opens with its measured reason:

- :mod:`~deltanet.accel.blas`: the BLAS updates NumPy does not expose (``gemm`` with ``beta``, ``axpy``);
- :mod:`~deltanet.accel.flat`: all parameters of a dtype in one value buffer and one gradient buffer;
- :mod:`~deltanet.accel.fused`: the optimizers' step over those buffers, chunked or by a compiled kernel;
- :mod:`~deltanet.accel.folding`: SGD-momentum gradients added straight into the momentum buffer;
- :mod:`~deltanet.accel.plan`: the one object that decides, for a trainer's ``fit``, what the batches may skip;
- :mod:`~deltanet.accel.predict`: the prediction engine (reused buffers, the bias added by the product);
- :mod:`~deltanet.accel.kernels`: compiled one-pass kernels (Numba), each tested equal to its NumPy reference,
  and their CUDA counterparts for CuPy arrays (:mod:`~deltanet.accel.kernels.cuda`).

**The documented hooks** -- the only ways the rest of deltanet reaches this package
(``tests/test_fast_path.py`` checks that nothing imports its submodules):

- :func:`fused_step` (``Optimizer.__init__``), :func:`fast_path` (``Trainer.fit``),
  :func:`predict_chunks` (``deltanet.predict``), :func:`flat_grads` (``grad_norm`` and
  ``clip_grad_norm``), :func:`flat_buffers` (the data-parallel overlap's bucket plan),
  :func:`kernel` (the modules' elementwise passes: ``Dropout``, ``BatchNorm``,
  the activations that hold a Linear's moved bias, ``SoftmaxCrossEntropy``'s labels path),
  and the re-exported :class:`FlatBuffer` / :func:`flatten`;
- on the math side, plain attributes the fast path sets and restores:
  ``Parameter.sink`` (a :class:`~deltanet.parameter.GradientSink`),
  ``Module.check_finite_input``, ``Linear.input_grad``, ``Loss.check_targets``, and for the fused
  Linear + activation pairs ``Linear.adds_bias`` with ``Activation.bias``
  (:func:`deltanet.accel.plan.bias_in_activations`).

Switches (read once per process, at first use; :func:`set_fast_enabled` for tests):

``DELTANET_FAST=0``
    Turns the whole fast path off: the reference code runs everywhere (optimizers
    unfused, no folding, no kernels, no prediction engine, every batch checked).
``DELTANET_KERNELS=numpy``
    Turns only the compiled kernels off, the Numba ones and their CUDA
    counterparts (also automatic where Numba, or CuPy, is absent, or for arrays
    a kernel cannot take).
``DELTANET_BLAS=numpy``
    Turns only the direct BLAS calls off.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .flat import FlatBuffer, flat_buffers, flat_grads, flatten

if TYPE_CHECKING:
    from .fused import FusedStep
    from .plan import FastPath

_FAST: bool | None = None


def fast_enabled() -> bool:
    """Whether the fast path is on (``DELTANET_FAST`` is not ``0``/``false``/``off``/``no``; read once)."""
    global _FAST
    if _FAST is None:
        _FAST = os.environ.get("DELTANET_FAST", "1").strip().lower() not in ("0", "false", "off", "no")
    return _FAST


def set_fast_enabled(on: bool | None) -> bool:
    """Force the fast path on or off in this process (None: from the environment again); return :func:`fast_enabled`.

    For tests and benchmarks. It applies to what is built or run afterwards: an
    optimizer keeps the path it was built with.
    """
    global _FAST
    _FAST = None if on is None else bool(on)
    from . import kernels

    kernels.set_enabled(None)
    return fast_enabled()


def fused_step(optimizer: Any) -> FusedStep | None:
    """The hook of ``Optimizer(fused=True)``: its flat-buffer step, or None when the fast path is off."""
    if not fast_enabled():
        return None
    from .fused import FusedStep

    return FusedStep(optimizer)


def fast_path(trainer: Any, callbacks: Any) -> FastPath:
    """The hook of ``Trainer.fit``: what this fit's batches may skip (see :class:`~deltanet.accel.plan.FastPath`)."""
    from .plan import FastPath

    return FastPath(trainer, callbacks, enabled=fast_enabled())


def predict_chunks(model: Any, X: Any, batch_size: int, check_finite: bool) -> Any:
    """The hook of ``deltanet.predict``: the engine's outputs, or None when the fast path is off (the caller
    then runs the plain chunked forward)."""
    if not fast_enabled():
        return None
    from .predict import predict

    return predict(model, X, batch_size, check_finite)


#: The elementwise kernels a module may ask :func:`kernel` for: name -> (module of deltanet.accel.kernels, function).
ELEMENTWISE = {"dropout": ("dropout", "dropout"), "batch_norm_forward": ("batch_norm", "forward"),
               "batch_norm_backward": ("batch_norm", "backward"),
               "bias_activation": ("activation", "forward"), "activation_backward_bias": ("activation", "backward"),
               "softmax_cross_entropy": ("softmax_ce", "loss_and_grad")}

#: The kernels whose gain is a count of NumPy calls rather than of passes over memory: they pay for small arrays
#: too (a classifier's ``(batch, 10)`` logits, a small network's layers), so they run at every size -- once Numba is
#: loaded in the process (:func:`deltanet.accel.kernels.numba_loaded`: a kernel on a large array, or a long
#: fit, :class:`deltanet.accel.plan.FastPath`, loaded it), the import not being paid for them alone.
PER_CALL = frozenset({"bias_activation", "activation_backward_bias", "softmax_cross_entropy"})


#: Elementwise kernels run for arrays of at least this many elements: below it a pass saves microseconds, while
#: the first kernel of a process imports Numba (half a second: the quickstart job trained in 2.6 s with it, 2.0 s
#: without; benchmarks/results/measurements.md).
ELEMENTWISE_MIN_SIZE = 1 << 15


def kernel(name: str, *arrays: Any) -> Any:
    """The hook of the modules' elementwise passes: the compiled kernel ``name`` (a key of :data:`ELEMENTWISE`)
    if it can take ``arrays``, else None -- fast path or kernels off, Numba absent, arrays smaller than
    :data:`ELEMENTWISE_MIN_SIZE` (the :data:`PER_CALL` kernels: while Numba is not loaded), another array
    type, dtype or memory layout -- and the caller runs its NumPy
    reference, which the kernel equals.

    NumPy arrays get the Numba kernel, CuPy arrays its CUDA counterpart of the same name
    (:func:`deltanet.accel.kernels.family`), for every size: one launch instead of several costs nothing to
    import. A kernel without a CUDA counterpart gives None for CuPy arrays (the reference runs through CuPy)."""
    from . import kernels

    family = kernels.family(*arrays)
    if family is None or (family == "numba" and arrays[0].size < ELEMENTWISE_MIN_SIZE
                          and not (name in PER_CALL and kernels.numba_loaded())):
        return None
    module_name, function = ELEMENTWISE[name]
    module = kernels.load(module_name, family)
    if module is None or not all(module.takes(a) for a in arrays):
        return None
    return getattr(module, function, None)


__all__ = ["ELEMENTWISE", "ELEMENTWISE_MIN_SIZE", "PER_CALL", "FlatBuffer", "fast_enabled", "fast_path", "flat_buffers", "flat_grads", "flatten",
           "fused_step", "kernel",
           "predict_chunks", "set_fast_enabled"]
