"""The training loop: the reference's mini-batch gradient descent, with its convergence criteria.

The loop the trainer runs is the one a user can write with the core's five
plain calls; the trainer adds bookkeeping around it, never inside the math::

    for epoch in 1, 2, ...:
        perm = rng.permutation(n)                           # a fresh shuffle from a seeded generator
        for idx in batches of perm:
            out = model.forward(X[idx], training=True)      # 1. forward
            loss = loss_fn.forward(out, y[idx])             # 2. loss (mean over this batch's own size)
            model.zero_grad()
            model.backward(loss_fn.backward())              # 3. backward (delta_L already / B)
            gradient_hook(params)                           #    <- combine gradients across processes here
            clip_grad_norm(params, clip_norm)               #    (optional)
            optimizer.step()                                # 4. update
            schedule.step_batch()
        schedule.step(val_loss or train_loss)               # 5. once per epoch

Around it, each in its own module: the data prepared once (:mod:`.data`), the
epoch's statistics (:mod:`.epoch`), signals and divergence (:mod:`.safety`),
construction (:mod:`.builders`), checkpoints (:mod:`.checkpoint`), and what the
batches may skip (:mod:`deltanet.accel.plan`, through :func:`deltanet.accel.fast_path`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy

from .. import accel, backend
from ..constraints import CONSTRAINTS, Nullable, check
from ..errors import NonFiniteError
from ..inference import predict
from ..losses import Loss, get_loss
from ..modules.base import Module
from ..modules.normalization import BatchNorm
from ..optim import LBFGS, Optimizer, clip_grad_norm
from ..optim.clipping import grad_norm
from ..optim.schedules import Schedule
from ..parameter import Parameter
from . import builders, safety
from . import checkpoint as ckpt
from .callbacks import Callback, CallbackList
from .data import PreparedData, batch_gatherer, prepare_data, prepare_fit_data
from .epoch import EpochStats
from .full_batch import fit_full_batch
from .history import History
from .metrics import MONITOR_ROWS, check_task, evaluate_prepared, probabilities
from .progress import ProgressBar
from .stopping import finish_fit, make_criteria

GradientHook = Callable[[list[Parameter]], None]


class Trainer:
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
        instance built by the caller. ``"lbfgs"`` (or an :class:`~deltanet.optim.LBFGS`)
        is full-batch L-BFGS instead of the mini-batch loop: ``epochs`` is its
        iteration limit, ``optimizer_kwargs`` take ``max_fun``, ``tol``,
        ``history_size``; see :mod:`deltanet.training.full_batch`.
    lr : float, optional
        Learning rate; None keeps the optimizer's default (Adam 1e-3, SGD 0.01).
    schedule : None, str, Schedule or callable
        A schedule name (``"cosine"``, ``"step"``, ``"exponential"``, ``"plateau"``,
        ``"constant"``; built at the first ``fit`` with ``schedule_kwargs``, and
        ``epochs`` / ``steps_per_epoch`` filled in), a Schedule over this trainer's
        optimizer, or a callable ``optimizer -> Schedule``.
    batch_size : int
        Mini-batch size B. The last batch of an epoch holds the remaining
        ``n mod B`` samples and its loss is averaged over its own size (with
        :class:`~deltanet.BatchNorm` in the model, a last batch of one row is
        merged into the one before; see Notes).
    epochs : int
        Epochs per ``fit`` call (the reference's maximum number of iterations T).
    l2 : float
        The reference's L2 penalty lambda: L_total = L + lambda/2 sum_l ||W^(l)||_F^2
        over weights only (``decay=True`` parameters), implemented by the
        optimizer's weight decay, which adds lambda W to the weight gradients
        (for AdamW: its decoupled decay). 0 keeps the optimizer's default.
    clip_norm : float, optional
        Clip the global gradient norm to this value before each step.
    seed : int or None
        Seeds the shuffling, the validation split and -- at the first ``fit`` --
        the model's dropout generators: the same seed gives bit-identical weights
        and history on the same machine. None draws fresh entropy.
    callbacks : iterable of Callback
    progress : bool
        Add a :class:`ProgressBar` on stderr.
    stop_loss_below : float, optional
        Stop when the epoch's training loss < this (:class:`LossThreshold`).
    stop_grad_norm_below : float, optional
        Stop when the epoch's mean gradient norm < this (:class:`GradNormThreshold`).
    early_stopping : EarlyStopping, True, dict or None
        Validation monitoring with patience / min_delta / restore-best (True: the defaults).
    task : ``"classification"``, ``"regression"``, ``"multilabel"`` or None
        None infers it from the loss (cross-entropy -> classification).
    record_layers : bool
        Record per-parameter gradient norms and dead-unit fractions in the history.
        False also lets the fast path skip forming the gradients where nothing
        reads them (see Notes).

    Other Parameters
    ----------------
    optimizer_kwargs : dict
        More optimizer hyper-parameters (``momentum=0.9``, ``betas=...``) for a named optimizer.
    schedule_kwargs : dict
        Arguments of a named schedule (``step_size``, ``gamma``, ``warmup_epochs``, ...).
    shuffle : bool
        Shuffle the training set every epoch (default True).
    eval_batch_size : int
        Batch size of evaluation and prediction passes.
    gradient_hook : callable, optional
        ``hook(params)``, see Notes.
    distributed : None, ``"mpi"`` or :class:`deltanet.distributed.DataParallel`
        Data-parallel training: ``"mpi"`` trains over every process of the MPI
        job (run the script with ``mpiexec -n N``), each rank computing its
        shard of every global batch of ``batch_size`` rows; see Notes.
    device : ``"cpu"``, ``"cuda"`` or None
        Where the model, its optimizer state and the batches live: ``"cuda"``
        moves the model to the GPU (CuPy, ``pip install 'deltanet[gpu]'``; a
        clear ``RuntimeError`` without CuPy or a GPU) and the data once per
        ``fit``. None leaves the model where it is. Model files always hold
        host arrays.
    on_divergence : ``"stop"`` or ``"raise"``
        What a non-finite loss or gradient does: stop the run (a ``RuntimeWarning``
        and ``history.stop_reason == "diverged"``) or raise :class:`~deltanet.NonFiniteError`
        after restoring the last good weights.
    handle_interrupt : bool
        Catch Ctrl-C (SIGINT) and SIGTERM during ``fit`` and stop after the
        current batch (a second signal interrupts at once). Only when ``fit``
        runs in the main thread, and SIGTERM only while it has its default
        action (a SIGTERM handler the application installed, or ``SIG_IGN``,
        is left alone); the previous handlers are put back when ``fit`` returns.

    Attributes
    ----------
    history : History
        Per-epoch records of every ``fit`` call so far.
    epoch : int
        The current (during ``fit``) or last completed epoch, 1-based, counted across ``fit`` calls.
    stop_training : bool
        Set it (from a callback) to stop after the current batch / epoch.
    interrupt_signal : str or None
        ``"SIGINT"`` or ``"SIGTERM"`` when the last ``fit`` was stopped by that
        signal (``history.stop_reason == "interrupted"``), else None.
    epoch_complete : bool
        Whether the current (or last) epoch ran all its batches (False for an
        epoch cut short by an interruption or a batch callback).
    optimizer, schedule, loss, model, params, task

    Notes
    -----
    **The gradient hook.** Between ``model.backward`` and clipping + the
    optimizer step, every ``p.grad`` holds the gradient of this process's
    batch (all ranks' under ``distributed="mpi"``): ``gradient_hook(params)``
    may change them in place there, and ``Callback.on_after_backward`` runs
    right after it, so clipping, the recorded norm and the divergence check
    see what they leave.

    **Beside the loop**, each in its own module: what the batches may skip
    (:mod:`deltanet.accel.plan`; off with ``DELTANET_FAST=0``, same results to
    float rounding), divergence and interruption (:mod:`.safety`), exact
    resumption from a checkpoint (:mod:`.checkpoint`), the batches of a model
    with batch normalization (:mod:`.builders`), and data-parallel training
    over MPI (``distributed="mpi"``: every rank takes the same steps; batch
    norm and dropout semantics in :mod:`deltanet.distributed`).
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
        #: ``"cpu"``, ``"cuda"`` (the model moved there, CuPy the namespace) or None (wherever the model is).
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
        self.epochs = check("epochs", epochs)
        self.eval_batch_size = check("eval_batch_size", eval_batch_size)
        self.l2 = check("l2", l2)
        self.clip_norm = Nullable(CONSTRAINTS["clip_norm"]).check("clip_norm", clip_norm)
        self.seed = Nullable(CONSTRAINTS["seed"]).check("seed", seed)
        self.distributed = None
        if distributed is not None:     # one seed on every rank: the same shuffles, so the same global batches
            from ..distributed import data_parallel

            self.distributed = data_parallel(distributed)
            self.seed = self.distributed.shared_seed(self.seed)
        self.record_layers = bool(record_layers)
        self.shuffle = check("shuffle", shuffle)
        if on_divergence not in ("stop", "raise"):
            raise ValueError(f"on_divergence must be 'stop' or 'raise', got {on_divergence!r}")
        self.on_divergence = on_divergence
        self.handle_interrupt = bool(handle_interrupt)
        self.gradient_hook = gradient_hook
        self.optimizer = builders.make_optimizer(optimizer, self.params, lr, optimizer_kwargs, self.l2)
        #: A schedule given by name, built at the first ``fit`` (it needs the epoch and batch counts): (name, kwargs).
        self.schedule_spec: tuple[str, dict[str, Any]] | None
        self.schedule: Schedule | None
        self.schedule, self.schedule_spec = builders.schedule_or_spec(schedule, schedule_kwargs, self.optimizer,
                                                                      self.epochs)
        # the reference's convergence criteria, checked in this order at the end of each epoch
        self.criteria, self.early_stopping = make_criteria(stop_loss_below, stop_grad_norm_below, early_stopping)
        self.callbacks: list[Callback] = CallbackList(callbacks).callbacks       # (checked to be Callbacks)
        self.progress = bool(progress) and (self.distributed is None or self.distributed.is_root)
        self._progress_bar = ProgressBar() if self.progress else None

        self.history = History()
        self.history.task = self.task
        self.epoch = 0
        self.stop_training = False
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        self.n_batches = self.final_epoch = self.batch = 0
        #: During ``fit``: the current batch's size, or its sum of sample weights (set before ``on_batch_begin``).
        self.batch_weight = 0.0
        self.has_validation = self.resuming = self.in_fit = False
        #: During ``fit``: the epoch this fit's plan ends at (what a checkpoint records to resume it).
        self.planned_end_epoch: int | None = None
        #: After loading a checkpoint saved mid-run: the epoch that run planned to end at (the next ``fit``'s end).
        self.resume_end_epoch: int | None = None
        #: The epoch the plan of the current (or resumed) run started from: its epoch limit counts from there.
        self.planned_start_epoch: int | None = None
        self.resume_start_epoch: int | None = None
        self.signals = safety.SignalGuard()
        #: The shuffling generator, and the seeds of the validation split and of the model's dropout generators.
        self.rng, self.split_seed, self.dropout_seed = builders.seed_streams(self.seed)
        if self.distributed is not None:        # other masks on every rank
            self.dropout_seed = self.distributed.rank_seed(self.dropout_seed)
        #: Whether the model's dropout generators were seeded from ``seed`` (at the first ``fit``).
        self.dropout_seeded = False

    # -- state read by callbacks, checkpoints and the command -----------------------------
    @property
    def decoupled_decay(self) -> bool:
        """Whether the optimizer's weight decay is decoupled (AdamW): then it is not an L2 term of the loss."""
        return bool(getattr(self.optimizer, "decoupled", False))

    @property
    def l2_in_loss(self) -> float:
        """lambda of the L2 term counted in the training loss (0 when there is none or it is decoupled)."""
        return 0.0 if self.decoupled_decay else float(getattr(self.optimizer, "weight_decay", 0.0))

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

    # -- stopping ---------------------------------------------------------------------
    def request_stop(self, reason: str, message: str | None = None) -> None:
        """Stop after the current batch (from a batch callback) or epoch; the first request wins."""
        if self.stop_training and self.stop_reason is not None:
            return
        self.stop_training = True
        self.stop_reason = reason
        self.stop_message = message

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
        train, val = prepare_fit_data(self.model, X, y, self.task, validation_data=validation_data,
                                      validation_fraction=validation_fraction, sample_weight=sample_weight,
                                      split_seed=self.split_seed)
        self._monitor_X = train.X[:MONITOR_ROWS]     # the fixed rows on which dead/saturated units are measured
        self.n_batches = builders.batch_count(len(train), self.batch_size, self.batch_norm)
        resumed_plan = epochs is None and self.resume_end_epoch is not None and self.resume_end_epoch > self.epoch
        resume_start, self.resume_start_epoch = self.resume_start_epoch, None
        n_epochs = ckpt.epochs_for_call(self, epochs)
        self.planned_start_epoch = resume_start if resumed_plan and resume_start is not None else self.epoch
        self.has_validation = val is not None
        if self.schedule_spec is not None:
            self.schedule = builders.build_named_schedule(self.schedule_spec, self.optimizer, n_epochs, self.n_batches)
            self.schedule_spec = None
        if not self.dropout_seeded:
            builders.seed_dropout(self.model, self.dropout_seed if self.seed is not None else None)
            self.dropout_seeded = True
        if self.distributed is not None:
            self.distributed.begin_fit(self, len(train))
        self.final_epoch = self.planned_end_epoch = self.epoch + n_epochs
        self.stop_training = False
        self.stop_reason = self.stop_message = None
        self.signals.reset()
        self.history.loss_includes_l2 = self.l2_in_loss > 0
        self.history.task = self.task
        callbacks = self.callback_list
        self.in_fit = True
        if self.handle_interrupt and self.distributed is None:
            self.signals.install()
        full_batch = isinstance(self.optimizer, LBFGS)
        self._plan = None if full_batch else accel.fast_path(self, callbacks)
        try:
            callbacks.on_train_begin(self)
            self.resuming = False
            if full_batch:                 # one L-BFGS run over all the data; one record per iteration
                with numpy.errstate(over="ignore", invalid="ignore"):
                    fit_full_batch(self, train, val, callbacks, n_epochs)
            else:
                self._fit_batches(train, val, callbacks)
            finish_fit(self, callbacks, self.final_epoch - self.planned_start_epoch)
        except BaseException as exc:
            if self.distributed is not None:      # the other ranks would wait in the next all-reduce for ever
                self.distributed.abort(exc)
            raise
        finally:
            self.in_fit = False
            self.planned_end_epoch = None
            self.signals.restore()
        if self.stop_reason == "diverged" and self.on_divergence == "raise":
            raise NonFiniteError(self.stop_message)
        return self.history

    def _fit_batches(self, train: PreparedData, val: PreparedData | None, callbacks: CallbackList) -> None:
        """The mini-batch loop: epochs until ``final_epoch`` or a stop request."""
        # overflow on the way to a NaN/inf is caught and reported as divergence; NumPy's warnings would only add noise
        with numpy.errstate(over="ignore", invalid="ignore"), self._plan.batches():
            while self.epoch < self.final_epoch and not self.stop_training:
                self._run_epoch(train, val, callbacks)

    def _run_epoch(self, train: PreparedData, val: PreparedData | None, callbacks: CallbackList) -> None:
        """One epoch over ``train`` (already in the active namespace: moved to the device once per ``fit``).

        Host reads on a GPU namespace (each a device-to-host copy and a synchronisation), and why:

        * per batch, outside the modules and the optimizer step: the batch's loss (``Loss.forward``
          returns a float; the divergence check, ``on_batch_end`` and the history read it), the gradient
          norm (divergence check, clipping; read after the step, which itself keeps it on the device), the
          sum of the batch's sample weights when weighted, and with ``record_layers`` one squared norm
          per parameter;
        * per epoch: the correct-prediction count (one ``count_nonzero``) and the record's means.

        The modules' forward and backward and the optimizer's step read nothing back
        (``tests/test_guard_backend.py`` proves it on :mod:`deltanet.testing.guard`).
        """
        start = time.perf_counter()
        good = safety.snapshot(self.model, self.optimizer, self.schedule)
        self.epoch += 1
        epoch = self.epoch
        callbacks.on_epoch_begin(self, epoch)
        n, bs, last = len(train), self.batch_size, self.n_batches - 1
        # the permutation comes from the seeded host generator; on a GPU backend it moves to the device once per epoch
        perm = backend.xp.asarray(self.rng.permutation(n) if self.shuffle else numpy.arange(n))
        weighted = train.sample_weight is not None
        dist = self.distributed
        stats = (EpochStats if dist is None else dist.epoch_stats)(
            self.task, train.y, perm, self.params if self.record_layers else None)
        gather = batch_gatherer(train.X, max(bs, n - last * bs))       # a last batch may hold B + 1 rows (BatchNorm)
        lr = self.lr
        for b in range(self.n_batches):
            self.batch = b + 1
            idx = perm[b * bs:(b + 1) * bs if b < last else n]
            if dist is not None:
                idx = dist.shard_rows(idx, train.sample_weight)      # this rank's rows of the global batch
            xb, yb = gather(idx), train.y[idx]
            wb = train.sample_weight[idx] if weighted else None
            self.batch_weight = float(wb.sum()) if weighted else float(len(idx))
            callbacks.on_batch_begin(self, self.batch)
            lr = self.lr
            if b == last:
                stats.keep_weights()          # for the last step's update/weight ratio (record_layers)
            step = self._train_step(xb, yb, wb, callbacks)
            if isinstance(step, str):
                return safety.diverged(self, step, good)
            loss, out, norm, sq = step
            stats.add(b * bs, loss, self.batch_weight, out, yb, norm, sq)
            callbacks.on_batch_end(self, self.batch, loss)
            if self.signals.requested and not self.stop_training:
                self.request_stop("interrupted", self.signals.message(epoch, self.batch, self.n_batches))
            if self.stop_training:
                break
        if dist is not None:
            dist.end_epoch(self)
        record = stats.record(epoch, lr, *((self.model, self._monitor_X) if self.record_layers else ()))
        if val is not None:
            try:
                metrics = evaluate_prepared(self.model, self.loss, self.task, val, self.eval_batch_size)
            except NonFiniteError as exc:  # the epoch's last step left non-finite weights
                return safety.diverged(self, f"a NaN or infinite value in the validation pass ({exc})", good)
            record["val_loss"] = metrics["loss"]
            record["val_accuracy"] = metrics.get("accuracy")
        if self.schedule is not None:
            self.schedule.step(record["val_loss"] if record["val_loss"] is not None else record["train_loss"])
        record["time"] = time.perf_counter() - start
        self.history.append(record)
        callbacks.on_epoch_end(self, epoch, record)

    def _train_step(self, xb: Any, yb: Any, wb: Any,
                    callbacks: CallbackList) -> tuple[float, Any, float | None, list[float] | None] | str:
        """One update; returns (loss, output, gradient norm or None where not measured, per-parameter squared
        gradient norms or None when ``record_layers`` is off) or what went non-finite."""
        try:
            out = self.model.forward(xb, training=True)
            loss = self.loss.forward(out, yb, wb)
        except NonFiniteError as exc:
            return self._abandon(f"a NaN or infinite value in the forward pass ({exc})")
        lam = self.l2_in_loss
        if lam:
            loss += 0.5 * lam * sum(backend.sum_of_squares(p.value) for p in self.params if p.decay)   # lambda/2 sum ||W||^2
        if not math.isfinite(loss):
            return self._abandon(f"the loss is {loss}")
        plan = self._plan
        plan.zero_grad()
        folded = plan.fold(self.batch, self.n_batches)
        self.model.backward(self.loss.backward())
        if folded:                  # the gradients went straight into the optimizer's state; nothing reads them
            self.optimizer.step()
            total = sq = None
        else:
            step = self._step_with_gradients(callbacks)
            if isinstance(step, str):
                return step
            total, sq = step
        if self.schedule is not None:
            self.schedule.step_batch()
        return loss, out, total, sq

    def _abandon(self, what: str) -> str:
        """A step that cannot go on; under data parallelism the other ranks learn it in their all-reduce."""
        if self.distributed is not None:
            self.distributed.abandon_step(self.params)
        return what

    def _step_with_gradients(self, callbacks: CallbackList) -> tuple[float, list[float] | None] | str:
        """The update from complete gradients: hook, callbacks, norms, clipping, step; returns (gradient norm,
        per-parameter squared norms or None) or what went non-finite."""
        if self.distributed is not None:           # the global batch's gradient on every rank
            self.distributed.allreduce_gradients(self.params)
        if self.gradient_hook is not None:         # gradients are complete: combine them across processes here
            self.gradient_hook(self.params)
        callbacks.on_after_backward(self)
        sq = None
        if self._plan.norm_in_step:
            # the optimizer measures the norm while it updates; a non-finite one is caught just after the update,
            # whose weights and state the divergence handling then replaces by the last good ones
            total = self.optimizer.step(measure_grad_norm=True)
            if total is not None:
                total = float(total)     # a device scalar on a GPU: read here, with the loss, not inside the step
            return (total, None) if total is not None and math.isfinite(total) else f"the gradient norm is {total}"
        if self.record_layers:
            sq = [backend.sum_of_squares(p.grad) for p in self.params]
            total = math.sqrt(sum(sq))
        else:
            total = grad_norm(self.params)
        if not math.isfinite(total):
            return f"the gradient norm is {total}"
        if self.clip_norm is not None:
            clip_grad_norm(self.params, self.clip_norm, norm=total)
        self.optimizer.step()
        return total, sq

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, X: Any, y: Any, sample_weight: Any = None) -> dict[str, float]:
        """Mean loss (eval mode, no L2 term) and, for classification / multilabel, accuracy on ``(X, y)``."""
        data = prepare_data(self.model, X, y, self.task, sample_weight)      # tests X for NaN/inf once
        return evaluate_prepared(self.model, self.loss, self.task, data, self.eval_batch_size)

    def predict(self, X: Any, batch_size: int | None = None) -> Any:
        """The model's outputs (logits for the fused losses) in eval mode, computed ``batch_size`` rows at a time."""
        return predict(self.model, X, self.eval_batch_size if batch_size is None else check("eval_batch_size", batch_size, "batch_size"))

    def predict_proba(self, X: Any, batch_size: int | None = None) -> Any:
        """Class probabilities: softmax of the logits (classification) or sigmoid per label (multilabel)."""
        return probabilities(self.predict(X, batch_size), self.task)

    # -- state and checkpoints ----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this trainer (JSON-ready; the optimizer is in the state)."""
        return ckpt.trainer_config(self)

    def state_dict(self) -> dict[str, Any]:
        """The full training state: everything a resumed run needs to continue bit for bit.

        Weights and buffers, optimizer state, schedule state, generator states
        (shuffle and dropout), epoch, history, callback states and the trainer's
        configuration. Arrays are copies. See :func:`checkpoint.trainer_state`.
        """
        return ckpt.trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (from this trainer or a checkpoint of the same model)."""
        ckpt.load_trainer_state(self, state)

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` (``.npz`` + JSON, no pickle; atomic)."""
        ckpt.save_state(path, self.state_dict())

    def resume(self, path: str | os.PathLike[str]) -> Trainer:
        """Load a checkpoint into this trainer (same model architecture); ``fit`` then continues the run."""
        self.load_state_dict(ckpt.load_state(path))
        return self

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], model: Module | None = None, **overrides: Any) -> Trainer:
        """Rebuild a trainer (and, unless given, its model) from a checkpoint file.

        ``overrides`` replace constructor arguments: pass ``callbacks=...``,
        ``progress=True``, or ``loss=`` / ``schedule=`` objects that the file
        cannot describe (user-defined classes).
        """
        return ckpt.load_trainer(cls, path, model, overrides)

    def __repr__(self) -> str:
        return (f"Trainer(loss={type(self.loss).__name__}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"epochs={self.epochs}, task={self.task!r}, epoch={self.epoch})")


__all__ = ["Trainer"]
