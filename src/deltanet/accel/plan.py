"""What a trainer's batches may skip: one object decides, from the trainer's public state, once per ``fit``.

Why: the course's loop forms every gradient, measures its norm in a pass of its
own, computes dL/dx for the data, and tests every batch for NaN and label
range. Where nothing reads those results, skipping them is free speed (the
first layer's input gradient is a product as large as its forward; the
separate norm pass and the per-batch data tests are one read of the batch or
the gradients each; folding SGD's momentum, :mod:`deltanet.accel.folding`, is
measured in ``benchmarks/results/measurements.md``). Each decision below
names what would read the skipped result and keeps it whenever something does.

The math side exposes plain attributes for this (``Linear.input_grad``,
``Module.check_finite_input``, ``Loss.check_targets``, ``Linear.adds_bias``
with ``Activation.bias``), set here for the duration of a block and put back
on exit by :func:`overriding`.

**Work fused across two modules.** A Linear's bias addition belongs to the
Linear and the pass that maps ``z`` to the activation; the two become one
compiled pass each way only for a fit, by this plan's decision
(:func:`bias_in_activations`): the Linear leaves ``+ b`` and ``dL/db`` out, the
ReLU (or LeakyReLU) after it adds ``b`` in its forward and forms ``dL/db``
with its derivative. Each module's code still reads as its own formulas; the
pair's kernels (:mod:`deltanet.accel.kernels.activation`) are tested equal to
them, and without a kernel for the arrays (CuPy, another dtype) the moved
bias runs the same formulas in NumPy. tanh and sigmoid keep their bias in the
Linear: their kernels lose (``benchmarks/results/kernels.md``). The per-call
kernels (these and the softmax cross-entropy) run for small arrays only once
Numba is loaded; a fit of :data:`PER_CALL_MIN_BATCHES` batches or more loads it.

**In the trainer's history.** What the batches may skip where nothing reads it is
decided once per ``fit`` by :class:`deltanet.accel.plan.FastPath` (off
with ``DELTANET_FAST=0``; same results to float rounding): the data's
input gradient, the per-batch NaN and label tests (``fit`` tests the data
once), a separate gradient-norm pass, and -- with ``record_layers=False``
and SGD with momentum -- the gradients themselves in every batch of an
epoch but the last (folded into the momentum buffer). The epoch's
``grad_norm`` is then the norm of its last batch's gradient, the one batch
that forms it; a NaN or infinity from a folded step shows in the next
batch's loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ..modules.base import Module
from ..modules.linear import Linear
from . import folding

_MISSING = object()


@contextmanager
def overriding(objects: Iterable[Any], attribute: str, value: Any) -> Iterator[None]:
    """Within the block, ``obj.<attribute> = value`` for each object; each object's own setting is put back
    on exit (an attribute the object did not have itself is removed again, so the class default shows)."""
    saved = [(obj, obj.__dict__.get(attribute, _MISSING)) for obj in objects]
    for obj, _ in saved:
        setattr(obj, attribute, value)
    try:
        yield
    finally:
        for obj, previous in saved:
            if previous is _MISSING:
                obj.__dict__.pop(attribute, None)
            else:
                setattr(obj, attribute, previous)


def without_input_gradient(model: Module) -> Any:
    """Within the block, the ``Linear`` layer that receives the data skips dL/dx (``backward`` returns None).

    Training never uses the gradient with respect to the data, and that matrix
    product costs as much as the layer's forward pass. Parameter gradients are
    unchanged. The data may reach that layer through a dropout first (input
    dropout: no parameters, so nothing before the layer needs a gradient;
    ``Sequential.backward`` stops where a layer returns None). Other first
    layers are left alone.
    """
    first = data_layer(model)
    return overriding([first] if first is not None else [], "input_grad", False)


def data_layer(model: Module) -> Linear | None:
    """The ``Linear`` layer the data reaches first, through nothing but dropout, or None."""
    from ..modules.containers import Sequential
    from ..modules.dropout import Dropout

    m = model
    while isinstance(m, Sequential) and len(m):
        children = m.children()
        i = 0
        while i < len(children) - 1 and type(children[i]) is Dropout:
            i += 1
        m = children[i]
    return m if isinstance(m, Linear) else None


def input_prechecked(model: Module) -> Any:
    """Within the block, no module of ``model`` tests its input for NaN and infinity.

    For callers that tested the whole data set once before feeding it batch by
    batch: the per-batch test at the network's entry would only read every
    batch a second time. A NaN or infinity that arises inside the network still
    reaches the output, where the losses test it.
    """
    return overriding(model.modules(), "check_finite_input", False)


def targets_prechecked(loss: Any) -> Any:
    """Within the block, ``loss`` does not test its targets (integer labels for their range, values for NaN
    and infinity; shapes and dtypes still are), for callers that validated every target once."""
    return overriding([loss], "check_targets", False)


#: The activations a Linear's bias moves into (:func:`bias_in_activations`), by ``Activation.kernel_name``: those
#: whose compiled forward beats NumPy's. tanh and sigmoid have kernels too, but lose in the forward: the C
#: library's ``tanh`` and ``exp`` run one value at a time where NumPy's are vectorized
#: (``benchmarks/results/kernels.md``).
BIAS_MOVES_INTO = ("relu", "leaky_relu")

#: A fit of at least this many batches (epochs x batches per epoch) loads Numba for the kernels of
#: :data:`deltanet.accel.PER_CALL` if nothing else has (the optimizers' kernel loads it from 65,536 parameters
#: on): importing Numba and loading these kernels from the disk cache take ~0.7 s, and they save 1-7 us of the
#: ~100 us of a 64-32-10 network's batch of 32, at least 100,000 batches to repay it
#: (``benchmarks/results/kernels_train.md``).
PER_CALL_MIN_BATCHES = 100_000


def bias_pairs(model: Module) -> list[tuple[Linear, Any]]:
    """The ``(Linear, activation)`` pairs of ``model`` whose bias may move into the activation: a ``Linear`` with a
    bias of a dtype the compiled kernels take, directly followed in a ``Sequential`` by an activation named in
    :data:`BIAS_MOVES_INTO`, each of the two appearing once in the model (a shared module is left alone)."""
    from ..modules.activations import Activation
    from ..modules.containers import Sequential
    from . import kernels

    counts: dict[int, int] = {}
    for m in model.modules():
        counts[id(m)] = counts.get(id(m), 0) + 1
    pairs = []
    for m in model.modules():
        if type(m) is not Sequential:
            continue
        children = m.children()
        for a, b in zip(children, children[1:], strict=False):
            if (type(a) is Linear and a.bias is not None and isinstance(b, Activation)
                    and b.kernel_name in BIAS_MOVES_INTO and counts[id(a)] == counts[id(b)] == 1
                    and kernels.family(a.bias.value) == "numba"):
                pairs.append((a, b))
    return pairs


@contextmanager
def bias_in_activations(model: Module, pairs: list[tuple[Linear, Any]] | None = None) -> Iterator[None]:
    """Within the block, each pair of :func:`bias_pairs` (or of ``pairs``) adds the Linear's bias in the
    activation's pass.

    The Linear computes ``z = x W^T`` and the activation ``h = sigma(z + b)``; its
    backward forms ``delta = dL/dh * sigma'`` and ``dL/db = sum_n delta`` together
    (``Linear.adds_bias`` False, ``Activation.bias`` the Linear's bias): one
    compiled pass each way instead of two or three NumPy passes and a product
    (:mod:`deltanet.accel.kernels.activation`). The same numbers to float
    rounding; prediction (``Linear.affine``) is unchanged.
    """
    pairs = bias_pairs(model) if pairs is None else pairs
    with ExitStack() as stack:
        stack.enter_context(overriding([lin for lin, _ in pairs], "adds_bias", False))
        for lin, act in pairs:
            stack.enter_context(overriding([act], "bias", lin.bias))
        yield


class FastPath:
    """The fast-path decisions for one ``Trainer.fit``.

    Parameters
    ----------
    trainer : Trainer
        Read (public state only): ``model``, ``loss``, ``optimizer``, ``params``,
        ``clip_norm``, ``record_layers``, ``gradient_hook``, ``distributed``.
    callbacks : CallbackList
        The fit's callbacks (``handles`` says which hooks they implement).
    enabled : bool
        False (``DELTANET_FAST=0``): every decision is the reference one.

    Attributes
    ----------
    holds_model : bool
        The optimizer holds exactly the model's parameters: zeroing goes through its flat list.
    norm_in_step : bool
        The batch's gradient norm comes from the optimizer's own pass over the gradients
        (``step(measure_grad_norm=True)``) instead of a pass of its own: nothing needs it before the
        update (no clipping, no per-parameter norms).
    may_fold : bool
        Batches may fold their gradients into the optimizer's state (where its rule can): the norm is
        measured in the step and no callback reads the gradients (``on_after_backward``) or the
        epoch's mean gradient norm (a gradient-norm stopping criterion). The epoch's last batch, batches
        with a gradient hook and data-parallel training (the gradient must be all-reduced) never fold.
    """

    def __init__(self, trainer: Any, callbacks: Any, *, enabled: bool = True) -> None:
        from ..training.stopping import GradNormThreshold

        self.enabled = enabled
        self.trainer = trainer
        opt = trainer.optimizer
        self.holds_model = enabled and {id(p) for p in opt.params} == {id(p) for p in trainer.params}
        self.norm_in_step = self.holds_model and trainer.clip_norm is None and not trainer.record_layers
        self.may_fold = (self.norm_in_step and not callbacks.handles("on_after_backward")
                         and not any(isinstance(cb, GradNormThreshold) for cb in callbacks))

    @contextmanager
    def batches(self) -> Iterator[None]:
        """The block the batches run in: the data's input gradient skipped, the data and targets not tested
        again (``fit`` tested them once, see :func:`deltanet.training.data.prepare_data`)."""
        if not self.enabled:
            yield
            return
        t = self.trainer
        with ExitStack() as stack:
            engine = t.optimizer.engine
            if engine is not None:              # the batches decide folding themselves (fold()), not the engine
                folding.disarm(engine)
                stack.enter_context(overriding([engine], "auto_fold", False))
            stack.enter_context(without_input_gradient(t.model))
            if self.load_per_call_kernels():    # else the pairs' kernels would not run at a small network's sizes
                stack.enter_context(bias_in_activations(t.model))
            stack.enter_context(input_prechecked(t.model))
            stack.enter_context(targets_prechecked(t.loss))
            yield

    def load_per_call_kernels(self) -> bool:
        """Load Numba for the :data:`~deltanet.accel.PER_CALL` kernels when the optimizer's own kernel will load it
        (at its first step) or this fit runs at least :data:`PER_CALL_MIN_BATCHES` batches (see there); True if
        Numba is loaded."""
        from . import kernels

        t = self.trainer
        engine = getattr(t.optimizer, "engine", None)
        if engine is not None and not kernels.numba_loaded():
            engine.compiled_kernel()          # loads the optimizer's kernel, and Numba, where its step will
        n = (t.final_epoch - t.epoch) * t.n_batches                  # the batches this fit will run
        if not kernels.numba_loaded() and n >= PER_CALL_MIN_BATCHES and kernels.enabled():
            kernels.load("softmax_ce")
        return kernels.numba_loaded()

    def zero_grad(self) -> None:
        """Zero the gradients (through the optimizer's flat parameter list when it holds the model's)."""
        if self.holds_model:
            self.trainer.optimizer.zero_grad()
        else:
            self.trainer.model.zero_grad()

    def fold(self, batch: int, n_batches: int) -> bool:
        """Arm folding for this batch's backward pass if allowed (see :attr:`may_fold`); True if armed."""
        return (self.may_fold and batch < n_batches and self.trainer.gradient_hook is None
                and getattr(self.trainer, "distributed", None) is None and self.trainer.optimizer.fold_gradients())


__all__ = ["BIAS_MOVES_INTO", "PER_CALL_MIN_BATCHES", "FastPath", "bias_in_activations", "bias_pairs",
           "input_prechecked", "overriding", "targets_prechecked", "without_input_gradient"]
