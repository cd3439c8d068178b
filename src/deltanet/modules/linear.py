"""The affine layer z = W h + b."""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from .. import init as initializers
from ..parameter import Parameter
from ..sparse import as_csr, is_sparse
from .base import Module


class Linear(Module):
    r"""Affine map ``z = W h + b``, batch-first: ``z = x @ W.T + b``.

    $$
    z = x W^\top + b,
    \qquad \frac{\partial L}{\partial W} = \delta^\top x,
    \qquad \frac{\partial L}{\partial b} = \sum_n \delta_n,
    \qquad \frac{\partial L}{\partial x} = \delta W
    $$

    Parameters
    ----------
    in_features, out_features : int
        d_{l-1} and d_l in the reference.
    bias : bool
        Whether to add the bias ``b``.
    init : str or callable
        Weight initializer (see :mod:`deltanet.init`): ``"he_normal"`` (the
        default, for ReLU-family activations; alias ``"he"``),
        ``"he_uniform"``, ``"xavier_normal"`` (alias ``"xavier"``, for
        sigmoid/tanh/softmax), ``"xavier_uniform"``, ``"zeros"``. Biases start at 0.
    rng : int, numpy.random.Generator or None
        Seed or generator for the initial weights.
    dtype : float32 (default) or float64.

    Attributes
    ----------
    weight : Parameter, shape ``(out_features, in_features)`` -- W in R^(d_l x d_{l-1}).
    bias : Parameter or None, shape ``(out_features,)`` -- not weight-decayed.

    Notes
    -----
    Shapes: ``x`` is ``(batch, ..., in_features)``, ``z`` is ``(batch, ..., out_features)``;
    leading axes are flattened into one batch axis of size ``n`` for the gradients.

    Forward:   z = x W^T + b
    Backward, given delta = dL/dz of shape (n, out_features):

        dL/dW = delta^T x          (the reference's delta h^T, summed over the batch;
                                    the 1/B is already in delta, see the losses)
        dL/db = sum_n delta
        dL/dx = delta W            (the reference's W^T delta, batch-first)

    Memory layout: the reference's column convention, z = W h with one sample
    per column, is also the BLAS's faster orientation for these shapes. ``W``
    is stored column-major (``weight.value`` is a Fortran-ordered array of
    shape ``(out_features, in_features)``; its gradient too), and for 2-D
    input the products write column-major results: ``z`` (and dL/dx) are
    ``(batch, features)`` arrays laid out feature by feature, i.e. the
    transpose of a contiguous ``(features, batch)`` array. Values and shapes
    are those of the formulas above; only the order of the numbers in memory
    differs (every NumPy operation accepts either). With OpenBLAS this makes
    the products of a 784-512-256-10 network faster at small batches; from
    about 512 rows on the row-major orientation is as fast or faster
    (measured: ``benchmarks/results/measurements.md``), so batches of
    :attr:`column_major_below` rows or more, and input with more axes,
    ``(batch, ..., in_features)``, get row-major results.
    """

    #: 2-D input with fewer rows than this gets column-major results (see "Memory layout"); larger batches,
    #: such as prediction in chunks of 1,024 rows, get row-major ones, the faster orientation there.
    column_major_below: int = 512
    #: Whether ``backward`` computes dL/dx. The first layer of a network being trained can skip it
    #: (``net[0].input_grad = False``; ``backward`` then returns None): nothing needs the gradient
    #: with respect to the data, and it costs as much as the layer's forward product.
    input_grad: bool = True
    #: Whether ``forward`` adds the bias and ``backward`` forms dL/db. A hook: for a trainer's fit the fast path
    #: may move both into the elementwise activation just after this layer (``Activation.bias``;
    #: :func:`deltanet.accel.plan.bias_in_activations`), which adds ``b`` in the pass that maps ``z``.
    #: :meth:`affine` (prediction) always adds it.
    adds_bias: bool = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: Any = "he_normal",
                 rng: Any = None, dtype: Any = None) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.dtype = backend.resolve_dtype(dtype)
        self.init = init if isinstance(init, str) else getattr(init, "__name__", "custom")
        draw = initializers.get(init)
        if draw in initializers.INITIALIZERS.values():   # drawn column-major in place: no copy of a large weight
            w = draw((out_features, in_features), backend.make_rng(rng), self.dtype, order="F")
        else:
            w = draw((out_features, in_features), backend.make_rng(rng), self.dtype)
        w = backend.xp.asfortranarray(w)                 # column-major: see "Memory layout"
        self.weight = self.add_parameter("weight", Parameter(w, decay=True))
        self.bias = self.add_parameter("bias", Parameter(backend.xp.zeros(out_features, dtype=self.dtype), decay=False)) if bias else None
        self._x: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias is not None,
                "init": self.init, "dtype": self.dtype.name}

    def forward(self, x: Any, training: bool = False) -> Any:
        if is_sparse(x):                      # SciPy CSR/CSC data: products with the sparse matrix (deltanet.sparse)
            if x.ndim != 2 or x.shape[1] != self.in_features:
                raise ValueError(f"{self._label()}: expected input of shape (batch, {self.in_features}), "
                                 f"got a sparse matrix of shape {tuple(x.shape)}")
            x = as_csr(x, self.dtype, self._label(), check=self.check_finite_input)
        else:
            x = self._as_input(x, self.in_features, dtype=self.dtype)
        self._x = x
        return self.affine(x, bias=self.adds_bias)

    def affine(self, x: Any, out: Any = None, bias: bool = True) -> Any:
        """``z = x W^T + b`` for validated input ``x``, without keeping ``x`` for backward.

        With ``out`` (an array of shape ``(n, out_features)``, row- or
        column-major, as :func:`deltanet.predict` reuses from chunk to chunk)
        the product is written there; otherwise into a new array, laid out as
        "Memory layout" says. ``bias=False`` leaves ``+ b`` out (see :attr:`adds_bias`).
        """
        w = self.weight.value
        if is_sparse(x):
            z = numpy.asarray(x @ w.T)         # sparse X times dense W^T: a dense, row-major result
            if out is not None:
                out[...] = z
                z = out
        elif out is None and x.ndim == 2 and x.shape[0] < self.column_major_below:
            z = (w @ x.T).T                  # z = (W X^T)^T: W h for every sample, column-major result
        else:
            z = backend.xp.matmul(x, w.T, out=out)   # z = W h, batch-first (row-major result)
        if self.bias is not None and bias:
            z += self.bias.value             # + b
        return z

    def backward(self, grad_out: Any) -> Any:
        if self._x is None:
            raise self._missing_forward()
        if grad_out.shape[-1] != self.out_features or grad_out.shape[:-1] != self._x.shape[:-1]:
            raise ValueError(f"{self._label()}: grad_out has shape {tuple(grad_out.shape)}, expected {(*self._x.shape[:-1], self.out_features)}")
        delta = grad_out.reshape(-1, self.out_features)
        if is_sparse(self._x):
            self.weight.accumulate(numpy.asarray(self._x.T @ delta).T)   # dW = (X^T delta)^T, X sparse
        else:
            x2 = self._x.reshape(-1, self.in_features)
            self.weight.accumulate_matmul(delta.T, x2)     # dW = delta^T h_prev
        if self.bias is not None and self.adds_bias:
            self.bias.accumulate_sum(delta)            # db = sum over the batch of delta
        if not self.input_grad:
            return None
        if grad_out.ndim == 2 and grad_out.shape[0] < self.column_major_below:
            return (self.weight.value.T @ grad_out.T).T  # dL/dh_prev = W^T delta, column-major result
        return grad_out @ self.weight.value            # dL/dh_prev = W^T delta, batch-first

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape[:-1], self.out_features)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        positions = 1
        for d in input_shape[1:-1]:
            positions *= d
        return 2 * self.in_features * self.out_features * positions
