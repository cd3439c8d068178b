"""The optimizer contract, hyper-parameter validation, the scratch space and the fused (flat-buffer) step."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

from .. import backend, blas
from ..accel import kernels
from ..parameter import Parameter
from .flat import FlatBuffer, flatten


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number, got {value!r}") from exc


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """Validate a finite hyper-parameter > 0 (or >= 0): ``lr must be > 0, got -0.1``."""
    v = _as_float(name, value)
    if not (v >= 0 if allow_zero else v > 0) or not math.isfinite(v):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return v


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False, open_left: bool = False) -> float:
    """Validate a hyper-parameter in [0, 1) (or [0, 1], (0, 1), (0, 1]):
    ``momentum must be in [0, 1), got 1.5``."""
    v = _as_float(name, value)
    ok_left = v > 0.0 if open_left else v >= 0.0
    ok_right = v <= 1.0 if closed_right else v < 1.0
    if not (ok_left and ok_right):
        interval = f"{'(' if open_left else '['}0, 1{']' if closed_right else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return v


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """Validate an integer hyper-parameter >= ``minimum``: ``patience must be an int >= 0, got -1``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Optimizer:
    """Base class: holds the parameters, the learning rate and per-parameter state.

    Subclasses name their published update rule, :attr:`rule` (a function of
    :mod:`deltanet.optim.rules`: a few in-place array operations on a value,
    its gradient and its state arrays, for arrays of any shape) with
    :meth:`rule_arguments`, or override :meth:`_rule`; and implement
    :meth:`state_keys` and :meth:`hyperparameters`. :attr:`kernel` names the
    rule's compiled one-pass counterpart, which the fused step runs instead
    where it can (:mod:`deltanet.accel.kernels`). The
    learning rate ``lr`` is a plain attribute that schedules set; ``step()``
    applies one update to every parameter from its current ``grad`` (the
    gradient itself is never modified); ``state_dict()`` /
    ``load_state_dict()`` capture everything needed to resume exactly
    (hyper-parameters, step count and state arrays).

    Weight decay applies only to parameters with ``decay=True`` (weights, not
    biases or normalization parameters).

    Parameters
    ----------
    params : iterable of Parameter
        Usually ``model.parameters()``; each parameter at most once.
    lr : float
        Learning rate (> 0).
    fused : bool
        True (the default): update all parameters of one dtype together over
        one flat value buffer and one flat gradient buffer
        (:mod:`deltanet.optim.flat`). The parameters are moved there when the
        optimizer is built, with one visible effect: each ``p.value`` and
        ``p.grad`` array object is replaced by a view into the buffers, with
        identical contents (keep the Parameter, not an array taken from it
        before; a module reads ``self.weight.value`` at each call). False: one
        update per parameter on its own arrays. Both run the same operations
        element by element, so they give the same numbers bit for bit (where
        the compiled kernel runs the fused step, up to its flush-to-zero below
        float resolution, see :mod:`deltanet.accel.kernels.optim`); the
        fused step is faster (1.3x-2x for a 0.5M-parameter MLP on a CPU, see
        ``benchmarks/bench_optim.py``), most for many small parameters.

    Notes
    -----
    Per-parameter state lives in ``self.state[i]`` (a dict of arrays shaped
    like parameter ``i``), created on the first step; :meth:`state_dict` has
    the same layout either way, so a state saved by a fused optimizer loads
    into an unfused one and back. When fused, those arrays are views into one
    flat array per dtype and state key, and the rule runs over chunks of
    :attr:`chunk_bytes` per array so that all its passes over one chunk find
    the data in the CPU's L2 cache. Temporaries go to preallocated scratch
    arrays, so a step allocates no arrays after the first one.

    If a parameter is later rebound elsewhere (another fused optimizer over an
    overlapping but different parameter list) or its ``decay`` flag changes,
    the next ``step()`` notices and flattens again (a copy; correct, only
    slower if two such optimizers alternate). A pickled or deep-copied
    optimizer flattens its copies of the parameters again when it is loaded.
    """

    #: Number of scratch arrays ``work`` that :meth:`_rule` receives.
    n_work = 2
    #: Fused updates run over chunks of this many bytes per array (128 KiB = 32,768 float32: with a 2 MiB
    #: L2 cache the fastest of 32 KiB to 1 MiB and whole buffers, see benchmarks/bench_optim.py --chunks);
    #: None: the whole buffer at once. NumPy only; another backend (a GPU) always takes the whole buffer.
    chunk_bytes: int | None = 1 << 17
    #: Every this many steps, flush subnormal numbers in the values and the state to 0 (see
    #: :meth:`_flush_subnormals`); None or 0 never does.
    flush_subnormals_every: int | None = 64
    #: The weight decay / L2 rate lambda (0: none). Rules apply it to the parameters with ``decay=True``.
    weight_decay: float = 0.0
    #: The BLAS paths of a step (:meth:`fold_gradients`, Adam's axpby / axpy) are taken only when the parameters
    #: have at least this many elements in all: below that NumPy's few passes cost less than the ctypes calls'
    #: fixed overhead (measured: a 64-32-10 network, 2,410 parameters, trains 1.5x slower folded and 1.2x
    #: slower with Adam's BLAS calls; 784-512-256-10, 0.5M, 1.2x and 1.1x faster).
    blas_min_size: int = 1 << 16
    #: Whether :meth:`step` also measures ``sqrt(sum_p ||grad_p||^2)`` of the gradients it applies, into
    #: :attr:`last_grad_norm`: chunk by chunk while each is in cache, cheaper than a separate pass
    #: (the trainer turns it on when nothing needs the norm before the update).
    measure_grad_norm: bool = False
    #: The gradient norm measured by the last :meth:`step` (None when ``measure_grad_norm`` was off).
    last_grad_norm: float | None = None

    def __init__(self, params: Iterable[Parameter], lr: float, *, fused: bool = True) -> None:
        self.params: list[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__}: expected Parameters (model.parameters()), got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the parameter list")
        self.lr = check_positive("lr", lr)
        self._n_elements = sum(p.size for p in self.params)
        self.step_count = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._workspace: dict[tuple[str, int], Any] = {}
        self._fused = bool(fused)
        self._folding = False
        self._groups: list[_Group] = []
        if self._fused:
            self._regroup()

    @property
    def fused(self) -> bool:
        """Whether the update runs over flat buffers (fixed at construction)."""
        return self._fused

    @property
    def flat_buffers(self) -> list[FlatBuffer]:
        """The flat buffers the fused update works on, one per dtype (empty when not fused)."""
        return [group.buffer for group in self._groups]

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's hyper-parameters (without ``params``); JSON-able values."""
        return {"lr": self.lr}

    def state_keys(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays the rule uses with the current hyper-parameters."""
        return ()

    def zero_grad(self) -> None:
        """Zero every parameter's gradient (lazily), ending a :meth:`fold_gradients` that no step used."""
        self._folding = False
        for p in self.params:
            p.zero_grad()

    # -- folded gradients -----------------------------------------------------
    def fold_gradients(self) -> bool:
        """Have the next backward pass add the gradients straight into this optimizer's state; True if it will.

        Call it after :meth:`zero_grad` and before ``backward``; the next
        :meth:`step` then applies the update and ends the folding. For a rule
        whose state is a running sum of the gradients, ``s <- beta s + g``
        (:meth:`_fold_spec`; SGD's momentum buffer), each parameter adds its
        gradient to its slice of ``s`` (:meth:`Parameter.fold_gradient`): a
        weight's gradient product ``delta^T h`` is computed into ``s`` in the
        same BLAS call that scales ``s`` by ``beta`` (:func:`deltanet.blas.gemm`),
        and the step has no pass over the gradients left to make. The update
        is the same rule, up to rounding.

        The gradients are never formed in such a step: ``p.grad`` cannot be
        read between ``backward`` and ``step``, so nothing may need them there
        (clipping, a gradient hook, gradient statistics), and
        :attr:`last_grad_norm` is None afterwards. Returns False, and nothing
        changes, where the rule keeps no such sum (Adam, RMSprop, plain or
        Nesterov SGD), for an unfused optimizer, for fewer than
        :attr:`blas_min_size` parameter elements, or where NumPy's BLAS is not
        available for the update (:func:`deltanet.blas.available`).
        """
        if self._n_elements < self.blas_min_size or not self._fused:        # the cheapest test first: called every batch
            return False
        spec = self._fold_spec() if blas.available() and backend.xp.__name__ == "numpy" else None
        if spec is None:
            return False
        if self._folding:                              # armed already, perhaps with gradients in: leave it
            return True
        key, beta = spec
        if not all(group.buffer.is_bound() for group in self._groups):   # no sync: the gradients are not used
            self._regroup()
        for group in self._groups:
            self._create_flat_state(group, (key,))
            for p, target in zip(group.buffer.params, group.state_views(key), strict=True):
                p.fold_gradient(target, beta)
        self._folding = True
        return True

    def _fold_spec(self) -> tuple[str, float] | None:
        """``(state key, beta)`` when the rule's state ``s`` follows ``s <- beta s + g`` this step, else None."""
        return None

    def _folded_update(self, group: _Group) -> None:
        """The rest of the rule once every gradient is in the state (the update of ``group.buffer.value``)."""
        raise NotImplementedError

    def _folded_step(self) -> None:
        key, beta = self._fold_spec()
        for group in self._groups:
            for p, target in zip(group.buffer.params, group.state_views(key), strict=True):
                if not p.unfold():                     # no gradient reached it: g = 0, s <- beta s
                    target *= beta
            self._folded_update(group)

    def step(self) -> None:
        """Apply one update to every parameter from its current ``grad`` (or the folded gradients)."""
        self.step_count += 1
        measure = self.measure_grad_norm
        if self._folding:
            self._folding = False
            self._folded_step()
            sq, measure = 0.0, False
        elif self.fused:
            sq = self._fused_step(measure)
        else:
            sq = 0.0
            for p, state in zip(self.params, self.state, strict=True):
                if measure:
                    sq += backend.sum_of_squares(p.grad)
                self._update(p, state)
        self.last_grad_norm = math.sqrt(sq) if measure else None
        if (self.flush_subnormals_every and self.step_count % self.flush_subnormals_every == 0
                and not (self.fused and self._compiled_kernel() is not None)):   # the kernels store none
            self._flush_subnormals()

    def _flush_subnormals(self) -> None:
        """Set values and state entries smaller in magnitude than the dtype's smallest normal number to 0.

        Weight decay and Adam's moment averages shrink the weights of inputs
        that are always zero (an image's border pixels) geometrically, into
        subnormal numbers; CPUs process those tens of times slower, and one
        such weight matrix can double the time of the matrix products that use
        it. Flushing them (what ``torch.set_flush_denormal(True)`` does in
        hardware) changes no value by more than ``finfo(dtype).tiny``
        (1.2e-38 in float32).
        """
        xp = backend.xp
        if self.fused:
            arrays = [g.buffer.value for g in self._groups] + [a for g in self._groups for a in g.state.values()]
        else:
            arrays = [p.value for p in self.params] + [a for st in self.state for a in st.values()]
        for a in arrays:
            a[xp.abs(a) < xp.finfo(a.dtype).tiny] = 0

    #: The published update rule, a function of :mod:`deltanet.optim.rules` (called with the keyword
    #: arguments of :meth:`rule_arguments`); None in a subclass that overrides :meth:`_rule` instead.
    rule: Any = None
    #: The name of the rule's compiled one-pass kernel in :mod:`deltanet.accel.kernels.optim` (None: none).
    kernel: str | None = None
    #: The kernel runs only for at least this many parameter elements: below it, importing Numba and a parallel
    #: launch per step cost more than the NumPy passes save (the default job, 50,826 parameters: 5.7 s with the
    #: kernel, 4.9 s without; 784-1024-1024-10: Adam's step 4.0 ms -> 0.7-1.2 ms).
    kernel_min_size: int = 1 << 16

    def rule_arguments(self) -> dict[str, Any]:
        """The keyword arguments of :attr:`rule` (and of its kernel) for this step: hyper-parameters and ``t``."""
        return {"lr": self.lr}

    def _rule(self, w: Any, grad: Any, state: dict[str, Any], work: Sequence[Any], decay: bool) -> None:
        """The update rule, in place on ``w`` and the arrays of ``state``: :attr:`rule` with :meth:`rule_arguments`.

        ``w``, ``grad``, each ``state[key]`` (for every key of
        :meth:`state_keys`; created as zeros before the first step) and each
        of the ``n_work`` scratch arrays ``work`` (contents undefined) have
        the same shape: one parameter, or one chunk of a flat buffer.
        ``decay``: whether weight decay applies to these elements. ``grad``
        must not be modified. A subclass sets :attr:`rule` or overrides this.
        """
        if self.rule is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither rule nor _rule")
        self.rule(w, grad, state, work, decay=decay, **self.rule_arguments())

    # -- one parameter at a time (fused=False) --------------------------------
    def _update(self, p: Parameter, state: dict[str, Any]) -> None:
        for key in self.state_keys():
            if key not in state:
                state[key] = backend.xp.zeros_like(p.value)
        work = [self._work(p, slot) for slot in range(self.n_work)]
        self._rule(p.value, p.grad, state, work, p.decay)

    def _work(self, p: Parameter, slot: int = 0) -> Any:
        """A scratch array shaped like ``p`` (contents undefined, never saved).

        Each slot is one flat buffer per dtype, as large as the largest
        parameter, shared by all parameters: views into it cost no allocation.
        """
        key = (p.dtype.str, slot)
        buf = self._workspace.get(key)
        if buf is None:
            size = max(q.size for q in self.params if q.dtype == p.dtype)
            buf = self._workspace[key] = backend.xp.empty(size, dtype=p.dtype)
        return backend.view_like(buf[:p.size], p.value)

    # -- all parameters of a dtype at once (fused=True) -------------------------
    def _prepare_groups(self) -> None:
        """Make every group's flat buffer current: sync it, or flatten again when it went stale."""
        if not all([group.buffer.sync() for group in self._groups]):   # a list: sync every group
            self._regroup()
            for group in self._groups:
                group.buffer.sync()

    def _fused_step(self, measure: bool = False) -> float:
        """One update over the flat buffers; returns ``sum ||grad||^2`` when ``measure`` (else 0).

        Where the rule's compiled kernel can run (:func:`deltanet.accel.kernels.enabled` and
        :func:`~deltanet.accel.kernels.takes`), one parallel pass per part of each buffer (decayed
        parameters, the others); otherwise the rule chunk by chunk, each chunk in cache for all its passes.
        """
        self._prepare_groups()
        keys = self.state_keys()
        split = bool(self.weight_decay)               # without weight decay a chunk may span both kinds of parameters
        kernel = self._compiled_kernel()
        dot, sq = backend.xp.dot, 0.0
        for group in self._groups:
            self._create_flat_state(group, keys)
            if kernel is not None and kernels.takes(group.buffer.value):
                arguments = self.rule_arguments()
                for w, g, state, decay in group.parts(keys, split):
                    sq += kernel(w, g, state, decay=decay, measure=measure, **arguments)
                continue
            for w, g, state, work, decay in group.chunks(keys, split):
                if measure:
                    sq += float(dot(g, g))
                self._rule(w, g, state, work, decay)
        return sq

    def _compiled_kernel(self) -> Any:
        """The rule's one-pass kernel when compiled kernels run in this process and the rule is the kernel's reference."""
        if (self.kernel is None or self._n_elements < self.kernel_min_size or not kernels.enabled()
                or type(self)._rule is not Optimizer._rule):
            return None
        from ..accel.kernels.optim import KERNELS  # imports Numba: only once a kernel is needed

        kernel, reference = KERNELS[self.kernel]
        return kernel if type(self).rule is reference else None           # a subclass with a rule of its own: none

    def _regroup(self) -> None:
        """Flatten the parameters (one buffer per dtype) and move the state arrays into flat arrays."""
        index = {id(p): i for i, p in enumerate(self.params)}
        chunk = self.chunk_bytes if backend.xp.__name__ == "numpy" else None
        self._groups = [_Group(buf, [index[id(p)] for p in buf.params], self.n_work, chunk)
                        for buf in flatten(self.params)]
        self._pack_state()

    def _create_flat_state(self, group: _Group, keys: tuple[str, ...]) -> None:
        """Create the missing state arrays of ``keys`` as zeros."""
        missing = [key for key in keys if key not in group.state]
        for key in missing:
            flat = group.state[key] = backend.xp.zeros(group.buffer.size, dtype=group.buffer.dtype)
            for j, i in enumerate(group.index):
                self.state[i][key] = group.buffer.view(flat, j)
        if missing:
            group.invalidate()

    def _pack_state(self) -> None:
        """Copy the per-parameter state arrays into each group's flat arrays and make them views into those.

        Checked first, then copied: on a ValueError nothing has changed.
        """
        name = type(self).__name__
        plan = []
        for group in self._groups:
            keys = list(dict.fromkeys(k for i in group.index for k in self.state[i]))
            for key in keys:
                have = [self.params[i].name or str(i) for i in group.index if key in self.state[i]]
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
                    view[...] = self.state[i][key]          # converts the dtype of a loaded array
                    self.state[i][key] = view
                flats[key] = flat
            group.state = flats
            group.invalidate()

    # -- persistence ---------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"type", "hyperparameters", "step_count", "state": {"<i>.<key>": array}}``.

        Arrays are copies; everything else is JSON-able (ints, floats, bools,
        lists), so the dict can be saved without pickle (arrays to ``.npz`` or
        safetensors, the rest to JSON). The layout is the same for a fused and
        an unfused optimizer.
        """
        arrays = {f"{i}.{k}": backend.xp.array(v, copy=True) for i, st in enumerate(self.state) for k, v in st.items()}
        hyper = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyperparameters().items()}
        return {"type": type(self).__name__, "hyperparameters": hyper,
                "step_count": self.step_count, "state": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore hyper-parameters, step count and state arrays from :meth:`state_dict`."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: state is for {state.get('type')!r}, not {name}")
        known = self.hyperparameters()
        unknown = sorted(set(state["hyperparameters"]) - set(known))
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unknown hyper-parameters {unknown}; expected {sorted(known)}")
        arrays: list[dict[str, Any]] = [{} for _ in self.params]
        for key, value in state["state"].items():
            i_str, _, k = key.partition(".")
            if not i_str.isdigit() or not k or int(i_str) >= len(self.params):
                raise ValueError(f"{name}.load_state_dict: state key {key!r} does not match the {len(self.params)} parameters")
            p = self.params[int(i_str)]
            value = backend.xp.asarray(value)
            if tuple(value.shape) != p.shape:
                raise ValueError(f"{name}.load_state_dict: state {key!r} has shape {tuple(value.shape)}, "
                                 f"parameter {p.name!r} has shape {p.shape}")
            if not self.fused:
                value, loaded = backend.xp.empty_like(p.value), value      # a copy in the parameter's memory order
                value[...] = loaded
            arrays[int(i_str)][k] = value
        previous = self.state
        self.state = arrays
        if self.fused:
            try:
                self._pack_state()                 # copies into the flat arrays
            except ValueError:
                self.state = previous
                raise
        for k, v in state["hyperparameters"].items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.step_count = int(state["step_count"])

    # -- pickling (joblib, multiprocessing) ------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # pickle stores every view into the flat buffers as an array of its own, which would cut the
        # unpickled parameters off the buffers the fused step updates: leave the buffers out ...
        state = self.__dict__.copy()
        state["_groups"] = []
        state["_workspace"] = {}
        state["_folding"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_n_elements", sum(p.size for p in self.params))    # pickled by an older version
        self.__dict__.setdefault("_folding", False)
        if self.fused:
            self._regroup()            # ... and rebuild them from the parameters and the state arrays

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class _Group:
    """The fused path's view of one :class:`FlatBuffer`: the optimizer's flat state arrays, scratch arrays and chunks.

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
