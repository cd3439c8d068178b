"""Per-epoch metrics and diagnostics: the task of a loss, accuracy, dead and saturated units, update sizes.

Accuracy runs once per batch on the logits the training step already has. The
backprop diagnostics run once per epoch: :func:`unit_health` is one eval-mode
forward pass over a fixed sample of :data:`MONITOR_ROWS` training rows (the same
rows every epoch, so the curves are not batch noise), :func:`update_ratios`
compares the weights around the epoch's last step.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..losses import BinaryCrossEntropyWithLogits, Loss, MeanSquaredError, SoftmaxCrossEntropy
from ..modules.base import Module
from ..sparse import is_sparse

#: Rows of the fixed training sample on which the Trainer measures dead and saturated units each epoch.
MONITOR_ROWS = 256

#: The tasks a trainer knows; ``None`` lets the loss decide (:func:`infer_task`).
TASKS = ("classification", "regression", "multilabel")


def infer_task(loss: Loss) -> str:
    """The task a loss implies.

    ``SoftmaxCrossEntropy`` -> ``"classification"`` (integer labels or class
    probabilities), ``BinaryCrossEntropyWithLogits`` -> ``"multilabel"`` (targets in
    [0, 1], one column per label; one column is a binary problem),
    anything else (``MeanSquaredError``, user losses) -> ``"regression"``.
    """
    if isinstance(loss, SoftmaxCrossEntropy):
        return "classification"
    if isinstance(loss, BinaryCrossEntropyWithLogits):
        return "multilabel"
    if isinstance(loss, MeanSquaredError):
        return "regression"
    return "regression"


def check_task(task: str | None, loss: Loss) -> str:
    """Validate ``task`` against :data:`TASKS`; ``None`` means :func:`infer_task`."""
    if task is None:
        return infer_task(loss)
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} or None, got {task!r}")
    return task


# -- accuracy --------------------------------------------------------------------
def correct_count(output: Any, target: Any, task: str) -> int | float | None:
    """Number of correct predictions in a batch (``None`` for regression).

    classification: ``argmax(output) == label`` per sample (a target of class
    probabilities counts its own argmax as the label);
    multilabel: the fraction of the K labels with ``[z > 0] == [t >= 0.5]``
    (the logit sign is the sigmoid's 0.5 threshold), summed over samples --
    a Hamming accuracy, equal to the plain accuracy of a binary problem (K = 1).
    """
    if task == "classification":
        pred = output.argmax(axis=-1)
        if target.ndim == output.ndim:                     # class probabilities
            target = target.argmax(axis=-1)
        hits = int(backend.xp.count_nonzero(pred == target))
        per_sample = pred.size // max(pred.shape[0], 1)
        return hits if per_sample == 1 else hits / per_sample      # an exact int for one label per sample
    if task == "multilabel":
        t = target.reshape(output.shape) if target.size == output.size else target
        agree = (output > 0) == (t >= 0.5)
        return float(agree.sum()) / (agree.size // max(agree.shape[0], 1))
    return None


def accuracy(output: Any, target: Any, task: str = "classification") -> float | None:
    """Accuracy of ``output`` (logits) against ``target``; ``None`` for regression."""
    n = output.shape[0]
    count = correct_count(output, target, task)
    return None if count is None or n == 0 else count / n


# -- per-layer diagnostics -------------------------------------------------------------
def dead_fractions(model: Module) -> dict[str, float]:
    """Fraction of dead units of every module that measures it (ReLU, LeakyReLU), by module path.

    A unit is dead on a batch when its activation is <= 0 for every sample of the
    batch (it passes no gradient back): the dying-ReLU diagnostic, read from what
    the last forward pass cached.
    """
    out = {}
    for path, m in model.named_modules():
        fn = getattr(m, "dead_fraction", None)
        if fn is not None:
            try:
                out[path] = fn()
            except RuntimeError:          # the module did not run in the last forward pass
                continue
    return out


def unit_health(model: Module, X_sample: Any, *, threshold: float = 0.97) -> dict[str, dict[str, float]]:
    """Per activation module, on a fixed sample: ``{path: {"dead": f, "saturated": f}}``.

    One eval-mode forward pass of ``X_sample``. A ReLU/LeakyReLU unit is dead when
    its output is <= 0 for every row; a tanh unit is saturated when ``|h| > threshold``
    for every row, a sigmoid unit when ``h < 1 - threshold`` or ``h > threshold``
    for every row (on the same side or not). Only ReLU-like modules get "dead",
    only tanh/sigmoid modules get "saturated".
    """
    from ..modules.activations import LeakyReLU, ReLU, Sigmoid, Tanh

    model.forward(X_sample if is_sparse(X_sample) else backend.xp.asarray(X_sample), training=False)
    out: dict[str, dict[str, float]] = {}
    for path, m in model.named_modules():
        h = getattr(m, "_h", None) if isinstance(m, (ReLU, LeakyReLU, Tanh, Sigmoid)) else None
        if h is None:
            continue
        h = h.reshape(-1, h.shape[-1])
        if isinstance(m, (ReLU, LeakyReLU)):
            out[path] = {"dead": float(1.0 - (h > 0).any(axis=0).mean())}
        elif isinstance(m, Tanh):
            out[path] = {"saturated": float((abs(h) > threshold).all(axis=0).mean())}
        else:
            out[path] = {"saturated": float(((h < 1 - threshold) | (h > threshold)).all(axis=0).mean())}
    return out


def update_ratios(params: Any, before: Any) -> dict[str, float]:
    """``{name: ||W_after - W_before||_F / ||W_before||_F}`` for one optimizer step.

    The relative size of a step; the usual rule of thumb wants about 1e-3
    (much smaller: the layer barely learns; much larger: the step overshoots).
    ``params`` are the parameters after the step, ``before`` copies of their
    values before it. A parameter whose weights were all zero gets ``inf``
    when it moved and 0 when it did not.
    """
    xp = backend.xp
    out = {}
    for p, w0 in zip(params, before, strict=True):
        step, size = float(xp.linalg.norm(p.value - w0)), float(xp.linalg.norm(w0))
        out[p.name] = step / size if size > 0 else (float("inf") if step > 0 else 0.0)
    return out


# -- evaluation ------------------------------------------------------------------------
def evaluate_prepared(model: Module, loss: Any, task: str, data: Any, batch_size: int) -> dict[str, float]:
    """Mean loss (eval mode, no L2 term) and, for classification / multilabel, accuracy of ``model`` on already
    validated data (a :class:`~deltanet.training.data.PreparedData`), ``batch_size`` rows at a time."""
    from ..inference import predict

    out = predict(model, data.X, batch_size, check_finite=False)
    w = data.sample_weight
    weighted_empty = w is not None and not float(w.sum()) > 0
    result = {"loss": float("nan") if weighted_empty else loss.forward(out, data.y, w)}
    if task in ("classification", "multilabel"):
        result["accuracy"] = correct_count(out, data.y, task) / len(data)
    return result


def probabilities(z: Any, task: str) -> Any:
    """Class probabilities from logits: softmax (classification) or sigmoid per label (multilabel), in place for
    the latter."""
    from ..modules.activations import sigmoid, softmax

    if task == "classification":
        return softmax(z, axis=-1)
    if task == "multilabel":
        return sigmoid(z, out=z)
    raise ValueError(f"predict_proba needs a classification or multilabel task, this trainer's task is {task!r}")


class EvaluationMethods:
    """The trainer's evaluation methods (mixed into :class:`~deltanet.training.Trainer`): its model in eval mode
    on new data, ``eval_batch_size`` rows at a time."""

    model: Module
    loss: Loss
    task: str
    eval_batch_size: int

    def evaluate(self, X: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
        """Mean loss (eval mode, no L2 term) and, for classification / multilabel, accuracy on ``(X, y)``."""
        from .data import prepare_data

        data = prepare_data(self.model, X, y, self.task, sample_weight)      # tests X for NaN/inf once
        return evaluate_prepared(self.model, self.loss, self.task, data, self.eval_batch_size)

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """The model's outputs (logits for the fused losses) in eval mode, computed ``batch_size`` rows at a time."""
        from ..constraints import check
        from ..inference import predict

        size = self.eval_batch_size if batch_size is None else check("eval_batch_size", batch_size, "batch_size")
        return predict(self.model, X, size)

    def predict_proba(self, X: Any, batch_size: int | None = None) -> Any:
        """Class probabilities: softmax of the logits (classification) or sigmoid per label (multilabel)."""
        return probabilities(self.predict(X, batch_size), self.task)
