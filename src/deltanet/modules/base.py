"""The ``Module`` contract: explicit forward and backward passes.

A module maps an input array to an output array (``forward``) and maps the
gradient of the loss with respect to its output back to the gradient with
respect to its input (``backward``), accumulating the gradients of its own
parameters on the way. It keeps exactly what its backward pass needs from the
last forward pass (inputs or outputs, never recomputing the forward pass).

Every module is described by a plain dict ``{"type": ..., **hyper-parameters}``
(:meth:`Module.config`), from which :func:`build` rebuilds it: this is what
config files and model files hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy

from .. import backend
from ..errors import NonFiniteError
from ..parameter import Parameter

_REGISTRY: dict[str, type[Module]] = {}


class Module:
    """Base class of all layers, activations and containers.

    Subclasses implement ``forward(x, training=False)`` and
    ``backward(grad_out) -> grad_in`` and ``get_config()``; parameterised
    modules register their parameters with :meth:`add_parameter` (the order of
    registration is the order of :meth:`parameters`), containers their
    children with :meth:`add_child`, and persistent non-trainable arrays
    (running statistics) with :meth:`add_buffer`.

    ``module(x)`` is the same as ``module.forward(x)`` (evaluation mode).

    **Finite-input checks.** :meth:`_as_input` rejects NaN and infinity in
    data entering the network. A module that only ever receives another
    module's output skips that test (the shape and dtype checks stay):
    ``Sequential`` marks its children at positions > 0 at construction
    (:meth:`_set_internal_input`), and the one that receives the container's
    input keeps it. A NaN or infinity produced inside the network (diverging
    weights) still reaches the output, where the losses test it. Calling such
    a hidden module directly with your own data skips the test.
    """

    #: Whether the module is registered for :func:`build` under its class name.
    registered: ClassVar[bool] = True

    #: Whether :meth:`_as_input` tests the input for NaN and infinity (see "Finite-input checks" above). A hook:
    #: the fast path turns it off while its caller feeds data it tested once (:mod:`deltanet.accel.plan`).
    check_finite_input: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("registered", True):
            _REGISTRY[cls.__name__] = cls

    def __init__(self) -> None:
        self._params: dict[str, Parameter] = {}
        self._buffers: dict[str, Any] = {}
        self._children: list[tuple[str, Module]] = []

    # -- the contract ------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any, training: bool = False) -> Any:
        return self.forward(x, training=training)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this module (without ``"type"``)."""
        return {}

    def config(self) -> dict[str, Any]:
        """``{"type": class name, **get_config()}``: a JSON/TOML-ready description."""
        return {"type": type(self).__name__, **self.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        """Rebuild from :meth:`get_config`'s dict (containers override this)."""
        return cls(**config)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for an input of ``input_shape`` (batch axis included)."""
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Multiply-add count x 2 of one forward pass per sample (matrix products only)."""
        return sum(child.flops(child_shape) for child, child_shape in self._child_shapes(input_shape))

    def _child_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[Module, tuple[int, ...]]]:
        return []

    # -- device ------------------------------------------------------------
    def to(self, device: str) -> Module:
        """Move parameters, gradients and buffers to ``device`` (``"cpu"`` or ``"cuda"``) and make it the active
        one (:func:`deltanet.backend.select_device`); returns ``self``.

        Call it before building an optimizer (a fused optimizer holds views of the parameters); the
        :class:`~deltanet.Trainer` and the estimators do it for you with ``device=...``.
        """
        backend.select_device(device)
        move = backend.to_numpy if device == "cpu" else backend.device_array
        for m in self.modules():
            for p in m._params.values():
                p.value, p._grad = move(p.value), move(p.grad)
            for name, buf in list(m._buffers.items()):
                m._buffers[name] = move(buf)
        return self

    # -- registration ------------------------------------------------------
    def add_parameter(self, name: str, param: Parameter) -> Parameter:
        param.name = param.name or name
        self._params[name] = param
        return param

    def add_buffer(self, name: str, value: Any) -> None:
        self._buffers[name] = value

    def add_child(self, name: str, module: Module) -> Module:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: child {name!r} must be a Module, got {type(module).__name__}")
        self._children.append((name, module))
        return module

    def _set_internal_input(self, internal: bool) -> None:
        """Whether this module's input is always another module's output (``True``: skip the finite test).

        Containers pass it on to the children that receive their input.
        """
        self.check_finite_input = not internal

    def _name_parameters(self) -> None:
        """Give every parameter below this module its qualified name (``"0.weight"``)."""
        for name, p in self.named_parameters():
            p.name = name

    # -- traversal ---------------------------------------------------------
    def children(self) -> list[Module]:
        return [m for _, m in self._children]

    def modules(self) -> Iterator[Module]:
        """This module and every module below it, depth first."""
        yield self
        for _, child in self._children:
            yield from child.modules()

    def named_children(self) -> list[tuple[str, Module]]:
        """``(name, child)`` pairs in order (``"0"``, ``"1"``, ... in a ``Sequential``)."""
        return list(self._children)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(path, module)`` for this module (path ``""``) and every module below it: ``"1"``, ``"block.0"``, ..."""
        yield prefix.rstrip("."), self
        for name, child in self._children:
            yield from child.named_modules(f"{prefix}{name}.")

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(qualified name, parameter)`` in the order of :meth:`parameters`."""
        for name, p in self._params.items():
            yield prefix + name, p
        for name, child in self._children:
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        """All trainable parameters: this module's own in registration order
        (``weight`` before ``bias``), then each child's, in child order."""
        seen: set[int] = set()
        out = []
        for _, p in self.named_parameters():
            if id(p) not in seen:  # a module used twice contributes its parameters once
                seen.add(id(p))
                out.append(p)
        return out

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for name, b in self._buffers.items():
            yield prefix + name, b
        for name, child in self._children:
            yield from child.named_buffers(f"{prefix}{name}.")

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def generators(self) -> list[numpy.random.Generator]:
        """The random generators used by this module and its children (dropout masks)."""
        return [g for m in self.modules() for g in m._own_generators()]

    def _own_generators(self) -> list[numpy.random.Generator]:
        return []

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Qualified name -> array, for every parameter and buffer (references, not copies)."""
        state = {name: p.value for name, p in self.named_parameters()}
        state.update(dict(self.named_buffers()))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy arrays into the parameters and buffers; names and shapes must match exactly."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing {missing}, unexpected {extra}")
        for name, target in own.items():
            src = state[name]
            if tuple(src.shape) != tuple(target.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} has shape {tuple(src.shape)}, expected {tuple(target.shape)}")
            target[...] = src

    # -- helpers for subclasses -------------------------------------------
    def _label(self) -> str:
        return repr(self)

    def _missing_forward(self) -> RuntimeError:
        return RuntimeError(f"{self._label()}: backward() called before forward(); run forward first")

    def _as_input(self, x: Any, features: int | None = None, min_ndim: int = 2, dtype: Any = None) -> Any:
        """Validate and convert an input array.

        Checks that ``x`` is numeric with at least ``min_ndim`` axes and, when
        ``features`` is given, that its last axis has that size; converts it to
        ``dtype`` (one copy when the dtype differs); rejects NaN and infinity
        unless the input is another module's output (``check_finite_input``).
        """
        xp = backend.xp
        if not hasattr(x, "dtype"):
            x = numpy.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self._label()}: expected a numeric array, got dtype {x.dtype}")
        if x.ndim < min_ndim:
            expected = "(batch, " + (str(features) if features is not None else "features") + ")"
            raise ValueError(f"{self._label()}: expected input of shape {expected}, got {tuple(x.shape)} (rank {x.ndim}); "
                             "reshape a single sample with x[None, :]")
        if features is not None and x.shape[-1] != features:
            expected = f"(batch, {features})" if x.ndim == 2 else f"(..., {features})"
            raise ValueError(f"{self._label()}: expected input of shape {expected}, got {tuple(x.shape)}")
        if dtype is not None and x.dtype != dtype:
            x = xp.asarray(x, dtype=dtype)
        elif x.dtype.kind != "f":
            x = xp.asarray(x, dtype=backend.get_default_dtype())
        if self.check_finite_input:
            check_finite(x, self._label)         # the label is built only for the error message
        return x

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({args})"


#: Arrays up to this many elements are tested by ``isfinite(x).all()`` in :func:`check_finite`: below it
#: that beats the reduction with its floating-point error state (measured: benchmarks/results/measurements.md).
SMALL_CHECK = 32_768


def check_finite(x: Any, who: str | Callable[[], str]) -> None:
    """Raise :class:`NonFiniteError` if ``x`` holds NaN or infinity.

    Up to :data:`SMALL_CHECK` elements (a batch of logits, say) the exact test
    ``isfinite(x).all()`` is the cheapest. Above, one cheap reduction first,
    the exact elementwise test only when it is not finite: for a contiguous
    float array the BLAS dot product ``sum_i x_i^2`` (squares cannot cancel
    an infinity, so it is finite whenever every term is, barring overflow;
    about four times faster than a sum) for a row- or column-major array,
    otherwise the sum. ``who`` names the culprit in the message: a string, or
    a callable returning one, called only when there is an error.
    """
    xp = backend.xp
    if not x.size or x.dtype.kind not in "fc":
        return                                              # integers and booleans are always finite
    if x.size <= SMALL_CHECK:
        if bool(xp.isfinite(x).all()):
            return
    else:
        with numpy.errstate(over="ignore", invalid="ignore"):   # an overflow only sends us to the exact test
            if x.dtype.kind == "f" and (x.flags.c_contiguous or x.flags.f_contiguous):
                flat = backend.flat_view(x)                  # a view in memory order (row- or column-major)
                total = xp.dot(flat, flat)
            else:
                total = xp.sum(x)
        if math.isfinite(float(abs(total))):
            return
    bad = ~xp.isfinite(x)
    if bool(bad.any()):
        where = tuple(int(i) for i in numpy.argwhere(backend.to_numpy(bad))[0])
        name = who() if callable(who) else who
        raise NonFiniteError(f"{name}: input holds NaN or infinity (first at index {where}); clean the data or lower the learning rate")


def build(config: dict[str, Any]) -> Module:
    """Rebuild a module from its description ``{"type": name, **hyper-parameters}``."""
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"a module description is a dict with a 'type' key, got {config!r}")
    cfg = dict(config)
    kind = cfg.pop("type")
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"unknown module type {kind!r}; known types: {', '.join(sorted(registered_types()))}")
    try:
        return cls.from_config(cfg)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {kind}: {exc}") from exc


def registered_types() -> list[str]:
    """Names of the module types :func:`build` knows."""
    return sorted(_REGISTRY)
