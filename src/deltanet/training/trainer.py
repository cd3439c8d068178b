"""The training loop: the course's mini-batch gradient descent, with its convergence criteria.

The loop the trainer runs, each line a call into the module named::

    for epoch in 1, 2, ...:
        perm = rng.permutation(n)                           # a fresh shuffle from a seeded generator
        for X_B, y_B, w_B in batches of perm:               # .data.epoch_batches
            forward, loss, backward, clip, step             # .step.train_step: one update
            stats.add(loss, output, gradient norm)          # .epoch.EpochStats
        record = stats.record(); validation loss            # .metrics
        schedule.step(val_loss or train_loss)               # once per epoch
        criteria and callbacks: stop?                       # .stopping, .callbacks

Around it, each in its own module: the data prepared once (:mod:`.data`),
signals and divergence (:mod:`.safety`), construction (:mod:`.builders`),
checkpoints and the run's epoch plan (:mod:`.checkpoint`), the full-batch
L-BFGS path (:mod:`.full_batch`), and what the batches may skip
(:mod:`deltanet.accel.plan`, through :func:`deltanet.accel.fast_path`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from .. import accel, backend
from ..constraints import CONSTRAINTS, Nullable, check
from ..errors import NonFiniteError
from ..losses import Loss, get_loss
from ..modules.base import Module
from ..modules.normalization import BatchNorm
from ..optim import LBFGS, Optimizer
from ..optim.schedules import Schedule
from ..parameter import Parameter
from . import builders, safety
from .callbacks import Callback, CallbackList
from .checkpoint import CheckpointMethods, RunPlan
from .data import PreparedData, epoch_batches
from .epoch import EpochStats
from .full_batch import fit_full_batch
from .history import History
from .metrics import EvaluationMethods, check_task, evaluate_prepared
from .progress import ProgressBar
from .step import train_step
from .stopping import finish_fit, make_criteria

GradientHook = Callable[[list[Parameter]], None]


class Trainer(EvaluationMethods, CheckpointMethods):
    r"""Train a model by mini-batch gradient descent, with metrics, stopping criteria and checkpoints.

    Parameters
    ----------
    model : Module
        The network (its output: logits for the fused classification losses).
    loss : str or Loss
        ``"cross_entropy"`` (softmax + cross-entropy), ``"mse"``,
        ``"binary_cross_entropy"``, or a :class:`~deltanet.losses.Loss`.
    optimizer : str or Optimizer
        ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"`` (built over
        ``model.parameters()`` with ``lr``, ``l2`` and ``optimizer_kwargs``), or an
        instance. ``"lbfgs"`` (or an :class:`~deltanet.optim.LBFGS`) is full-batch
        L-BFGS instead of mini-batches, ``epochs`` its iteration limit
        (:mod:`deltanet.training.full_batch`).
    lr : float, optional
        Learning rate; None keeps the optimizer's default (Adam 1e-3, SGD 0.01).
    schedule : None, str, Schedule or callable
        A schedule name (``"cosine"``, ``"step"``, ``"exponential"``, ``"plateau"``,
        ``"constant"``; built at the first ``fit`` with ``schedule_kwargs``, its
        epoch and batch counts filled in), a Schedule over this trainer's
        optimizer, or a callable ``optimizer -> Schedule``.
    batch_size : int
        Mini-batch size B. The last batch of an epoch holds the remaining
        ``n mod B`` samples, its loss averaged over its own size (with
        :class:`~deltanet.BatchNorm`, a last batch of one row joins the one
        before: :func:`~deltanet.training.builders.batch_count`).
    epochs : int
        Epochs per ``fit`` call (the course's maximum number of iterations T).
    l2 : float
        The course's L2 penalty: L_total = L + lambda/2 sum_l ||W^(l)||_F^2 over
        weights only (``decay=True`` parameters), by the optimizer's weight decay
        (for AdamW: its decoupled decay). 0 keeps the optimizer's default.
    clip_norm : float, optional
        Clip the global gradient norm to this value before each step.
    seed : int or None
        Seeds the shuffling, the validation split and (at the first ``fit``) the
        model's dropout generators: the same seed gives bit-identical weights and
        history on the same machine. None draws fresh entropy.
    callbacks : iterable of Callback
    progress : bool
        Add a :class:`ProgressBar` on stderr.
    stop_loss_below, stop_grad_norm_below : float, optional
        Stop when the epoch's training loss (:class:`LossThreshold`) or mean
        gradient norm (:class:`GradNormThreshold`) falls below this.
    early_stopping : EarlyStopping, True, dict or None
        Validation monitoring with patience / min_delta / restore-best (True: the defaults).
    task : ``"classification"``, ``"regression"``, ``"multilabel"`` or None
        None infers it from the loss (cross-entropy: classification).
    record_layers : bool
        Record per-parameter gradient norms and dead-unit fractions in the
        history. False lets the fast path skip what only they read
        (:mod:`deltanet.accel.plan`).

    Other Parameters
    ----------------
    optimizer_kwargs, schedule_kwargs : dict
        More arguments of a named optimizer (``momentum=0.9``, ``betas=...``) or schedule (``step_size``, ...).
    shuffle : bool
        Shuffle the training set every epoch (default True).
    eval_batch_size : int
        Batch size of evaluation and prediction passes.
    gradient_hook : callable, optional
        ``hook(params)`` between ``model.backward`` and clipping + the step, when
        every ``p.grad`` holds the batch's gradient (all ranks' under
        ``distributed``); it may change them in place, and
        ``Callback.on_after_backward`` runs right after it.
    distributed : None, ``"mpi"`` or :class:`deltanet.distributed.DataParallel`
        Data-parallel training over the processes of an MPI job (``mpiexec -n N``),
        each rank computing its shard of every global batch of ``batch_size``
        rows (:mod:`deltanet.distributed`).
    device : ``"cpu"``, ``"cuda"`` or None
        Where the model, its optimizer state and the batches live (``"cuda"``:
        CuPy, ``pip install 'deltanet[gpu]'``; data moved once per ``fit``).
        None leaves the model where it is. Model files always hold host arrays.
    on_divergence : ``"stop"`` or ``"raise"``
        A non-finite loss or gradient stops the run with the last good weights
        (a ``RuntimeWarning``, ``history.stop_reason == "diverged"``), or raises
        :class:`~deltanet.NonFiniteError` after restoring them.
    handle_interrupt : bool
        Ctrl-C (SIGINT) and SIGTERM during ``fit`` stop it after the current
        batch (:class:`~deltanet.training.safety.SignalGuard`).

    Attributes
    ----------
    history : History
        Per-epoch records of every ``fit`` call so far.
    epoch : int
        The current (during ``fit``) or last completed epoch, 1-based, counted across ``fit`` calls.
    stop_training : bool
        Set it (from a callback) to stop after the current batch / epoch.
    fast_path : FastPath or None
        During ``fit``: what its batches may skip (:class:`deltanet.accel.plan.FastPath`).
    run_plan : RunPlan
        The epochs of the current run, across a checkpoint-and-resume.
    optimizer, schedule, loss, model, params, task
    """

    def __init__(self, model: Module, loss: str | Loss = "cross_entropy", optimizer: str | Optimizer = "adam",
                 lr: float | None = None, schedule: Any = None, batch_size: int = 32, epochs: int = 10,
                 l2: float = 0.0, clip_norm: float | None = None, seed: int | None = 0,
                 callbacks: Iterable[Callback] = (), progress: bool = False, stop_loss_below: float | None = None,
                 stop_grad_norm_below: float | None = None, early_stopping: Any = None, task: str | None = None,
                 record_layers: bool = True, *, optimizer_kwargs: dict[str, Any] | None = None,
                 schedule_kwargs: dict[str, Any] | None = None, shuffle: bool = True, eval_batch_size: int = 1024,
                 gradient_hook: GradientHook | None = None, on_divergence: str = "stop",
                 handle_interrupt: bool = True, distributed: Any = None, device: str | None = None) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"Trainer: model must be a deltanet Module, got {type(model).__name__}")
        self.device = device
        if device is not None:
            model.to(device)
        self.model = model
        self.params: list[Parameter] = model.parameters()
        if not self.params:
            raise ValueError("Trainer: the model has no trainable parameters")
        self.loss: Loss = get_loss(loss)
        self.task: str = check_task(task, self.loss)
        self.batch_size = check("batch_size", batch_size)
        self.batch_norm = any(isinstance(m, BatchNorm) for m in model.modules())
        builders.check_batch_norm_batch(self.batch_size, self.batch_norm)
        self.epochs, self.l2 = check("epochs", epochs), check("l2", l2)
        self.eval_batch_size = check("eval_batch_size", eval_batch_size)
        self.clip_norm = Nullable(CONSTRAINTS["clip_norm"]).check("clip_norm", clip_norm)
        self.seed = Nullable(CONSTRAINTS["seed"]).check("seed", seed)
        self.distributed = None
        if distributed is not None:     # one seed on every rank: the same shuffles, so the same global batches
            from ..distributed import data_parallel

            self.distributed = data_parallel(distributed)
            self.seed = self.distributed.shared_seed(self.seed)
        self.record_layers, self.shuffle = bool(record_layers), check("shuffle", shuffle)
        if on_divergence not in ("stop", "raise"):
            raise ValueError(f"on_divergence must be 'stop' or 'raise', got {on_divergence!r}")
        self.on_divergence, self.handle_interrupt = on_divergence, bool(handle_interrupt)
        self.gradient_hook = gradient_hook
        self.optimizer = builders.make_optimizer(optimizer, self.params, lr, optimizer_kwargs, self.l2)
        #: A schedule given by name, built at the first ``fit`` (it needs the epoch and batch counts): (name, kwargs).
        self.schedule_spec: tuple[str, dict[str, Any]] | None
        self.schedule: Schedule | None
        self.schedule, self.schedule_spec = builders.schedule_or_spec(schedule, schedule_kwargs, self.optimizer,
                                                                      self.epochs)
        # the course's convergence criteria, checked in this order at the end of each epoch
        self.criteria, self.early_stopping = make_criteria(stop_loss_below, stop_grad_norm_below, early_stopping)
        self.callbacks: list[Callback] = CallbackList(callbacks).callbacks       # (checked to be Callbacks)
        self.progress = bool(progress) and (self.distributed is None or self.distributed.is_root)
        self._progress_bar = ProgressBar() if self.progress else None
        self.history = History()
        self.history.task = self.task
        self.epoch = self.n_batches = self.final_epoch = self.batch = 0
        self.stop_training = self.has_validation = self.resuming = self.in_fit = False
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        #: During ``fit``: the current batch's size, or its sum of sample weights (set before ``on_batch_begin``).
        self.batch_weight = 0.0
        self.run_plan = RunPlan()
        self.fast_path: Any = None
        self.monitor_X: Any = None
        self.signals = safety.SignalGuard()
        #: The shuffling generator, and the seeds of the validation split and of the model's dropout generators.
        self.rng, self.split_seed, self.dropout_seed = builders.seed_streams(self.seed)
        if self.distributed is not None:        # other masks on every rank
            self.dropout_seed = self.distributed.rank_seed(self.dropout_seed)
        #: Whether the model's dropout generators were seeded from ``seed`` (at the first ``fit``).
        self.dropout_seeded = False

    # -- state read by callbacks, checkpoints and the command -----------------------------
    @property
    def l2_in_loss(self) -> float:
        """lambda of the L2 term counted in the training loss: the optimizer's weight decay, unless it is
        decoupled from the loss (AdamW)."""
        return 0.0 if getattr(self.optimizer, "decoupled", False) else float(getattr(self.optimizer, "weight_decay", 0.0))

    @property
    def callback_list(self) -> CallbackList:
        """Criteria first (so user callbacks see their decision), then user callbacks, then the progress display."""
        extra = [self._progress_bar] if self._progress_bar is not None else []
        return CallbackList([*self.criteria, *self.callbacks, *extra])

    @property
    def lr(self) -> float:
        """The optimizer's current learning rate."""
        return float(self.optimizer.lr)

    @property
    def interrupt_signal(self) -> str | None:
        """``"SIGINT"`` or ``"SIGTERM"`` when that signal stopped the last ``fit``, else None."""
        return self.signals.signal_name

    @property
    def epoch_complete(self) -> bool:
        """Whether the current (during ``on_epoch_end``) or last epoch ran all its batches: a checkpoint saved then
        resumes bit-identically; one of an epoch cut short (Ctrl-C, SIGTERM, a batch callback) does not."""
        return self.n_batches > 0 and self.batch == self.n_batches

    def request_stop(self, reason: str, message: str | None = None) -> None:
        """Stop after the current batch (from a batch callback) or epoch; the first request wins."""
        if self.stop_training and self.stop_reason is not None:
            return
        self.stop_training, self.stop_reason, self.stop_message = True, reason, message

    def interrupt(self) -> None:
        """Ask the running ``fit`` to stop after the current batch, as Ctrl-C does."""
        self.signals.request()

    # -- the loop -----------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, validation_data: tuple[Any, ...] | None = None, validation_fraction: float = 0.0,
            sample_weight: Any = None, epochs: int | None = None) -> History:
        """Train on ``(X, y)`` and return the history.

        Parameters
        ----------
        X : array, shape ``(n_samples, n_features)`` (or more axes)
            Converted once to the model's dtype; must be finite.
        y : array, shape ``(n_samples,)`` or ``(n_samples, n_outputs)``
            Integer class labels in [0, C) (or class probabilities) for
            classification; targets otherwise.
        validation_data : ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``, optional
        validation_fraction : float
            Hold out this fraction of ``(X, y)`` for validation instead
            (stratified by class for classification; the same split at every ``fit``).
        sample_weight : array, shape ``(n_samples,)``, optional
            Per-sample loss weights.
        epochs : int, optional
            Epochs to run in this call (default: ``self.epochs``; after
            :meth:`resume` of a checkpoint saved mid-run, the epochs left of that run).

        Returns
        -------
        History
            ``self.history``: the records of every epoch so far; ``stop_reason``
            and ``stop_message`` describe this call's end.
        """
        if self.in_fit:
            raise RuntimeError("Trainer.fit is already running (called from a callback?)")
        train, val, n_epochs = builders.begin_fit(self, X, y, validation_data, validation_fraction, sample_weight,
                                                  epochs)
        callbacks = self.callback_list
        full_batch = isinstance(self.optimizer, LBFGS)
        self.fast_path = None if full_batch else accel.fast_path(self, callbacks)
        # overflow on the way to a NaN/inf is caught and reported as divergence; NumPy's warnings would be noise
        with safety.running(self), numpy.errstate(over="ignore", invalid="ignore"):
            callbacks.on_train_begin(self)
            self.resuming = False
            if full_batch:                 # one L-BFGS run over all the data; one record per iteration
                fit_full_batch(self, train, val, callbacks, n_epochs)
            else:
                with self.fast_path.batches():
                    while self.epoch < self.final_epoch and not self.stop_training:
                        self._run_epoch(train, val, callbacks)
            finish_fit(self, callbacks, self.final_epoch - self.run_plan.start)
        if self.stop_reason == "diverged" and self.on_divergence == "raise":
            raise NonFiniteError(self.stop_message)
        return self.history

    def _run_epoch(self, train: PreparedData, val: PreparedData | None, callbacks: CallbackList) -> None:
        """One epoch over ``train`` (already in the active namespace: moved to the device once per ``fit``)."""
        start = time.perf_counter()
        good = safety.snapshot(self.model, self.optimizer, self.schedule)
        self.epoch += 1
        epoch, dist = self.epoch, self.distributed
        callbacks.on_epoch_begin(self, epoch)
        n = len(train)
        # the permutation comes from the seeded host generator; on a GPU backend it moves to the device once per epoch
        perm = backend.xp.asarray(self.rng.permutation(n) if self.shuffle else numpy.arange(n))
        stats = (EpochStats if dist is None else dist.epoch_stats)(
            self.task, train.y, perm, self.params if self.record_layers else None)
        batches = epoch_batches(train, perm, self.batch_size, self.n_batches, None if dist is None else dist.shard_rows)
        lr = self.lr
        for b, (xb, yb, wb, self.batch_weight) in enumerate(batches):
            self.batch = b + 1
            callbacks.on_batch_begin(self, self.batch)
            lr = self.lr
            if self.batch == self.n_batches:
                stats.keep_weights()          # for the last step's update/weight ratio (record_layers)
            step = train_step(self, xb, yb, wb, callbacks)
            if isinstance(step, str):
                return safety.diverged(self, step, good)
            stats.add(b * self.batch_size, step.loss, self.batch_weight, step.output, yb, step.grad_norm, step.layer_sq)
            callbacks.on_batch_end(self, self.batch, step.loss)
            self.signals.stop_if_requested(self)
            if self.stop_training:
                break
        if dist is not None:
            dist.end_epoch(self)
        record = stats.record(epoch, lr, *((self.model, self.monitor_X) if self.record_layers else ()))
        if val is not None:
            try:
                metrics = evaluate_prepared(self.model, self.loss, self.task, val, self.eval_batch_size)
            except NonFiniteError as exc:  # the epoch's last step left non-finite weights
                return safety.diverged(self, f"a NaN or infinite value in the validation pass ({exc})", good)
            record["val_loss"], record["val_accuracy"] = metrics["loss"], metrics.get("accuracy")
        if self.schedule is not None:
            self.schedule.step(record["val_loss"] if record["val_loss"] is not None else record["train_loss"])
        record["time"] = time.perf_counter() - start
        self.history.append(record)
        callbacks.on_epoch_end(self, epoch, record)

    def __repr__(self) -> str:
        return (f"Trainer(loss={type(self.loss).__name__}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"epochs={self.epochs}, task={self.task!r}, epoch={self.epoch})")


__all__ = ["Trainer"]
