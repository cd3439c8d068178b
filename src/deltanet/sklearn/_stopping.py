"""scikit-learn's convergence rules and learning-rate rules, as a trainer callback.

At the end of every epoch (iteration, in scikit-learn's words) the callback

1. records the training loss in ``loss_curve_`` and counts ``n_iter_`` and
   ``t_`` (samples seen);
2. without early stopping: counts the epochs whose training loss fails to go
   below ``best_loss_ - tol``; with early stopping: scores the held-out
   validation set (accuracy or R^2), records it in ``validation_scores_`` and
   counts the epochs whose score fails to exceed ``best_validation_score_ + tol``,
   keeping a copy of the best weights;
3. once that count exceeds ``n_iter_no_change``: stops training, or, with
   ``learning_rate="adaptive"``, divides the learning rate by 5 and starts
   counting again (stopping once the rate is at or below 1e-6);
4. with ``learning_rate="invscaling"`` sets the rate to
   ``learning_rate_init / (t_ + 1) ** power_t``.

These are the rules of ``sklearn.neural_network.MLPClassifier`` (same
parameters, same meaning), applied here to every solver.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..training.callbacks import Callback

if TYPE_CHECKING:
    from ..training.trainer import Trainer
    from ._base import BaseMLP

#: Below this rate the adaptive schedule stops instead of dividing again (as scikit-learn).
MIN_ADAPTIVE_LR = 1e-6


class SklearnConvergence(Callback):
    """Apply the estimator's ``tol`` / ``n_iter_no_change`` / ``early_stopping`` /
    ``learning_rate`` rules after every epoch and keep its fitted attributes up to date.

    Parameters
    ----------
    estimator : BaseMLP
        The estimator being fitted (its hyper-parameters are already validated).
    n_train : int
        Training rows per epoch (``t_`` grows by this much every epoch).
    validation : tuple (X_val, y_val, sample_weight_val) or None
        The held-out split for ``early_stopping=True``, in the estimator's
        encoded target form.
    incremental : bool
        ``partial_fit``: one epoch, never stops training.
    """

    def __init__(self, estimator: BaseMLP, n_train: int, validation: tuple[Any, Any, Any] | None = None,
                 incremental: bool = False) -> None:
        self.estimator = estimator
        self.n_train = int(n_train)
        self.validation = validation
        self.incremental = incremental
        self.converged = False
        self.message = ""

    def on_batch_begin(self, trainer: Trainer, batch: int) -> None:
        # scikit-learn's L2 term of a batch: alpha / (2 sum_batch w) sum ||W||^2, i.e. a weight decay of
        # alpha / sum_batch w (the batch's size without sample weights), also for a smaller last batch
        alpha = self.estimator._validated["alpha"]
        if alpha:
            trainer.optimizer.weight_decay = alpha / (trainer.batch_weight * self.estimator._sw_scale)

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        est = self.estimator
        p = est._validated
        optimizer = trainer.optimizer
        loss = float(record["train_loss"])
        est.n_iter_ += 1
        est.t_ += self.n_train
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if p["verbose"]:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if not math.isfinite(loss):
            return  # the trainer stops a diverged run itself; fit() turns it into an error
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            if p["verbose"]:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + p["tol"]:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_state = {k: v.copy() for k, v in est.network_.state_dict().items()}
            what = "Validation score"
        else:
            if loss > est.best_loss_ - p["tol"]:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, loss)
            what = "Training loss"
        if p["learning_rate"] == "invscaling":
            optimizer.lr = p["learning_rate_init"] / (est.t_ + 1) ** p["power_t"]
        if est._no_improvement_count > p["n_iter_no_change"]:
            msg = f"{what} did not improve more than tol={p['tol']:f} for {p['n_iter_no_change']} consecutive epochs."
            if p["learning_rate"] == "adaptive" and optimizer.lr > MIN_ADAPTIVE_LR:
                optimizer.lr /= 5.0
                est._no_improvement_count = 0
                if p["verbose"]:
                    print(f"{msg} Setting learning rate to {optimizer.lr:f}")
                return
            if p["verbose"]:
                extra = " Learning rate too small." if p["learning_rate"] == "adaptive" else ""
                print(f"{msg}{extra} Stopping.")
            if not self.incremental:
                self.converged = True
                self.message = msg
                trainer.request_stop("early_stopping", msg)
