"""The estimators' objectives: scikit-learn's definitions, on top of the library's losses.

The library's losses average over every element of the output (samples x
outputs). scikit-learn's MLP trains on sums over the outputs, averaged over the
samples only, so that ``learning_rate_init`` and ``alpha`` mean the same in both:

=========================  ===================================================  ==========================
task                       objective trained (its gradient)                     library loss x factor
=========================  ===================================================  ==========================
multiclass                 -1/n sum_i log p_i(y_i)                              SoftmaxCrossEntropy x 1
binary, multi-label (K)    -1/n sum_i sum_k [t log p + (1 - t) log(1 - p)]      BinaryCrossEntropyWithLogits x K
regression (D outputs)     1/(2n) sum_i sum_j (y_ij - t_ij)^2                   MeanSquaredError x D/2
Poisson regression         1/n sum_i sum_j [t log(t/mu) - t + mu], mu = e^z     (:class:`HalfPoissonDeviance`)
=========================  ===================================================  ==========================

(weighted: ``1/n sum_i`` is ``1/sum(w) sum_i w_i``). The value each ``forward``
returns is what scikit-learn reports in ``loss_curve_``; for the squared error
with D > 1 outputs that is the mean over the outputs (1/(2nD) sum sum), a D-th of
the objective whose gradient ``backward`` gives, as in scikit-learn;
``HalfSquaredError(report="objective")`` returns the objective itself (the value a
line search needs).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..losses import BinaryCrossEntropyWithLogits, Loss, MeanSquaredError, _matching_target


class HalfSquaredError(MeanSquaredError):
    r"""1/(2n) sum_i sum_j (y_ij - t_ij)^2 (gradient (y - t) / n): scikit-learn's squared error.

    ``report="mean"`` (default) returns 1/(2nD) sum sum, scikit-learn's ``loss_``;
    ``report="objective"`` returns the objective itself.
    """

    name = "half_squared_error"

    def __init__(self, report: str = "mean") -> None:
        super().__init__()
        if report not in ("mean", "objective"):
            raise ValueError(f"report must be 'mean' or 'objective', got {report!r}")
        self.report = report

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        mse = super().forward(output, target, sample_weight)          # 1/(nD) sum sum, gradient 2 (y - t) / (nD)
        d = self._grad_cache.size // max(self._grad_cache.shape[0], 1)
        self._grad_cache *= 0.5 * d
        return 0.5 * mse * (d if self.report == "objective" else 1)


class MultilabelLogLoss(BinaryCrossEntropyWithLogits):
    r"""-1/n sum_i sum_k [t log sigma(z) + (1 - t) log(1 - sigma(z))]: the log-loss summed over the K labels
    (gradient (sigma(z) - t) / n), scikit-learn's multi-label and binary loss."""

    name = "multilabel_log_loss"

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        mean = super().forward(output, target, sample_weight)
        k = self._grad_cache.size // max(self._grad_cache.shape[0], 1)
        if k != 1:
            self._grad_cache *= k
        return mean * k


class HalfPoissonDeviance(Loss):
    r"""Half the Poisson deviance with a log link, scikit-learn's ``loss="poisson"``.

    The network's output z is the log of the mean, mu = exp(z); per sample
    l = sum_j [t_j log(t_j / mu_j) - t_j + mu_j] (0 log 0 = 0), and the loss is
    the (weighted) mean of l over the samples. Gradient: dL/dz = (mu - t) / n.
    Targets must be >= 0.
    """

    name = "half_poisson_deviance"

    def forward(self, output: Any, target: Any, sample_weight: Any = None) -> float:
        xp = backend.xp
        z = self._output(output)
        t = _matching_target(self, z, target)
        if t.size and bool((t < 0).any()):
            raise ValueError("HalfPoissonDeviance: targets must be >= 0")
        n = z.shape[0]
        with numpy_errstate():
            mu = xp.exp(z)
            tlogt = xp.where(t > 0, t * xp.log(xp.where(t > 0, t, 1)), 0)
        elem = tlogt - t * z - t + mu
        per_sample = elem.reshape(n, -1).sum(axis=1)
        grad = mu - t
        w, total = self._weights(sample_weight, n, z.dtype)
        if w is None:
            loss = float(per_sample.sum()) / n
            grad *= 1.0 / n
        else:
            loss = float((per_sample * w).sum()) / total
            grad *= (w / total).reshape((n,) + (1,) * (z.ndim - 1))
        self._grad_cache = grad
        return loss

    def backward(self) -> Any:
        return self._require().copy()


def numpy_errstate() -> Any:
    import numpy

    return numpy.errstate(over="ignore", invalid="ignore", divide="ignore")
