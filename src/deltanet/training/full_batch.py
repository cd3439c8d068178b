"""The trainer's full-batch path: ``Trainer(optimizer="lbfgs")`` runs :meth:`deltanet.optim.LBFGS.minimize`.

The mini-batch loop (one optimizer step per batch) does not fit a quasi-Newton
method, whose every step is a line search over the loss of all the data. So
``fit`` hands the whole training set to the optimizer once and turns each
L-BFGS iteration into one history record (``epoch`` counts iterations):
``train_loss`` is the objective (the L2 term included), ``grad_norm`` the
gradient's norm, ``val_loss`` / ``val_accuracy`` those of the validation set
when there is one. Callbacks see ``on_epoch_begin`` / ``on_epoch_end`` per
iteration and can stop the run (``trainer.request_stop``); the batch events do
not occur. The run ends as SciPy ends it: ``stop_reason`` is ``"converged"``
(the gradient or the relative reduction of the loss fell below its tolerance),
``"max_epochs"`` (``epochs`` iterations) or ``"max_fun"`` (the optimizer's
``max_fun`` evaluations).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .metrics import evaluate_prepared


def fit_full_batch(trainer: Any, train: Any, val: Any, callbacks: Any, n_epochs: int) -> None:
    """Run ``trainer.optimizer.minimize`` for at most ``n_epochs`` iterations, one history record each."""
    opt = trainer.optimizer
    trainer.n_batches = trainer.batch = 1
    trainer.history.loss_includes_l2 = opt.weight_decay > 0
    last = [time.perf_counter()]

    def on_iteration(result: Any) -> None:
        trainer.epoch += 1
        callbacks.on_epoch_begin(trainer, trainer.epoch)
        record = {"epoch": trainer.epoch, "train_loss": float(result.fun), "val_loss": None, "train_accuracy": None,
                  "val_accuracy": None, "lr": None, "grad_norm": None, "time": time.perf_counter() - last[0],
                  "layer_grad_norms": {}, "dead_fraction": {}, "saturated_fraction": {}, "update_ratio": {}}
        record["grad_norm"] = opt.last_grad_norm
        if val is not None:
            opt.set_flat(result.x)
            metrics = evaluate_prepared(trainer.model, trainer.loss, trainer.task, val, trainer.eval_batch_size)
            record["val_loss"], record["val_accuracy"] = metrics["loss"], metrics.get("accuracy")
        trainer.history.append(record)
        callbacks.on_epoch_end(trainer, trainer.epoch, record)
        trainer.signals.stop_if_requested(trainer)
        last[0] = time.perf_counter()
        if trainer.stop_training:
            raise StopIteration

    result = opt.minimize(trainer.model, trainer.loss, train.X, train.y, train.sample_weight,
                          max_iter=n_epochs, callback=on_iteration)
    trainer.lbfgs_result = result
    if not math.isfinite(float(result.fun)):
        trainer.request_stop("diverged", "L-BFGS: the loss is not finite")
    elif not trainer.stop_training:
        message = str(result.message)
        if result.nit >= n_epochs:
            pass                                   # finish_fit: "max_epochs"
        elif result.status == 0:
            trainer.request_stop("converged", f"L-BFGS converged after {result.nit} iterations: {message}")
        elif result.nfev >= opt.max_fun:
            trainer.request_stop("max_fun", f"L-BFGS reached max_fun={opt.max_fun} loss evaluations ({message})")
        else:
            trainer.request_stop("converged", f"L-BFGS stopped after {result.nit} iterations: {message}")


__all__ = ["fit_full_batch"]
