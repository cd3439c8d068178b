"""Weight initializers, with the reference's variances.

Each takes ``(shape, rng, dtype)`` where ``shape = (fan_out, fan_in)`` as for
``Linear.weight``, and returns a new array.

=================  =====================================  ========================
name               distribution                           use
=================  =====================================  ========================
``xavier_normal``  N(0, 2 / (d_in + d_out))               sigmoid, tanh, softmax
``xavier_uniform`` U(-a, a), a = sqrt(6 / (d_in + d_out))  same variance, bounded
``he_normal``      N(0, 2 / d_in)                         ReLU family (default)
``he_uniform``     U(-a, a), a = sqrt(6 / d_in)           same variance, bounded
``zeros``          0                                      biases
=================  =====================================  ========================

Drawing and dtype: float64 weights are drawn exactly as before (float64
normal or uniform draws in C order, scaled), so a seed gives bit-identical
float64 models. float32 weights are drawn directly in float32
(``Generator.standard_normal(dtype=float32)``, or ``Generator.random(dtype=float32)``
mapped to [-a, a)), filled in the memory order of the result, so the peak
memory is the weight itself (a 100,000 x 100,000 float32 layer needs 40 GB,
not 120): the same seed gives different (equally distributed) float32 values
than drawing in float64 and rounding, as deltanet 0.1.0 did. The keyword
``order="F"`` (what :class:`~deltanet.modules.Linear` asks for, its weights
being column-major) returns a Fortran-ordered array; float32 entries are then
drawn column by column.

References: Glorot & Bengio (2010), "Understanding the difficulty of training
deep feedforward neural networks"; He et al. (2015), "Delving Deep into
Rectifiers" (https://arxiv.org/abs/1502.01852).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy

from . import backend

Shape = tuple[int, ...]


def _fans(shape: Shape) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"initializers need a shape (fan_out, fan_in, ...), got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _empty(shape: Shape, dtype: numpy.dtype, order: str) -> numpy.ndarray:
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F', got {order!r}")
    return numpy.empty(shape, dtype=dtype, order=order)


def _normal(std: float, shape: Shape, rng: numpy.random.Generator, dtype: Any, order: str = "C") -> Any:
    dt = backend.resolve_dtype(dtype)
    if dt == numpy.float64:  # the original float64 draws, bit for bit
        w = rng.standard_normal(shape)
        w *= std
        return backend.xp.asarray(w, order=order)
    w = _empty(shape, dt, order)
    rng.standard_normal(out=w, dtype=dt)  # drawn in float32, in memory order: no float64 temporary
    w *= dt.type(std)
    return backend.xp.asarray(w)


def _uniform(limit: float, shape: Shape, rng: numpy.random.Generator, dtype: Any, order: str = "C") -> Any:
    dt = backend.resolve_dtype(dtype)
    if dt == numpy.float64:  # the original float64 draws, bit for bit
        return backend.xp.asarray(rng.uniform(-limit, limit, size=shape), order=order)
    w = _empty(shape, dt, order)
    rng.random(out=w, dtype=dt)           # U[0, 1) in float32, in memory order
    w *= dt.type(2.0 * limit)
    w -= dt.type(limit)                   # U[-a, a)
    return backend.xp.asarray(w)


def xavier_normal(shape: Shape, rng: Any = None, dtype: Any = None, *, order: str = "C") -> Any:
    r"""W_ij ~ N(0, 2 / (d_in + d_out)) (Glorot normal).

    $$W_{ij} \sim \mathcal{N}\Bigl(0, \frac{2}{d_\text{in} + d_\text{out}}\Bigr)$$
    """
    fan_in, fan_out = _fans(shape)
    return _normal(math.sqrt(2.0 / (fan_in + fan_out)), shape, backend.make_rng(rng), dtype, order)


def xavier_uniform(shape: Shape, rng: Any = None, dtype: Any = None, *, order: str = "C") -> Any:
    """W_ij ~ U(-a, a), a = sqrt(6 / (d_in + d_out)) (Glorot uniform; variance 2 / (d_in + d_out))."""
    fan_in, fan_out = _fans(shape)
    return _uniform(math.sqrt(6.0 / (fan_in + fan_out)), shape, backend.make_rng(rng), dtype, order)


def he_normal(shape: Shape, rng: Any = None, dtype: Any = None, *, order: str = "C") -> Any:
    r"""W_ij ~ N(0, 2 / d_in) (He / Kaiming normal, for ReLU).

    $$W_{ij} \sim \mathcal{N}\Bigl(0, \frac{2}{d_\text{in}}\Bigr)$$
    """
    fan_in, _ = _fans(shape)
    return _normal(math.sqrt(2.0 / fan_in), shape, backend.make_rng(rng), dtype, order)


def he_uniform(shape: Shape, rng: Any = None, dtype: Any = None, *, order: str = "C") -> Any:
    """W_ij ~ U(-a, a), a = sqrt(6 / d_in) (He uniform; variance 2 / d_in)."""
    fan_in, _ = _fans(shape)
    return _uniform(math.sqrt(6.0 / fan_in), shape, backend.make_rng(rng), dtype, order)


def zeros(shape: Shape, rng: Any = None, dtype: Any = None, *, order: str = "C") -> Any:
    """All zeros (``rng`` is ignored)."""
    return backend.xp.zeros(shape, dtype=backend.resolve_dtype(dtype), order=order)


INITIALIZERS: dict[str, Callable[..., Any]] = {
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "zeros": zeros,
}

#: Short names accepted by ``Linear(init=...)``.
ALIASES = {"xavier": "xavier_normal", "glorot": "xavier_normal", "he": "he_normal", "kaiming": "he_normal"}


def get(name: str | Callable[..., Any]) -> Callable[..., Any]:
    """Look up an initializer by name (``"he"``, ``"xavier_uniform"``, ...) or pass a callable through."""
    if callable(name):
        return name
    key = ALIASES.get(name, name)
    if key not in INITIALIZERS:
        valid = ", ".join(sorted([*INITIALIZERS, *ALIASES]))
        raise ValueError(f"unknown initializer {name!r}; choose one of: {valid}")
    return INITIALIZERS[key]
