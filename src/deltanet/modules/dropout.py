r"""Inverted dropout, with masks from a counter-based generator.

The mask of one forward pass is a function of one 64-bit key, drawn from the
module's seeded ``numpy.random.Generator``, and of each element's position:
element ``i`` (its row-major index in the array's shape) is kept when

    z_i = SplitMix64(key + (i + 1) gamma)  (mod 2^64),  keep_i = [ floor(z_i / 2^40) >= T ],  T = round(rate 2^24),

with SplitMix64's output function (Steele, Lea & Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014; the sequence ``key + k gamma``
through it is their generator, which passes BigCrush) and the top 24 bits
compared with the threshold: a unit is kept with probability
``1 - T / 2^24``, within 3e-8 of ``p = 1 - rate``. A mask so defined needs no
random numbers stored and can be computed by any code in any order: the NumPy
reference here (:func:`keep_mask`) and the compiled kernel of the fast path
(:mod:`deltanet.accel.kernels.dropout`, one pass that also applies it, and
recomputes it in the backward pass instead of storing it) give the same masks,
bit for bit, so a seeded run is the same on either path.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import accel, backend
from ..constraints import check
from .activations import _as_float_array
from .base import Module

#: SplitMix64's increment (2^64 / golden ratio) and its two multipliers.
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def keep_threshold(rate: float) -> int:
    """T = round(rate 2^24): a unit is dropped when the top 24 bits of its hash are below T."""
    return round(float(rate) * (1 << 24))


_COUNTERS: dict[tuple[Any, int], Any] = {}


def _counters(n: int) -> Any:
    """``(i + 1) gamma`` for i < n (mod 2^64), made once per size and namespace: every batch of a layer reuses it."""
    xp = backend.xp
    key = (xp, n)
    c = _COUNTERS.get(key)
    if c is None:
        if len(_COUNTERS) >= 16:                                   # a handful of layer sizes in use at a time
            _COUNTERS.clear()
        c = _COUNTERS[key] = xp.arange(1, n + 1, dtype=xp.uint64) * xp.uint64(GAMMA)
        if isinstance(c, numpy.ndarray):
            c.flags.writeable = False                              # shared: keep_mask only reads it
    return c


def keep_mask(key: int, shape: tuple[int, ...], rate: float) -> Any:
    """The dropout mask (True: kept) of ``key`` for an array of ``shape``: the module docstring's formula, in NumPy."""
    xp = backend.xp
    n = 1
    for d in shape:
        n *= int(d)
    u64 = xp.uint64
    z = _counters(n) + u64(key)                                    # key + (i + 1) gamma, wrapping mod 2^64
    z ^= z >> u64(30)
    z *= u64(MIX1)
    z ^= z >> u64(27)
    z *= u64(MIX2)
    z ^= z >> u64(31)
    return ((z >> u64(40)) >= u64(keep_threshold(rate))).reshape(shape)


def _scaled_mask(keep: Any, like: Any, scale: Any) -> Any:
    """``keep / p`` as an array of ``like``'s dtype and memory order (a Linear's column-major output stays so)."""
    mask = backend.xp.empty_like(like)
    mask[...] = keep
    mask *= scale
    return mask


class Dropout(Module):
    r"""Zero each unit with probability ``rate`` during training (inverted dropout).

    $$
    h_\text{out} = \frac{h \odot m}{p}, \quad m_i \sim \mathrm{Bernoulli}(p), \quad p = 1 - \text{rate},
    \qquad \frac{\partial L}{\partial h} = \frac{\partial L}{\partial h_\text{out}} \odot \frac{m}{p}
    $$

    Parameters
    ----------
    rate : float in [0, 1)
        Probability of *zeroing* a unit. The reference writes the mask as
        m ~ Bernoulli(p) with p the probability of *keeping* a unit: p = 1 - rate.
    rng : int, numpy.random.Generator or None
        Seed or generator of the masks (seeded: the same masks every run).

    Notes
    -----
    Training:  h_out = h * m / p,  m_i ~ Bernoulli(p),  p = 1 - rate
               dL/dh = dL/dh_out * m / p
    Eval:      h_out = h (the 1/p scaling at training time keeps the expected
               activation equal, so nothing changes at evaluation).

    Each training forward draws one key from ``rng``; the mask is
    :func:`keep_mask` of that key (see the module docstring).
    """

    def __init__(self, rate: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        self.rate = check("dropout", rate, "Dropout: rate")
        self.rng = backend.make_rng(rng)
        self._mask: Any = None          # the reference path's m / p
        self._key: int | None = None     # the kernel path's key (the mask is recomputed from it)
        self._shape: tuple[int, ...] = ()
        self._seen = False

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def _own_generators(self) -> list[numpy.random.Generator]:
        return [self.rng]

    def forward(self, x: Any, training: bool = False) -> Any:
        x = _as_float_array(self, x)
        self._seen = True
        self._key = self._mask = None
        if not training or self.rate == 0.0:
            return x
        key = int(self.rng.integers(0, 1 << 64, dtype=numpy.uint64))
        scale = x.dtype.type(1.0 / (1.0 - self.rate))             # m / p, with p = 1 - rate
        self._shape = x.shape
        kernel = accel.kernel("dropout", x)
        if kernel is not None:                                    # the same mask, applied in one compiled pass
            self._key = key
            return kernel(x, key, keep_threshold(self.rate), scale)
        self._mask = _scaled_mask(keep_mask(key, x.shape, self.rate), x, scale)
        return x * self._mask

    def backward(self, grad_out: Any) -> Any:
        if not self._seen:
            raise self._missing_forward()
        if self._mask is None and self._key is None:
            return grad_out
        if grad_out.shape != self._shape:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {self._shape}")
        if self._mask is None:                                    # the kernel's forward: recompute the mask
            kernel = accel.kernel("dropout", grad_out)
            scale = grad_out.dtype.type(1.0 / (1.0 - self.rate))
            if kernel is not None:
                return kernel(grad_out, self._key, keep_threshold(self.rate), scale)
            return grad_out * _scaled_mask(keep_mask(self._key, self._shape, self.rate), grad_out, scale)
        return grad_out * self._mask


