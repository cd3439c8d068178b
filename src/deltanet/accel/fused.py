"""The fused optimizer step: one update over flat buffers instead of one per parameter.

Why: per parameter, a rule costs a few NumPy calls per state array; over the
flat buffers (:mod:`deltanet.accel.flat`) of all parameters of a dtype it is a
few whole-array passes, run chunk by chunk so each chunk stays in the L2 cache
for all of them, or one parallel pass of the rule's compiled kernel
(:mod:`deltanet.accel.kernels.optim`); measured in ``benchmarks/results/measurements.md``.

:class:`FusedStep` is what an optimizer built with ``fused=True`` delegates its
step to; the optimizer keeps the rule, the hyper-parameters and the
per-parameter state dict (whose arrays become views into flat state arrays
here, so :meth:`~deltanet.optim.Optimizer.state_dict` is the same either way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy

from .. import backend
from . import folding, kernels
from .flat import FlatBuffer, flatten

if TYPE_CHECKING:
    from ..optim.base import Optimizer


#: Chunks of this many bytes per array (128 KiB = 32,768 float32: the fastest size measured with a 2 MiB L2 cache,
#: benchmarks/results/measurements.md); NumPy only (a GPU takes whole buffers).
CHUNK_BYTES = 1 << 17
#: The compiled kernel runs only for at least this many parameter elements: below it, importing Numba and a
#: parallel launch per step cost more than the NumPy passes save (benchmarks/results/measurements.md).
KERNEL_MIN_SIZE = 1 << 16


class FusedStep:
    """The flat-buffer step of one optimizer: its groups (one per dtype), flat state, chunks and kernel choice.

    Parameters
    ----------
    optimizer : Optimizer
        Its parameters are flattened (:func:`~deltanet.accel.flat.flatten`) and
        its state arrays moved into flat arrays, contents unchanged.
    """

    #: Chunk size in bytes per array (None: whole buffers). Set it, then :meth:`regroup`, to re-chunk.
    chunk_bytes: int | None = CHUNK_BYTES
    kernel_min_size: int = KERNEL_MIN_SIZE

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.groups: list[_Group] = []
        #: Whether sinks are attached to the parameters (see :mod:`deltanet.accel.folding`).
        self.folding = False
        #: Whether the step may arm folding by itself for the next steps (it stops once anything reads the
        #: gradients; a trainer's fit turns it off for its batches, which decide for themselves).
        self.auto_fold = True
        self.regroup()

    # -- layout ------------------------------------------------------------------------
    def regroup(self) -> None:
        """Flatten the parameters (one buffer per dtype) and move the state arrays into flat arrays."""
        opt = self.optimizer
        index = {id(p): i for i, p in enumerate(opt.params)}
        chunk = self.chunk_bytes if backend.xp.__name__ == "numpy" else None
        self.groups = [_Group(buf, [index[id(p)] for p in buf.params], opt.n_work, chunk) for buf in flatten(opt.params)]
        self.pack_state()

    def prepare(self) -> None:
        """Make every group's flat buffer current: sync it, or flatten again when it went stale."""
        if not all([group.buffer.sync() for group in self.groups]):   # a list: sync every group
            self.regroup()
            for group in self.groups:
                group.buffer.sync()

    def create_state(self, group: _Group, keys: tuple[str, ...]) -> None:
        """Create the missing flat state arrays of ``keys`` as zeros (and the optimizer's views into them)."""
        opt = self.optimizer
        missing = [key for key in keys if key not in group.state]
        for key in missing:
            flat = group.state[key] = backend.xp.zeros(group.buffer.size, dtype=group.buffer.dtype)
            for j, i in enumerate(group.index):
                opt.state[i][key] = group.buffer.view(flat, j)
        if missing:
            group.invalidate()

    def pack_state(self) -> None:
        """Copy the optimizer's per-parameter state arrays into each group's flat arrays and make them views.

        Checked first, then copied: on a ValueError nothing has changed.
        """
        opt = self.optimizer
        name = type(opt).__name__
        plan = []
        for group in self.groups:
            keys = list(dict.fromkeys(k for i in group.index for k in opt.state[i]))
            for key in keys:
                have = [opt.params[i].name or str(i) for i in group.index if key in opt.state[i]]
                if len(have) != len(group.index):
                    raise ValueError(f"{name}: state {key!r} exists for parameters {have} but not for the others of "
                                     f"dtype {group.buffer.dtype}; a fused optimizer needs it for all of them "
                                     "(load a complete state, or build the optimizer with fused=False)")
            plan.append((group, keys))
        for group, keys in plan:
            flats = {}
            for key in keys:
                flat = group.state.get(key)
                if flat is None:
                    flat = backend.xp.empty(group.buffer.size, dtype=group.buffer.dtype)
                for j, i in enumerate(group.index):
                    view = group.buffer.view(flat, j)
                    view[...] = opt.state[i][key]          # converts the dtype of a loaded array
                    opt.state[i][key] = view
                flats[key] = flat
            group.state = flats
            group.invalidate()

    @property
    def buffers(self) -> list[FlatBuffer]:
        return [group.buffer for group in self.groups]

    def arrays(self) -> list[Any]:
        """Every flat value and state array (for the optimizer's subnormal flush)."""
        return [g.buffer.value for g in self.groups] + [a for g in self.groups for a in g.state.values()]

    # -- the step ----------------------------------------------------------------------
    def step(self, measure: bool) -> float | None:
        """One update over the flat buffers; returns ``sum ||grad||^2`` when ``measure`` (0 otherwise),
        None after a folded step (its gradients were never formed)."""
        if self.folding and folding.folded_step(self):
            return None
        self.folding = False
        self.prepare()
        opt = self.optimizer
        keys = opt.state_keys()
        split = bool(opt.weight_decay)               # without weight decay a chunk may span both kinds of parameters
        dot, sq = backend.xp.dot, 0.0
        for group in self.groups:
            self.create_state(group, keys)
            kernel = self.compiled_kernel(group.buffer.value)
            if kernel is not None:
                # one launch over the whole buffer: the decayed parameters come first, the kernel knows how many
                (w, g, state, _), = group.parts(keys, split=False)
                decay = group.buffer.n_decay if split else False
                sq += kernel(w, g, state, decay=decay, measure=measure, **opt.rule_arguments())
                continue
            for w, g, state, work, decay in group.chunks(keys, split):
                if measure:                   # summed where the gradients live: no host read inside the step
                    sq = sq + dot(g, g).astype(numpy.float64)
                opt._rule(w, g, state, work, decay)
        folding.arm_automatically(self)       # the next backward passes fold, unless something reads the gradients
        return sq

    def compiled_kernel(self, value: Any = None) -> Any:
        """The rule's one-pass kernel for the flat buffer ``value`` (default: the first group's) when compiled
        kernels run in this process for its array type and the rule is the kernel's reference (a subclass with a
        rule or a ``_rule`` of its own gets none); None otherwise.

        NumPy buffers get the Numba kernel from :attr:`kernel_min_size` parameter elements on, CuPy buffers its
        CUDA counterpart (:mod:`deltanet.accel.kernels.cuda.optim`) at every size: one launch instead of a
        launch per operation of the rule (:func:`deltanet.accel.kernels.family` decides)."""
        opt = self.optimizer
        if value is None:
            if not self.groups:
                return None
            value = self.groups[0].buffer.value
        if opt.kernel is None or not opt.uses_rule:
            return None
        family = kernels.family(value)
        if family is None or (family == "numba" and opt.n_elements < self.kernel_min_size):
            return None
        module = kernels.load("optim", family)  # the Numba module imports Numba: only once a kernel is needed
        if module is None:
            return None
        kernel, reference = module.KERNELS[opt.kernel]
        return kernel if type(opt).rule is reference else None

    @property
    def kernel_ran(self) -> bool:
        """Whether the compiled kernel runs this optimizer's steps (it stores no subnormal numbers)."""
        return self.compiled_kernel() is not None

    # -- folded gradients (see deltanet.accel.folding) -----------------------------------
    def fold(self) -> bool:
        """Arm gradient folding for the next backward pass; True if it will (see :func:`folding.arm`)."""
        return folding.arm(self)


class _Group:
    """The fused step's view of one :class:`FlatBuffer`: flat state arrays, scratch arrays and chunks.

    ``index[j]`` is the position in ``optimizer.params`` of ``buffer.params[j]``.
    With ``split`` (weight decay on), chunks never straddle the boundary
    ``n_decay`` between decayed and other parameters, so each has one ``decay``
    flag; without it they run over the whole buffer (``decay`` False).
    """

    def __init__(self, buffer: FlatBuffer, index: list[int], n_work: int, chunk_bytes: int | None) -> None:
        self.buffer = buffer
        self.index = index
        self.state: dict[str, Any] = {}
        size, n_decay = buffer.size, buffer.n_decay
        step = size if chunk_bytes is None else max(1, chunk_bytes // buffer.dtype.itemsize)
        self.ranges = {True: [(start, min(start + step, stop), decay)
                              for lo, stop, decay in ((0, n_decay, True), (n_decay, size, False))
                              for start in range(lo, stop, step)],
                       False: [(start, min(start + step, size), False) for start in range(0, size, step)]}
        longest = max(stop - start for start, stop, _ in self.ranges[True] + self.ranges[False])
        self.work = [backend.xp.empty(longest, dtype=buffer.dtype) for _ in range(n_work)]
        self._chunks: list[tuple[Any, Any, dict[str, Any], list[Any], bool]] | None = None
        self._views: dict[str, list[Any]] = {}
        self._keys: tuple[tuple[str, ...], bool] | None = None
        self._parts: list[tuple[Any, Any, dict[str, Any], bool]] | None = None
        self._parts_keys: tuple[tuple[str, ...], bool] | None = None

    def invalidate(self) -> None:
        self._chunks = self._parts = None
        self._views = {}

    def state_views(self, key: str) -> list[Any]:
        """Each parameter's view, shaped like it, into the flat state array ``key`` (in buffer order; made once)."""
        views = self._views.get(key)
        if views is None:
            flat = self.state[key]
            views = self._views[key] = [self.buffer.view(flat, j) for j in range(len(self.buffer.params))]
        return views

    def parts(self, keys: tuple[str, ...], split: bool = True) -> list[tuple[Any, Any, dict[str, Any], bool]]:
        """``(w, grad, state, decay)`` views of the whole buffer, or of its decayed part and the rest with ``split``."""
        if self._parts is None or (keys, split) != self._parts_keys:
            buf, n = self.buffer, self.buffer.n_decay
            bounds = [(0, n, True), (n, buf.size, False)] if split else [(0, buf.size, False)]
            self._parts = [(buf.value[a:b], buf.grad[a:b], {k: self.state[k][a:b] for k in keys}, decay)
                           for a, b, decay in bounds if b > a]
            self._parts_keys = (keys, split)
        return self._parts

    def chunks(self, keys: tuple[str, ...], split: bool = True) -> list[tuple[Any, Any, dict[str, Any], list[Any], bool]]:
        """``(w, grad, state, work, decay)`` views for each chunk (made once, reused every step)."""
        if self._chunks is None or (keys, split) != self._keys:
            buf = self.buffer
            self._chunks = [(buf.value[a:b], buf.grad[a:b], {k: self.state[k][a:b] for k in keys},
                             [w[:b - a] for w in self.work], decay) for a, b, decay in self.ranges[split]]
            self._keys = (keys, split)
        return self._chunks


__all__ = ["CHUNK_BYTES", "KERNEL_MIN_SIZE", "FusedStep"]
