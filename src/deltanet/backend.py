"""The array namespace, the dtype policy and the random generators.

Every array operation in deltanet goes through :data:`xp`, the active array
namespace (NumPy today; CuPy exposes the same API, so a GPU backend is a
matter of :func:`set_backend`). Modules never import NumPy for math on their
own.

dtype policy
------------
float32 is the default (speed); float64 is available per module
(``dtype=...``) or globally with :func:`set_default_dtype` (gradient checks).
A module holds parameters of one dtype. An input of another dtype is
*converted once* at the module's entry (one copy), never mixed silently: a
float32 network fed float64 data computes in float32. Convert your data once
up front (the trainer does) to avoid that copy on every call.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy

#: The active array namespace (``numpy`` or a NumPy-compatible module such as ``cupy``).
xp: Any = numpy

_default_dtype = numpy.dtype(numpy.float32)

_FLOAT_DTYPES = ("float32", "float64")


def set_backend(name: str | Any) -> None:
    """Select the array namespace: ``"numpy"``, ``"cupy"``, or a NumPy-compatible module object.

    A module object is for test namespaces such as :mod:`deltanet.testing.guard`
    (NumPy arrays that refuse what CuPy refuses). Prefer :class:`use_backend`,
    which restores the previous namespace on exit.
    """
    global xp
    if not isinstance(name, str):
        if not hasattr(name, "asarray") or not hasattr(name, "__name__"):
            raise TypeError(f"a backend module needs asarray and __name__, got {type(name).__name__}")
        xp = name
        return
    if name not in ("numpy", "cupy"):
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {name!r}")
    try:
        xp = importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ImportError(f"backend {name!r} is not installed: pip install {name}") from exc


class use_backend:
    """Context manager that selects an array namespace temporarily (see :func:`set_backend`).

    >>> with use_backend("numpy"):
    ...     xp.zeros(2).shape
    (2,)
    """

    def __init__(self, name: str | Any) -> None:
        self._name = name
        self._saved: Any = None

    def __enter__(self) -> Any:
        self._saved = xp
        set_backend(self._name)
        return xp

    def __exit__(self, *exc: object) -> None:
        set_backend(self._saved)


DEVICES = ("cpu", "cuda")

GPU_INSTALL = "pip install 'deltanet[gpu]'  (CuPy for CUDA 12: cupy-cuda12x)"


def select_device(device: str) -> Any:
    """Make ``device`` the active one and return its array namespace: ``"cpu"`` is NumPy, ``"cuda"`` CuPy.

    Raises
    ------
    ValueError
        ``device`` is neither ``"cpu"`` nor ``"cuda"``.
    RuntimeError
        ``"cuda"`` without CuPy installed, or without a usable NVIDIA GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        set_backend("numpy")
        return xp
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise RuntimeError(f"device='cuda' needs CuPy, which is not installed: {GPU_INSTALL}") from exc
    try:  # pragma: no cover - needs a GPU
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - CuPy raises its own CUDARuntimeError without a driver
        raise RuntimeError(f"device='cuda': CuPy is installed but finds no usable NVIDIA GPU or driver ({exc})") from exc
    if count < 1:  # pragma: no cover
        raise RuntimeError("device='cuda': CuPy is installed but finds no NVIDIA GPU")
    set_backend(cupy)  # pragma: no cover
    return xp  # pragma: no cover


def device_array(a: Any) -> Any:
    """``a`` in the active namespace (a host-to-device copy under CuPy; no copy for NumPy input on the CPU)."""
    return xp.asarray(a)


def get_array_module(x: Any) -> Any:
    """Return the namespace that owns array ``x`` (NumPy or CuPy)."""
    module = type(x).__module__.split(".")[0]
    if module == "cupy":  # pragma: no cover - needs a GPU
        return importlib.import_module("cupy")
    return numpy


def to_numpy(x: Any) -> numpy.ndarray:
    """Bring an array to host memory as a NumPy array (no copy for NumPy input)."""
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):  # pragma: no cover
        return x.get()
    if isinstance(x, numpy.ndarray) and type(x) is not numpy.ndarray and hasattr(x, "get"):
        return x.get()                                # a test namespace's device-like array (deltanet.testing.guard)
    return numpy.asarray(x)


def view_like(flat: Any, like: Any) -> Any:
    """A view of the 1-D array ``flat`` (``like.size`` elements) with the shape of ``like`` and its memory order.

    Column-major ``like`` (the weights of :class:`~deltanet.modules.Linear`)
    gets a column-major view, anything else a row-major one, so that
    elementwise arithmetic between the two runs over both in the same order.
    """
    if like.ndim > 1 and like.flags.f_contiguous and not like.flags.c_contiguous:
        return flat.reshape(like.shape[::-1]).T
    return flat.reshape(like.shape)


def flat_view(a: Any) -> Any:
    """``a`` as a 1-D array in memory order: a view for a row- or column-major array (a copy otherwise).

    For order-free reductions such as ``dot(g, g)`` over a gradient, whatever the parameter's layout.
    """
    return a.T.reshape(-1) if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else a.reshape(-1)


def sum_of_squares(a: Any) -> float:
    r"""``||a||_2^2 = sum_i a_i^2`` (the squared Frobenius norm of a matrix) as a Python float.

    One BLAS dot over the array's memory, whatever its layout: ``xp.vdot`` would
    first copy a column-major weight to row-major order (single-threaded; 60x
    slower for a 1024 x 1024 weight). Accumulates in the array's dtype.
    """
    flat = flat_view(a)
    return float(xp.dot(flat, flat))


_ONES: dict[tuple[Any, Any], Any] = {}


def ones(n: int, dtype: Any) -> Any:
    """A read-only vector of ``n`` ones of ``dtype`` (a view into one cached vector per dtype).

    For sums over the batch axis as matrix-vector products, ``1^T A``: the BLAS
    sums the columns of a ``(batch, features)`` array faster than
    ``A.sum(axis=0)`` for the shapes of a network's layers
    (benchmarks/results/measurements.md).
    """
    key = (xp, dtype)                                 # the dtype as given (an array's, usually): no conversion per call
    vec = _ONES.get(key)
    if vec is None or vec.shape[0] < n:
        vec = xp.ones(max(n, 1024), dtype=dtype)
        if xp is numpy:
            vec.flags.writeable = False
        _ONES[key] = vec
    return vec[:n]


def resolve_dtype(dtype: Any = None) -> numpy.dtype:
    """Return the floating dtype to use: ``dtype`` if given, else the global default.

    Raises
    ------
    TypeError
        If ``dtype`` is not float32 or float64.
    """
    if dtype is None:
        return _default_dtype
    try:
        dt = numpy.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt.name not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt.name}")
    return dt


def get_default_dtype() -> numpy.dtype:
    """The dtype new modules get when none is given (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype of modules created from now on (``"float32"`` or ``"float64"``)."""
    global _default_dtype
    _default_dtype = resolve_dtype(dtype)


class default_dtype:
    """Context manager that sets the default dtype temporarily.

    >>> from deltanet import Linear
    >>> with default_dtype("float64"):
    ...     layer = Linear(3, 2)   # float64 parameters
    >>> layer.weight.value.dtype
    dtype('float64')
    """

    def __init__(self, dtype: Any) -> None:
        self._dtype = resolve_dtype(dtype)
        self._saved: numpy.dtype | None = None

    def __enter__(self) -> numpy.dtype:
        self._saved = get_default_dtype()
        set_default_dtype(self._dtype)
        return self._dtype

    def __exit__(self, *exc: object) -> None:
        set_default_dtype(self._saved)


def make_rng(rng: int | numpy.random.Generator | None) -> numpy.random.Generator:
    """Return a ``numpy.random.Generator`` from a seed, a generator, or ``None``.

    ``None`` draws fresh entropy from the operating system (not reproducible);
    pass an integer seed or a generator for reproducible results.
    """
    if isinstance(rng, numpy.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, numpy.integer)):
        if rng is not None and rng < 0:
            raise ValueError(f"seed must be >= 0, got {rng}")
        return numpy.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}")
