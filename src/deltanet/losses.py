"""Losses: ``forward(output, target)`` returns the mean loss, ``backward()`` returns
dL/d(output), already divided by the batch size.

Every loss accepts an optional ``sample_weight`` of shape ``(batch,)``: the
loss becomes the weighted mean sum_i w_i l_i / sum_i w_i (all ones gives the
plain mean, 1/B), and its gradient carries the same weights.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy

from . import accel, backend
from .modules.activations import softmax
from .modules.base import check_finite

#: The unsigned dtype of each integer size, to read labels as unsigned (see SoftmaxCrossEntropy._labels).
_UNSIGNED = {size: numpy.dtype(f"u{size}") for size in (1, 2, 4, 8)}


class Loss:
    """Base class: ``forward(output, target, sample_weight=None) -> float``, ``backward() -> array``."""

    name: ClassVar[str] = ""
    #: Whether ``forward`` tests its targets (labels in range, finite values). A hook: the fast path turns it
    #: off while its caller feeds targets it tested once (:mod:`deltanet.accel.plan`). While it is off,
    #: ``forward`` also reads the test of its output for NaN/inf and the sample weights' sum together with
    #: the loss value, in one host read per batch (:meth:`_mean`), instead of three; the same numbers and errors.
    check_targets: bool = True

    def __init__(self) -> None:
        self._grad_cache: Any = None
        self._deferred: Any = None       # the output whose NaN/inf test _mean reads with the loss (targets prechecked)

    def __call__(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        return self.forward(output, target, sample_weight)

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        raise NotImplementedError

    def backward(self) -> Any:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- validation helpers ------------------------------------------------
    def _output(self, output: Any, defer: bool = False) -> Any:
        """``output`` validated: a float array with a batch axis, without NaN/inf -- tested here, or, with
        ``defer`` while the targets are prechecked, by :meth:`_mean` together with the loss value."""
        if not hasattr(output, "dtype"):
            output = numpy.asarray(output)
        if output.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}: output must be a float array, got dtype {output.dtype}")
        if output.ndim < 1:
            raise ValueError(f"{type(self).__name__}: output must have a batch axis, got a scalar")
        if output.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: got an empty batch (output shape {tuple(output.shape)})")
        self._deferred = None
        if defer and not self.check_targets:
            self._deferred = output                  # tested with the loss value: one host read (see _mean)
        else:
            check_finite(output, type(self).__name__ + " (network output)")
        return output

    def _weights(self, sample_weight: Any, n: int, dtype: Any) -> tuple[Any, Any]:
        """The weights ``w`` of shape (n,) and their sum: a float, or, while the targets are prechecked (a
        trainer's fit tested the weights once: finite, >= 0), a device scalar :meth:`_mean` reads with the loss."""
        xp = backend.xp
        if sample_weight is None:
            return None, float(n)
        w = xp.asarray(sample_weight, dtype=dtype).reshape(-1)
        if w.shape[0] != n:
            raise ValueError(f"{type(self).__name__}: sample_weight has {w.shape[0]} entries, output has {n} rows")
        if not self.check_targets:
            return w, w.sum()
        if not bool(xp.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"{type(self).__name__}: sample_weight must be finite and >= 0")
        total = float(w.sum())
        if total <= 0:
            raise ValueError(f"{type(self).__name__}: sample_weight sums to 0")
        return w, total

    def _mean(self, num: Any, total: Any, scale: int = 1) -> float:
        r"""The loss ``num / (total scale)`` as a Python float: ``num`` the (weighted) sum of the per-sample losses
        on the device, ``total`` the batch size or the weights' sum (a float, or a device scalar).

        With the targets checked, one read of ``num`` (``total`` is a float): the division in float64 on the
        host. While they are prechecked, the NaN/inf test of the output (:meth:`_output` with ``defer``) and a
        device ``total`` are read with it, in one host read: the output enters as
        ``num + 0 sum_i z_i^2`` (``num`` itself when every ``z_i`` is finite, NaN otherwise) and the division
        runs on the device in float64, the same IEEE operation. Only a value that is not finite costs more
        reads: the exact test of the output (its :class:`~deltanet.errors.NonFiniteError`) and of a zero
        weight sum (its ``ValueError``), the errors of the checked path.
        """
        output, self._deferred = self._deferred, None
        if output is None and isinstance(total, float):
            return float(num) / (total * scale)
        xp = backend.xp
        read = num if output is None else num + _finite_probe(output)
        if isinstance(total, float):
            value = float(read) / (total * scale)
        else:
            value = float(read.astype(xp.float64) / (total.astype(xp.float64) * scale))
        if math.isfinite(value):
            return value
        if output is not None:                       # the reason, as the checked path tells it
            check_finite(output, type(self).__name__ + " (network output)")
        if not isinstance(total, float):
            total = float(total)
            if not total > 0:
                raise ValueError(f"{type(self).__name__}: sample_weight sums to 0")
        return float(num) / (total * scale)

    def _require(self) -> Any:
        if self._grad_cache is None:
            raise RuntimeError(f"{type(self).__name__}: backward() called before forward(); run forward first")
        return self._grad_cache


def _finite_probe(x: Any) -> Any:
    """A device scalar that is 0 when every entry of the float array ``x`` is finite and NaN otherwise:
    ``0 sum_i x_i^2`` (one BLAS dot for a row- or column-major array; else ``0 sum_i x_i``). A sum that overflows
    also gives NaN; :meth:`Loss._mean` then runs the exact test, which finds nothing."""
    xp = backend.xp
    if x.flags.c_contiguous or x.flags.f_contiguous:
        flat = backend.flat_view(x)
        return xp.dot(flat, flat) * 0
    return x.sum() * 0


def _flush_subnormal(e: Any) -> None:
    """Set the entries of the non-negative array ``e`` below ``finfo(dtype).tiny`` to 0, in place.

    A confident network's softmax gives the wrong classes probabilities like exp(-100), subnormal in float32;
    the backward matrix products then run tens of times slower on them (benchmarks/results/measurements.md).
    The change is below float resolution (< 1.2e-38 in
    float32), what flush-to-zero hardware does.
    """
    e[e < backend.xp.finfo(e.dtype).tiny] = 0


class SoftmaxCrossEntropy(Loss):
    r"""Softmax followed by cross-entropy, fused: L = -sum_i t_i log y_i, y = softmax(z).

    $$
    L = -\frac{1}{B} \sum_{b=1}^{B} \sum_i t_{bi} \log y_{bi}, \quad y_b = \mathrm{softmax}(z_b),
    \qquad \delta^{(L)} = \frac{\partial L}{\partial z} = \frac{y - t}{B}
    $$

    ``forward(z, t)``: ``z`` are the logits, shape ``(batch, C)`` (or
    ``(batch, ..., C)``; 1-D logits are refused); ``t`` is either integer labels
    of shape ``(batch,)`` (``(batch, ...)``) with values in [0, C), or float
    target probabilities of the same shape as ``z`` (an integer array of that
    shape is refused as ambiguous: pass its ``argmax`` or cast it to float).
    Returns the mean over the batch.

    Notes
    -----
    Forward, with the log-sum-exp trick (no overflow for any finite logits):

        log y_i = z_i - m - log sum_j exp(z_j - m),   m = max_j z_j
        l = -sum_i t_i log y_i,   L = 1/B sum_b l_b

    Backward -- the reason the pair is fused: for targets that sum to 1,

        dL/dz = (y - t) / B

    the reference's delta^(L) = h^(L) - t, with the 1/B of the mini-batch
    average already applied, so layers below just sum over the batch.
    (Probability rows that do not sum to 1 get the exact gradient
    (y sum_i t_i - t) / B.) For ``(batch, ..., C)`` logits the mean runs over
    every position; a ``sample_weight`` of shape ``(batch,)`` applies to all
    positions of its sample.
    """

    name = "cross_entropy"

    def __init__(self) -> None:
        super().__init__()
        self._offsets: Any = None
        self._offsets_key: tuple[int, int, bool, str] | None = None

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        z = self._output(output, defer=True)
        if z.ndim < 2:
            raise ValueError(f"SoftmaxCrossEntropy: logits must have shape (batch, classes) (or (batch, ..., classes)), "
                             f"got shape {tuple(z.shape)}; for a single sample use z[None, :], for a binary "
                             "problem with one logit per sample use BinaryCrossEntropyWithLogits")
        if not hasattr(target, "dtype"):
            target = numpy.asarray(target)
        if target.ndim == 0 or target.shape[0] != z.shape[0]:
            got = target.shape[0] if target.ndim else "a scalar"
            raise ValueError(f"SoftmaxCrossEntropy: batch size mismatch: output has {z.shape[0]} rows, target has {got}")
        n_classes = z.shape[-1]
        if sample_weight is not None and z.ndim > 2 and numpy.size(sample_weight) == z.shape[0]:
            sample_weight = backend.xp.repeat(backend.xp.asarray(sample_weight).reshape(-1), z.size // (z.shape[0] * n_classes))
        if target.shape == z.shape[:-1]:
            labels = self._labels(target, n_classes) if self.check_targets or target.dtype.kind not in "iu" else target
            loss, grad = self._from_labels(z.reshape(-1, n_classes), labels.reshape(-1), sample_weight)
        elif target.shape == z.shape:
            if target.dtype.kind in "iu":
                raise TypeError(f"SoftmaxCrossEntropy: an integer target of the logits' shape {tuple(z.shape)} is ambiguous; "
                                f"pass class indices of shape {tuple(z.shape[:-1])} (e.g. target.argmax(axis=-1) for "
                                "one-hot rows) or float probabilities (target.astype(float))")
            loss, grad = self._from_probabilities(z.reshape(-1, n_classes), target, sample_weight)
        else:
            raise ValueError(f"SoftmaxCrossEntropy: target must be labels of shape {tuple(z.shape[:-1])} or "
                             f"probabilities of shape {tuple(z.shape)}, got {tuple(target.shape)}")
        loss = self._mean(*loss)                                           # may raise: before the cache is set
        self._grad_cache = grad if grad.ndim == z.ndim else grad.reshape(z.shape)
        return loss

    def _from_labels(self, z: Any, labels: Any, sample_weight: Any) -> tuple[tuple[Any, Any], Any]:
        """Loss and gradient for logits ``z`` of shape ``(n, C)`` and valid labels of shape ``(n,)``.

        Works in ``z``'s own memory order: the column-major logits of a Linear's
        small batch are summed along rows faster than row-major ones (a row of
        10 classes is mostly per-row overhead); the label logits are
        picked by their index in memory, ``b C + label_b`` (row-major) or
        ``label_b n + b`` (column-major).

        The compiled kernel of :mod:`deltanet.accel.kernels.softmax_ce` computes
        the same sum and gradient in one call where it takes the logits (NumPy
        arrays, with the fast path and its kernels on).
        """
        xp = backend.xp
        n = z.shape[0]
        kernel = accel.kernel("softmax_cross_entropy", z)
        if kernel is not None:
            if sample_weight is None:
                num, grad = kernel(z, labels)
                return (num, float(n)), grad
            w, total = self._weights(sample_weight, n, z.dtype)
            num, grad = kernel(z, labels, w, total)
            return (num, total), grad
        shifted = xp.subtract(z, z.max(axis=1, keepdims=True), order="K")   # z - m, m = max_j z_j
        row_major = shifted.flags.c_contiguous
        flat = shifted.reshape(-1) if row_major else shifted.T.reshape(-1)  # shifted in memory order (a view)
        at = self._row_offsets(n, z.shape[1], row_major) + (labels if row_major else labels * n)
        picked = flat.take(at)                                             # z_label - m
        e = xp.exp(shifted, out=shifted)
        s = e.sum(axis=1)                                                  # s = sum_j exp(z_j - m)
        per_sample = xp.log(s)
        per_sample -= picked                                               # -log y_label = log s - (z_label - m)
        if sample_weight is None:
            loss = (per_sample.sum(), float(n))                            # the sum and its divisor: see _mean
            s *= n
            e /= s[:, None]                                                # y / n
            _flush_subnormal(e)
            flat[at] -= 1.0 / n                                            # (y - t) / n, t one-hot
        else:
            w, total = self._weights(sample_weight, n, z.dtype)
            loss = ((per_sample * w).sum(), total)
            r = w / total                                                  # each row's factor w_b / sum(w)
            e *= (r / s)[:, None]                                          # y r
            _flush_subnormal(e)
            flat[at] -= r                                                  # (y - t) r
        return loss, e

    def _from_probabilities(self, z: Any, target: Any, sample_weight: Any) -> tuple[tuple[Any, Any], Any]:
        """Loss and gradient for logits ``z`` of shape ``(n, C)`` and target probabilities of ``z``'s size."""
        xp = backend.xp
        n, n_classes = z.shape
        if target.dtype.kind not in "fiub":
            raise TypeError(f"SoftmaxCrossEntropy: target probabilities must be numeric, got dtype {target.dtype}")
        t = xp.asarray(target, dtype=z.dtype).reshape(-1, n_classes)
        if self.check_targets:
            check_finite(t, "SoftmaxCrossEntropy (target)")
        w, total = self._weights(sample_weight, n, z.dtype)
        r = 1.0 / n if w is None else w / total                             # each row's factor: 1/B or w_b / sum(w)
        shifted = xp.subtract(z, z.max(axis=1, keepdims=True), order="C")
        e = xp.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        per_sample = (t * (xp.log(s) - shifted)).sum(axis=1)                # -sum t log y
        e *= t.sum(axis=1, keepdims=True) / s                               # y sum_i t_i (= y when the row sums to 1)
        grad = e
        grad -= t
        grad *= r if w is None else r[:, None]
        loss = (per_sample.sum(), float(n)) if w is None else ((per_sample * w).sum(), total)
        return loss, grad

    def _row_offsets(self, n: int, n_classes: int, row_major: bool) -> Any:
        """Where row ``b``'s entries start in the flattened ``(n, C)`` logits: ``b C`` (row-major) or
        ``b`` (column-major), kept per batch shape."""
        key = (n, n_classes, row_major, backend.xp.__name__)
        if self._offsets_key != key:
            self._offsets = backend.xp.arange(0, n * n_classes, n_classes) if row_major else backend.xp.arange(n)
            self._offsets_key = key
        return self._offsets

    @staticmethod
    def _labels(target: Any, n_classes: int) -> Any:
        xp = backend.xp
        if target.dtype.kind == "f":
            check_finite(target, "SoftmaxCrossEntropy (labels)")
            if not bool(xp.all(target == xp.round(target))):
                raise TypeError("SoftmaxCrossEntropy: float labels must be whole numbers; pass int labels or probabilities of shape (batch, C)")
            target = target.astype(xp.int64)
        elif target.dtype.kind not in "iub":
            raise TypeError(f"SoftmaxCrossEntropy: labels must be integers, got dtype {target.dtype}")
        # one reduction for both bounds: read as unsigned, a negative label is larger than any valid one
        unsigned = target.view(_UNSIGNED[target.dtype.itemsize]) if target.dtype.kind == "i" else target
        if target.size and int(unsigned.max()) >= n_classes:
            bad = int(target.min()) if int(target.min()) < 0 else int(target.max())
            raise ValueError(f"SoftmaxCrossEntropy: labels must be in [0, {n_classes}), got {bad}")
        return target

    def backward(self) -> Any:
        return self._require().copy(order="K")

    def probabilities(self, output: Any) -> Any:
        """softmax(output): the class probabilities the loss models."""
        return softmax(self._output(output), axis=-1)


class MeanSquaredError(Loss):
    r"""L = 1/(B D) sum_b sum_j (y_bj - t_bj)^2, the mean over every element (as PyTorch's MSELoss).

    ``output`` and ``target`` have the same shape ``(batch, ...)``; a target of
    shape ``(batch,)`` is accepted for an output of shape ``(batch, 1)``.

    Backward: dL/dy = 2 (y - t) / (B D).
    """

    name = "mse"

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        y = self._output(output, defer=True)
        t = _matching_target(self, y, target)
        n = y.shape[0]
        d = y.size // max(n, 1)
        diff = y - t
        sq = (diff * diff).reshape(n, -1).sum(axis=1)
        w, total = self._weights(sample_weight, n, y.dtype)
        if w is None:
            loss = self._mean(sq.sum(), float(n), d)
            diff *= 2.0 / (n * d)
        else:
            loss = self._mean((sq * w).sum(), total, d)
            diff *= (2.0 * w / (total * d)).reshape((n,) + (1,) * (y.ndim - 1))
        self._grad_cache = diff
        return loss

    def backward(self) -> Any:
        return self._require().copy()


class BinaryCrossEntropyWithLogits(Loss):
    r"""Sigmoid + binary cross-entropy, fused, for binary and multi-label targets.

    ``output`` are logits z of shape ``(batch, K)`` (K labels; K = 1 for a binary
    problem, where a target of shape ``(batch,)`` is accepted), ``target`` in
    [0, 1] of the same shape. The loss is the mean over every element:

        l = -[t log sigma(z) + (1 - t) log(1 - sigma(z))]
          = max(z, 0) - z t + log(1 + exp(-|z|))       (stable form)

    Backward: dL/dz = (sigma(z) - t) / (B K).
    """

    name = "binary_cross_entropy"

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        xp = backend.xp
        z = self._output(output, defer=True)
        t = _matching_target(self, z, target)
        if t.size and (bool((t < 0).any()) or bool((t > 1).any())):
            raise ValueError("BinaryCrossEntropyWithLogits: targets must be in [0, 1]")
        n = z.shape[0]
        k = z.size // max(n, 1)
        abs_z = xp.abs(z)
        elem = xp.maximum(z, 0) - z * t + xp.log1p(xp.exp(-abs_z))
        per_sample = elem.reshape(n, -1).sum(axis=1)
        e = xp.exp(-abs_z)
        sig = xp.where(z >= 0, 1.0, e).astype(z.dtype, copy=False) / (1.0 + e)
        grad = sig - t
        w, total = self._weights(sample_weight, n, z.dtype)
        if w is None:
            loss = self._mean(per_sample.sum(), float(n), k)
            grad *= 1.0 / (n * k)
        else:
            loss = self._mean((per_sample * w).sum(), total, k)
            grad *= (w / (total * k)).reshape((n,) + (1,) * (z.ndim - 1))
        self._grad_cache = grad
        return loss

    def backward(self) -> Any:
        return self._require().copy()


def _matching_target(loss: Loss, y: Any, target: Any) -> Any:
    xp = backend.xp
    if not hasattr(target, "dtype"):
        target = numpy.asarray(target)
    if target.dtype.kind not in "fiub":
        raise TypeError(f"{type(loss).__name__}: target must be numeric, got dtype {target.dtype}")
    if target.shape != y.shape:
        if target.ndim == 1 and y.ndim == 2 and y.shape[1] == 1 and target.shape[0] == y.shape[0]:
            target = target.reshape(-1, 1)
        elif target.shape[:1] != y.shape[:1]:
            raise ValueError(f"{type(loss).__name__}: batch size mismatch: output has {y.shape[0]} rows, target has {target.shape[0] if target.ndim else 0}")
        else:
            hint = ""
            if target.ndim == 1 and y.ndim == 2:
                hint = (f"; class labels for {y.shape[1]} outputs? use SoftmaxCrossEntropy (loss 'cross_entropy'), "
                        "or give one target column per output")
            elif target.ndim == 2 and y.ndim == 1 and target.shape[1] == 1:
                hint = "; give the output shape (batch, 1) too, or flatten the target"
            raise ValueError(f"{type(loss).__name__}: target shape {tuple(target.shape)} does not match output shape "
                             f"{tuple(y.shape)}{hint}")
    t = xp.asarray(target, dtype=y.dtype)
    if loss.check_targets:
        check_finite(t, f"{type(loss).__name__} (target)")
    return t


#: Loss names accepted by builders and config files.
LOSSES: dict[str, type[Loss]] = {
    "cross_entropy": SoftmaxCrossEntropy, "softmax_cross_entropy": SoftmaxCrossEntropy,
    "mse": MeanSquaredError, "binary_cross_entropy": BinaryCrossEntropyWithLogits,
}


def get_loss(name: str | Loss) -> Loss:
    """A loss instance from its name (``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"``)."""
    if isinstance(name, Loss):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]()
