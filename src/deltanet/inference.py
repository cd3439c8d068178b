"""Prediction: a network's eval-mode outputs for a whole data set, in chunks.

::

    out = deltanet.predict(model, X, batch_size=1024)

equals ``concatenate([model.forward(X[s:s + batch_size]) for s in ...])`` (eval
mode: dropout off, batch norm on its running statistics): that loop is the
reference, and what runs with ``DELTANET_FAST=0``. By default the prediction
engine of the fast path runs instead (:mod:`deltanet.accel.predict`: the same
matrix products, with buffers reused across chunks, the bias added by the
products and ``X`` tested for NaN and infinity once, cheaply), and gives the
same outputs to float rounding. Nothing is kept for ``backward``: after
``predict``, run ``forward`` before ``backward``.
"""

from __future__ import annotations

from typing import Any

import numpy

from . import accel, backend
from .modules.base import Module
from .modules.base import check_finite as check_finite_array
from .sparse import as_csr, is_sparse


def model_dtype(model: Module) -> numpy.dtype:
    """The dtype of the model's parameters (the default dtype for a parameter-free model)."""
    for _, p in model.named_parameters():                 # the first one: no need to list them all
        return numpy.dtype(p.dtype)
    return backend.get_default_dtype()


def prepare_inputs(model: Module, X: Any, name: str = "X", check: bool = True) -> Any:
    """Check ``X`` (numeric, at least 2 axes, at least one sample, finite unless ``check=False``)
    and convert it to the model's dtype."""
    if is_sparse(X):                     # kept sparse: the first Linear multiplies it as it is (deltanet.sparse)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty sparse matrix of shape (n_samples, n_features), "
                             f"got shape {tuple(X.shape)}")
        return as_csr(X, model_dtype(model), name, check=check)
    if not hasattr(X, "dtype"):
        X = numpy.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {tuple(X.shape)}; "
                         "reshape a single feature with X.reshape(-1, 1)")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    X = backend.xp.asarray(X, dtype=model_dtype(model))
    if check:
        check_finite_array(X, name)
    return X


def predict(model: Module, X: Any, batch_size: int = 1024, *, check_finite: bool = True) -> Any:
    """The outputs of ``model`` in eval mode for every row of ``X``, ``batch_size`` rows at a time.

    Parameters
    ----------
    model : Module
    X : array of shape ``(n_samples, ...)``
        Converted to the model's dtype (one copy when it differs).
    batch_size : int
        Rows per chunk: bounds the memory of the activations (1,024 rows of a
        512-unit layer: 2 MiB in float32). Chunks below
        :attr:`Linear.column_major_below` rows get column-major buffers, as ``forward`` does.
    check_finite : bool
        Test ``X`` for NaN and infinity (once). False for data already tested.

    Returns
    -------
    array of shape ``(n_samples, *output_shape)`` (logits for networks trained with the fused losses).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"predict: batch_size must be a positive int, got {batch_size!r}")
    X = prepare_inputs(model, X, check=False)
    if is_sparse(X):                                 # the reference loop: the first Linear takes sparse rows as they are
        X = prepare_inputs(model, X, check=check_finite)
        return backend.xp.concatenate([model.forward(X[start:start + batch_size], training=False)
                                       for start in range(0, X.shape[0], batch_size)])
    fast = accel.predict_chunks(model, X, batch_size, check_finite)
    if fast is not None:
        return fast
    if check_finite:
        check_finite_array(X, "X")
    chunks = [model.forward(X[start:start + batch_size], training=False) for start in range(0, X.shape[0], batch_size)]
    return backend.xp.concatenate(chunks)           # a copy: a module may reuse its output buffer


__all__ = ["model_dtype", "predict", "prepare_inputs"]
