"""Training data: validation, conversion to the model's dtype, and the validation split.

Everything here runs once per ``fit`` (validation, conversion, split), so it
adds no pass over the data to the training loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy

from .. import backend
from ..constraints import check
from ..inference import model_dtype, prepare_inputs
from ..modules.base import Module, check_finite
from ..modules.layernorm import LayerNorm
from ..modules.linear import Linear
from ..modules.normalization import BatchNorm
from ..sparse import is_sparse


@dataclass
class PreparedData:
    """Training arrays after validation and conversion (done once per ``fit``)."""

    X: Any
    y: Any
    sample_weight: Any = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def take(self, idx: Any) -> PreparedData:
        idx = backend.xp.asarray(idx)
        w = None if self.sample_weight is None else self.sample_weight[idx]
        return PreparedData(self.X[idx], self.y[idx], w)


def input_width(model: Module) -> int | None:
    """The number of features the model takes (the last axis of its input), when its first module says so
    (a ``Linear``, ``BatchNorm`` or ``LayerNorm``); None otherwise."""
    first = model
    while first.children():
        first = first.children()[0]
    if isinstance(first, Linear):
        return int(first.in_features)
    if isinstance(first, BatchNorm):
        return int(first.num_features)
    if isinstance(first, LayerNorm):
        return int(first.d)
    return None


def output_width(model: Module, X: Any, name: str = "X") -> int:
    """Size of the model output's last axis, from an eval-mode forward pass of one sample of ``X``.

    The probe also surfaces a shape mismatch between the data and the model
    before training starts, naming the shape of the whole of ``X`` (not of the one-row probe).
    """
    width = input_width(model)
    if width is not None and X.shape[-1] != width:
        raise ValueError(f"the model takes {width} feature{'s' if width != 1 else ''}, {name} has shape {tuple(X.shape)}")
    try:
        return int(model.forward(X[:1], training=False).shape[-1])
    except ValueError as exc:
        raise ValueError(f"{name} has shape {tuple(X.shape)}, which the model does not take: {exc}") from exc


def prepare_data(model: Module, X: Any, y: Any, task: str, sample_weight: Any = None, name: str = "X") -> PreparedData:
    """Validate ``X``, ``y`` (and ``sample_weight``) once and convert them for training.

    ``X`` becomes the model's dtype (one copy at most), must be numeric with at
    least 2 axes and finite. ``y`` must have ``len(X)`` rows; for classification
    it is integer labels in [0, C) (whole-number floats are accepted) converted to
    int64, or class probabilities of shape ``(n, C)``; otherwise it is converted to
    the model's dtype, a ``(n,)`` target becoming ``(n, 1)`` for a one-column output.
    """
    xp = backend.xp
    dtype = model_dtype(model)
    X = prepare_inputs(model, X, name)
    n = int(X.shape[0])
    if not hasattr(y, "dtype"):
        y = numpy.asarray(y)
    yname = "y" if name == "X" else name.replace("X", "y")
    if y.ndim == 0 or y.shape[0] != n:
        got = y.shape[0] if y.ndim else "a scalar"
        raise ValueError(f"{name} has {n} samples but {yname} has {got}; they must have the same length")
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{yname} must be numeric, got dtype {y.dtype}")
    width = output_width(model, X, name)
    if task == "classification":
        y = _class_targets(y, X, width, dtype, yname)
    else:
        y = xp.asarray(y, dtype=dtype)
        check_finite(y, yname)
        if y.ndim == 1 and width == 1:
            y = y.reshape(-1, 1)
        if y.ndim < 2 or y.shape[-1] != width:
            raise ValueError(f"{yname} has shape {tuple(y.shape)} but the model has {width} output"
                             f"{'s' if width != 1 else ''}; targets must have shape (n, {width})")
        if task == "multilabel" and y.size and (bool((y < 0).any()) or bool((y > 1).any())):
            raise ValueError(f"{yname}: multilabel targets must be in [0, 1]")
    w = None
    if sample_weight is not None:
        w = xp.asarray(sample_weight, dtype=dtype).reshape(-1)
        if w.shape[0] != n:
            raise ValueError(f"sample_weight has {w.shape[0]} entries but {name} has {n} samples")
        if not bool(xp.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError("sample_weight must be finite and >= 0")
    return PreparedData(X, y, w)


def _class_targets(y: Any, X: Any, width: int, dtype: Any, yname: str) -> Any:
    xp = backend.xp
    if y.ndim == 1:
        if y.dtype.kind == "f":
            if not bool(xp.all(y == xp.round(y))):
                raise TypeError(f"{yname}: class labels must be whole numbers, got fractional values; "
                                "pass integer labels or class probabilities of shape (n, C)")
        y = xp.asarray(y, dtype=xp.int64)
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= width:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{yname}: class labels must be in [0, {width}) for a model with {width} outputs, got {bad}")
        return y
    if y.shape[-1] != width:
        raise ValueError(f"{yname}: class probabilities must have shape (n, {width}), got {tuple(y.shape)}")
    y = xp.asarray(y, dtype=dtype)
    check_finite(y, yname)
    return y


def validation_split(y: Any, fraction: float, rng: numpy.random.Generator, stratify: bool) -> tuple[Any, Any]:
    """Split indices ``0..n-1`` into (train, validation) with about ``fraction`` in validation.

    With ``stratify`` (classification) every class c of n_c samples gives
    ``round(fraction * n_c)`` samples to validation, so both parts keep the class
    proportions; otherwise ``round(fraction * n)`` samples are drawn at random.
    Both index arrays are sorted (the original order inside each part).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    y = backend.to_numpy(y)
    n = int(y.shape[0])
    if stratify:
        labels = y.argmax(axis=-1) if y.ndim > 1 else y
        order = numpy.argsort(labels, kind="stable")
        _, starts, counts = numpy.unique(labels[order], return_index=True, return_counts=True)
        chosen = []
        for start, count in zip(starts, counts, strict=True):    # a loop over classes, not samples
            k = round(fraction * int(count))
            if k:
                members = order[start:start + count]
                chosen.append(rng.choice(members, size=k, replace=False))
        val = numpy.sort(numpy.concatenate(chosen)) if chosen else numpy.empty(0, dtype=numpy.intp)
    else:
        k = round(fraction * n)
        val = numpy.sort(rng.choice(n, size=k, replace=False)) if k else numpy.empty(0, dtype=numpy.intp)
    if val.size == 0 or val.size == n:
        raise ValueError(f"validation_fraction={fraction} of {n} samples leaves {'no' if val.size == 0 else 'all'} "
                         "samples for validation; choose a fraction that keeps both parts non-empty")
    mask = numpy.ones(n, dtype=bool)
    mask[val] = False
    return numpy.flatnonzero(mask), val


def prepare_fit_data(model: Module, X: Any, y: Any, task: str, *, validation_data: Any = None,
                     validation_fraction: float = 0.0, sample_weight: Any = None,
                     split_seed: numpy.random.SeedSequence | None = None) -> tuple[PreparedData, PreparedData | None]:
    """The training set and the validation set (or None) of one ``fit``, validated and converted once.

    ``validation_data`` is ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``;
    ``validation_fraction`` holds out that fraction of ``(X, y)`` instead, stratified by class for
    classification, drawn from ``split_seed`` (the same split every time).
    """
    validation_fraction = 0.0 if validation_fraction is None else check("validation_fraction", validation_fraction)
    train = prepare_data(model, X, y, task, sample_weight)
    if validation_data is not None and validation_fraction:
        raise ValueError("pass validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        val = prepare_data(model, *validation_data[:2], task,
                           validation_data[2] if len(validation_data) == 3 else None, name="X_val")
        if val.X.shape[1:] != train.X.shape[1:]:
            raise ValueError(f"X_val has samples of shape {tuple(val.X.shape[1:])}, X has {tuple(train.X.shape[1:])}")
        return train, val
    if validation_fraction:
        split_rng = numpy.random.Generator(numpy.random.PCG64(split_seed))
        tr, va = validation_split(train.y, validation_fraction, split_rng, stratify=task == "classification")
        return train.take(tr), train.take(va)
    return train, None


def batch_gatherer(X: Any, batch_size: int) -> Any:
    """``idx -> X[idx]``, on NumPy into one reused buffer (``numpy.take`` with ``out``: about twice as fast).

    The buffer is overwritten by the next batch: the model uses the batch only
    until its backward pass (a ``Linear`` keeps its input until then).
    """
    if backend.xp is not numpy or is_sparse(X):
        return lambda idx: X[idx]                      # a sparse batch: its rows, still sparse
    buf = numpy.empty((min(batch_size, X.shape[0]), *X.shape[1:]), dtype=X.dtype)
    take = X.take                                      # the method: numpy.take adds two Python calls per batch

    def gather(idx: Any) -> Any:
        return take(idx, axis=0, out=buf[:len(idx)], mode="clip")    # idx is a permutation slice: always in range

    return gather


def epoch_batches(data: PreparedData, perm: Any, batch_size: int, n_batches: int,
                  shard: Any = None) -> Iterator[tuple[Any, Any, Any, float]]:
    """One epoch's batches ``(X_B, y_B, w_B, weight)`` in the order ``perm``.

    Batch ``b`` holds the rows ``perm[b B : (b + 1) B]``, the last one all the
    rows left (``n_batches`` from :func:`~deltanet.training.builders.batch_count`:
    it may hold up to ``B + 1`` rows). ``shard(idx, sample_weight)`` keeps this
    process's rows of each batch (data-parallel training). ``w_B`` is None
    without sample weights; ``weight`` is the batch's sum of sample weights, or
    its row count. ``X_B`` lives in one reused buffer (:func:`batch_gatherer`).
    """
    n, last, w = len(data), n_batches - 1, data.sample_weight
    gather = batch_gatherer(data.X, max(batch_size, n - last * batch_size))
    for b in range(n_batches):
        idx = perm[b * batch_size:(b + 1) * batch_size if b < last else n]
        if shard is not None:
            idx = shard(idx, w)
        wb = None if w is None else w[idx]
        yield gather(idx), data.y[idx], wb, float(len(idx)) if wb is None else float(wb.sum())
