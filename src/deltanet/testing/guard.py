"""The guard backend: NumPy arrays that refuse what a GPU namespace (CuPy) refuses.

CI has no GPU, yet the GPU path must never leave the array namespace. Running
the library under this namespace proves it on a CPU::

    from deltanet import backend
    from deltanet.testing import guard

    with backend.use_backend(guard.xp):
        out = model.forward(guard.xp.asarray(X))      # host -> "device", once
        with guard.hot():                             # the batch loop's work
            model.backward(loss.backward())

Its arrays are :class:`GuardArray`, a subclass of ``numpy.ndarray``, made by
the namespace :data:`xp` (every NumPy function, its outputs turned into
GuardArrays). What they refuse, with :class:`GuardViolation`:

Always (CuPy refuses these on any device array):

* a plain host ``numpy.ndarray`` (of one element or more dimensions) mixed
  into an operation with a GuardArray, or passed to a namespace function
  other than the host-to-device transfers (``asarray``, ``array``,
  ``asanyarray``, ``ascontiguousarray``, ``asfortranarray``): this is what a
  hidden ``numpy.asarray(device_array)`` turns into as soon as its result
  meets the device again;
* a non-ufunc ``numpy.`` function called on a GuardArray (``numpy.concatenate``
  where ``backend.xp.concatenate`` is meant);
* ``__array__`` (an explicit host conversion is :func:`asnumpy` or ``.get()``,
  CuPy's spelling).

Inside :func:`hot` (the batch loop: forward, backward, optimizer step):

* ``float()``, ``int()``, ``bool()``, ``operator.index()``, ``.item()``,
  ``.tolist()`` of an array, and Python iteration over one: each is a
  device-to-host copy and a synchronisation per call.

Like CuPy, full reductions and scalar indexing give 0-d arrays, not NumPy
scalars, so ``float(x.sum())`` is caught as well.

Counting host reads: inside :func:`count_reads` every such pull (whether or not
a :func:`hot` scope is open) and every explicit host copy (``.get()``,
:func:`asnumpy`) is counted, with the file and line of deltanet code that made
it -- the device-to-host synchronisations a GPU run would make
(``tests/test_host_reads.py`` counts those of a training epoch).

What it cannot see: ``numpy.asarray(guard_array)`` itself returns a plain
view without asking the subclass (NumPy does not call ``__array__`` on its own
subclasses); the refusal comes where that host array meets a GuardArray
again. The fast path (:mod:`deltanet.accel`) turns itself off for the guard
as it does for CuPy: ``xp.__name__`` is not ``"numpy"`` and the kernels and
BLAS calls take exact ``numpy.ndarray`` only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy

__all__ = ["GuardArray", "GuardViolation", "HostReads", "asnumpy", "count_reads", "hot", "is_hot", "xp"]


class GuardViolation(TypeError):
    """An operation a GPU namespace would refuse (or make a per-call host synchronisation of)."""


_hot = 0
_inside = 0          # depth of namespace calls: NumPy functions on GuardArrays are allowed there


@contextlib.contextmanager
def hot() -> Iterator[None]:
    """The batch loop's scope: scalars pulled from arrays are refused while it is open."""
    global _hot
    _hot += 1
    try:
        yield
    finally:
        _hot -= 1


def is_hot() -> bool:
    """Whether a :func:`hot` scope is open."""
    return _hot > 0


_TRANSFERS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray", "asfortranarray"})


def _host(a: Any) -> bool:
    """A plain NumPy array with elements (a 0-d array counts as a scalar, which CuPy accepts)."""
    return type(a) is numpy.ndarray and a.ndim > 0


def _refuse_host(args: Any, what: str) -> None:
    for a in args:
        if _host(a):
            raise GuardViolation(f"{what}: a host numpy.ndarray {a.shape} mixed with device arrays "
                                 "(move it with backend.xp.asarray once, outside the batch loop)")
        if isinstance(a, (list, tuple)):
            _refuse_host(a, what)


def _plain(a: Any) -> Any:
    if isinstance(a, GuardArray):
        return a.view(numpy.ndarray)
    if isinstance(a, (list, tuple)):
        return type(a)(_plain(v) for v in a)
    return a


def _wrap(r: Any) -> Any:
    if isinstance(r, numpy.ndarray):
        return r if isinstance(r, GuardArray) else r.view(GuardArray)
    if isinstance(r, numpy.generic):
        return numpy.asarray(r).view(GuardArray)
    if isinstance(r, tuple):
        return tuple(_wrap(v) for v in r)
    if isinstance(r, list):
        return [_wrap(v) for v in r]
    return r


class HostReads:
    """The host reads counted by :func:`count_reads`: ``where`` lists ``(what, "file:line < caller:line ...")``
    in order (paths inside the deltanet package)."""

    def __init__(self) -> None:
        self.where: list[tuple[str, str]] = []

    @property
    def count(self) -> int:
        return len(self.where)

    def by_line(self) -> dict[str, int]:
        """How many reads each place (``where``'s second entry) made."""
        out: dict[str, int] = {}
        for _, line in self.where:
            out[line] = out.get(line, 0) + 1
        return out


_counters: list[HostReads] = []


@contextlib.contextmanager
def count_reads() -> Iterator[HostReads]:
    """Count every host read of a GuardArray inside the block (see the module's docstring)."""
    counter = HostReads()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def _caller(depth: int = 3) -> str:
    """Where the read was asked for: ``"path:line"`` of the innermost frame outside this module and NumPy, and of
    up to ``depth - 1`` callers in deltanet after it (``"backend.py:159 < optim/clipping.py:24"``)."""
    frame = sys._getframe(2)
    found: list[str] = []
    marker = f"{os.sep}deltanet{os.sep}"
    while frame is not None and len(found) < depth:
        path = frame.f_code.co_filename
        if path != __file__ and f"{os.sep}numpy{os.sep}" not in path:
            if found and marker not in path:
                break                                             # left deltanet: the caller's own code
            short = path[path.rindex(marker) + len(marker):] if marker in path else os.path.basename(path)
            found.append(f"{short}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(found) if found else "?"


def _count(what: str) -> None:
    if _counters:
        where = _caller()
        for counter in _counters:
            counter.where.append((what, where))


def _scalar_refused(what: str) -> None:
    _count(what)
    if _hot:
        raise GuardViolation(f"{what} of a device array inside the batch loop (a host synchronisation per call)")


class GuardArray(numpy.ndarray):
    """A NumPy array that behaves like a device array (see the module's docstring)."""

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        _refuse_host(inputs, f"numpy.{ufunc.__name__}")
        if out is not None:
            _refuse_host(out, f"numpy.{ufunc.__name__}(out=...)")
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        if not _inside:
            raise GuardViolation(f"numpy.{func.__name__} called on a device array: use backend.xp.{func.__name__}")
        return _wrap(func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))

    def __array__(self, dtype: Any = None, copy: Any = None) -> numpy.ndarray:
        raise GuardViolation("implicit conversion of a device array to NumPy: use backend.to_numpy (or .get())")

    def __getitem__(self, key: Any) -> Any:
        return _wrap(super().__getitem__(key))

    def __float__(self) -> float:
        _scalar_refused("float()")
        return float(self.view(numpy.ndarray))

    def __int__(self) -> int:
        _scalar_refused("int()")
        return int(self.view(numpy.ndarray))

    def __index__(self) -> int:
        _scalar_refused("operator.index()")
        return self.view(numpy.ndarray).__index__()

    def __bool__(self) -> bool:
        _scalar_refused("bool()")
        return bool(self.view(numpy.ndarray))

    def __iter__(self) -> Iterator[Any]:
        _scalar_refused("Python iteration")
        return (_wrap(v) for v in self.view(numpy.ndarray))

    def item(self, *args: Any) -> Any:
        _scalar_refused(".item()")
        return self.view(numpy.ndarray).item(*args)

    def tolist(self) -> Any:
        _scalar_refused(".tolist()")
        return self.view(numpy.ndarray).tolist()

    def get(self) -> numpy.ndarray:
        """A host copy (CuPy's ``ndarray.get``)."""
        _count(".get()")
        return numpy.array(self.view(numpy.ndarray), copy=True)


def asnumpy(a: Any) -> numpy.ndarray:
    """A host copy of a GuardArray (CuPy's ``cupy.asnumpy``); other input goes through ``numpy.asarray``."""
    return a.get() if isinstance(a, GuardArray) else numpy.asarray(a)


def _function(name: str, f: Any) -> Any:
    transfer = name in _TRANSFERS

    def call(*args: Any, **kwargs: Any) -> Any:
        global _inside
        if not transfer:
            _refuse_host(args, f"xp.{name}")
            _refuse_host(kwargs.values(), f"xp.{name}")
        _inside += 1
        try:
            return _wrap(f(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()}))
        finally:
            _inside -= 1

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(f, "__doc__", None)
    return call


class _Namespace(types.ModuleType):
    """NumPy's names; its functions (and those of ``linalg``, ``fft``) return GuardArrays."""

    def __init__(self, name: str, source: types.ModuleType) -> None:
        super().__init__(name)
        self._source = source

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._source, attr)
        if isinstance(value, types.ModuleType) and attr in ("linalg", "fft"):
            value = _Namespace(f"{self.__name__}.{attr}", value)
        elif callable(value) and not isinstance(value, type):
            value = _function(attr, value)     # ufuncs and functions; dtypes and classes stay NumPy's
        setattr(self, attr, value)
        return value


#: The guard namespace: pass it to :func:`deltanet.backend.set_backend` / ``use_backend``.
xp = _Namespace("deltanet_guard", numpy)
xp.asnumpy = asnumpy
xp.ndarray = GuardArray
