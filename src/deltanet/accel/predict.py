"""The prediction engine: a network's eval-mode outputs for a whole data set, in chunks, reusing its buffers.

Why: a plain chunked forward of a 784-512-256-10 network on chunks of 1,024 rows
allocates 6 MiB per chunk and makes a bias pass and a NaN test per layer; this
engine runs the same matrix products with neither (see the list below; the
``predict`` rows of ``benchmarks/bench_train.py``). ``deltanet.predict`` calls it
through :func:`deltanet.accel.predict_chunks`.

::

    out = deltanet.predict(model, X, batch_size=1024)

equals ``concatenate([model.forward(X[s:s + batch_size]) for s in ...])`` (eval
mode: dropout off, batch norm on its running statistics) and runs the same
matrix products; it differs in how it treats memory:

- ``X`` is tested for NaN and infinity once, not by every module. When the
  first layer is a Linear with a weight row ``w_k`` free of zeros, the test
  reads one column of that layer's output, ``z_k = X w_k + b_k``: a NaN or
  infinity in ``x_ij`` makes ``x_ij w_kj`` NaN or infinite, and so the sum
  ``z_ik``, whatever the other terms (``inf - inf`` is NaN). ``inf * 0`` is
  NaN too, but a BLAS may skip the products of a zero weight: hence a row
  ``w_k`` without zeros. Only when that column is not finite is the chunk
  itself tested. A chunk's test then costs a pass over ``rows`` numbers
  instead of ``rows x features``. Otherwise
  (no such row, other first modules) each chunk is tested just before the
  products read it (from cache, then);
- a chain of layers (a :class:`~deltanet.modules.Sequential`, nested ones
  flattened) writes each :class:`~deltanet.modules.Linear`'s output
  ``z = h W^T + b`` into a buffer made for the first chunk and reused for
  every later one (and kept for the model's next ``predict``), and an
  activation that follows it (ReLU, LeakyReLU, sigmoid, tanh: those with
  ``apply``) overwrites that buffer with ``sigma(z)``. A plain forward of a
  784-512-256-10 network on chunks of 1,024 rows allocates 6 MiB per chunk,
  and handing such blocks back to the system and faulting them in again
  costs as much as a pass over them;
- between two Linear layers the bias is added by the matrix product itself,
  and the first layer's product adds onto rows of its bias (see
  :class:`_Chain`); the activations' passes remain;
- the outputs land in one array of ``len(X)`` rows.

Other modules (attention, normalization, dropout, residual blocks, layers
given input with more than two axes) run their own ``forward``. Nothing is
kept for ``backward``: after ``predict``, run ``forward`` before ``backward``.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy

from .. import backend
from ..errors import NonFiniteError
from ..modules.activations import Activation
from ..modules.base import Module, check_finite
from ..modules.containers import Sequential
from ..modules.linear import Linear
from . import blas
from .plan import input_prechecked


def predict(model: Module, X: Any, batch_size: int, check_finite: bool) -> Any:
    """The outputs of ``model`` in eval mode for every row of ``X`` (already in the model's dtype), ``batch_size``
    rows at a time; ``check_finite``: test ``X`` for NaN and infinity (once, cheaply: see the module's notes)."""
    n = X.shape[0]
    chain = _Chain(model, n, X.dtype, _BUFFERS.pop(model, None))   # taken, not shared: concurrent calls get their own
    # the finiteness test reads one column of the first layer's output (see the module's notes)
    column = _test_column(chain.modules[0]) if check_finite and X.ndim == 2 else None
    result = None
    try:
        with input_prechecked(model):
            for start in range(0, n, batch_size):
                chunk = X[start:start + batch_size]
                if check_finite and column is None:
                    _check_chunk(chunk, X)
                y = chain.run(chunk, None if column is None else (lambda z, chunk=chunk: _check_product(z[:, column], chunk, X)))
                if result is None:
                    result = backend.xp.empty((n, *y.shape[1:]), dtype=y.dtype)
                result[start:start + y.shape[0]] = y
    finally:
        _BUFFERS[model] = chain.buffers
    return result


#: Each model's buffers from its last ``predict``, for the next one (a few MiB: one chunk's activations).
_BUFFERS: weakref.WeakKeyDictionary[Module, list[Any]] = weakref.WeakKeyDictionary()


def _check_chunk(chunk: Any, X: Any) -> None:
    """Test one chunk for NaN and infinity just before its products read it (from cache, then), naming
    the culprit's index in the whole of ``X``."""
    try:
        check_finite(chunk, "X")
    except NonFiniteError:
        check_finite(X, "X")
        raise


def _test_column(first: Module) -> int | None:
    """The index ``k`` of the first weight row without a zero when ``first`` is a Linear (None otherwise,
    or when every row has a zero): ``z_k`` is not finite wherever a row of the input is not."""
    if not isinstance(first, Linear):
        return None
    w = first.weight.value
    if w[0].all():                                    # almost always: trained weights are rarely exactly 0
        return 0
    full = (w != 0).all(axis=1)                       # else one pass over W, not a Python loop over its rows
    return int(full.argmax()) if bool(full.any()) else None


def _check_product(z_k: Any, chunk: Any, X: Any) -> None:
    """After the first layer, ``z_k = chunk w_k + b_k`` (one column of its output): test the chunk itself
    only when ``z_k`` is not finite (a finite chunk whose product overflowed passes, as in ``forward``)."""
    try:
        check_finite(z_k, "X W^T")
    except NonFiniteError:
        _check_chunk(chunk, X)


def _flatten(model: Module) -> list[Module]:
    """The modules ``model`` runs one after the other: a Sequential's children, nested ones flattened."""
    if type(model) is Sequential:
        return [m for child in model.children() for m in _flatten(child)]
    return [model]


def _in_place(m: Module) -> bool:
    """Whether ``m`` can overwrite its input with its output (an activation with ``apply``)."""
    return isinstance(m, Activation) and m.apply is not None


class _Chain:
    """A model's modules in order, with the buffers of one ``predict`` call.

    A Linear whose output reaches a Linear with a bias through in-place
    activations only writes into a buffer with a trailing column of ones,
    ``[h, 1]``, and that next Linear multiplies it by ``[W | b]`` (built once
    per call, when there are at least as many rows to predict as the next
    layer has inputs): ``[h, 1] [W | b]^T = h W^T + b``, the bias added by the
    matrix product itself instead of a pass over its output. Passes over such a
    buffer run over whole rows, the column of ones included (NumPy runs over a
    contiguous array about twice as fast as over a strided view): an activation
    maps the ones too and they are reset when ``sigma(1) != 1``. A first layer
    writes such a buffer as rows ``[b, 1]`` and has the product add ``h W^T``
    to them (``C <- h W^T + C``, :func:`deltanet.accel.blas.gemm`): one write-only pass
    instead of a read-and-write bias pass after the product (without NumPy's
    BLAS: product, then ``[b, 1]`` added over whole rows and the ones reset).
    """

    def __init__(self, model: Module, rows: int, dtype: Any, buffers: list[Any] | None = None) -> None:
        xp = backend.xp
        self.modules = _flatten(model)
        k = len(self.modules)
        self.buffers: list[Any] = buffers if buffers is not None and len(buffers) == k else [None] * k
        self.ones_column = [False] * k                # step i's buffer carries a column of ones
        self.with_bias: list[Any] = [None] * k        # step j's [W | b], for input with that column
        self.bias_and_one: list[Any] = [None] * k     # step i's [b, 1], for its own buffer with that column
        self.keeps_one = [True] * k                   # whether activation i maps 1 to 1
        for i, m in enumerate(self.modules):
            if _in_place(m):
                self.keeps_one[i] = bool(m.apply(xp.ones(1, dtype=dtype))[0] == 1)
            j = i + 1
            while j < k and _in_place(self.modules[j]):
                j += 1
            nxt = self.modules[j] if j < k else None
            # worth it when the bias pass it saves (rows x d_out) outweighs copying [W | b] (d_in x d_out)
            if isinstance(m, Linear) and isinstance(nxt, Linear) and nxt.bias is not None and rows >= nxt.in_features:
                self.ones_column[i] = True
                if m.bias is not None:
                    self.bias_and_one[i] = xp.concatenate([m.bias.value, xp.ones(1, dtype=m.dtype)])
                if self.with_bias[j] is None:
                    wb = self.with_bias[j] = xp.empty((nxt.out_features, nxt.in_features + 1), dtype=nxt.dtype, order="F")
                    wb[:, :-1] = nxt.weight.value
                    wb[:, -1] = nxt.bias.value

    def run(self, h: Any, check_first: Any = None) -> Any:
        """One chunk through the chain; ``check_first(z)`` is called on the first layer's output ``h W^T + b``."""
        owned = False                                 # whether h is a buffer of this call
        augmented = None                              # the rows [h, 1], when h has a column of ones beside it
        for i, m in enumerate(self.modules):
            if isinstance(m, Linear) and h.ndim == 2:
                if check_first is None:
                    z, full = self._linear(i, m, h, augmented)
                else:
                    with numpy.errstate(invalid="ignore", over="ignore"):   # check_first reports a NaN in the data
                        z, full = self._linear(i, m, h, augmented)
                    check_first(full)
                    check_first = None
                h, owned = z, True
                augmented = full if self.ones_column[i] else None
            elif owned and _in_place(m):
                if augmented is None:
                    h = m.apply(h, out=h)             # sigma(z) over z's own buffer
                else:
                    m.apply(augmented, out=augmented)
                    if not self.keeps_one[i]:
                        augmented[:, -1] = 1
            else:
                h, owned, augmented = m.forward(h, training=False), False, None
        return h

    def _linear(self, i: int, m: Linear, h: Any, augmented: Any) -> tuple[Any, Any]:
        """Step ``i``, a Linear: ``z = h W^T + b`` into its buffer; returns ``z`` and the buffer's rows."""
        xp = backend.xp
        full = self._buffer(i, m, h.shape[0])
        z = full[:, :m.out_features] if self.ones_column[i] else full
        if augmented is not None and self.with_bias[i] is not None:
            xp.matmul(augmented, self.with_bias[i].T, out=z)                # [h, 1] [W | b]^T = h W^T + b
            return z, full
        x = m._as_input(h, m.in_features, dtype=m.dtype)
        if self.ones_column[i]:
            if m.bias is None:
                xp.matmul(x, m.weight.value.T, out=z)                       # h W^T
            elif blas.available():
                full[...] = self.bias_and_one[i]                           # rows [b, 1], written without reading
                blas.gemm(1.0, x, m.weight.value.T, 1.0, z)                # + h W^T, added by the product itself
            else:
                xp.matmul(x, m.weight.value.T, out=z)                       # h W^T
                full += self.bias_and_one[i]                               # + b over whole rows (contiguous) ...
                full[:, -1] = 1                                            # ... and the ones back
        else:
            m.affine(x, out=z)
        return z, full

    def _buffer(self, i: int, m: Linear, rows: int) -> Any:
        """Step ``i``'s output rows: ``(rows, out_features)``, plus a last column of ones when
        ``ones_column[i]``. Created for the first chunk; a shorter last chunk takes the leading rows of a
        row-major buffer, and gets a column-major one of its own."""
        buf = self.buffers[i]
        width = m.out_features + self.ones_column[i]
        order = "F" if rows < m.column_major_below else "C"       # the faster layout, as in Linear.forward
        if (buf is None or buf.shape[0] < rows or buf.shape[1] != width or buf.dtype != m.dtype
                or (buf.shape[0] > rows and buf.flags.f_contiguous) or (order == "F") != buf.flags.f_contiguous):
            buf = self.buffers[i] = backend.xp.empty((rows, width), dtype=m.dtype, order=order)
            if self.ones_column[i]:
                buf[:, -1] = 1
        return buf[:rows]


__all__ = ["predict"]
