"""What a trainer is built from: its optimizer and schedule from names or instances, its batch count, and
what each ``fit`` call prepares before the first batch (:func:`begin_fit`).

**Batch normalization.** The batch statistics of a single row are
undefined (its variance is 0), so when the model contains a
:class:`~deltanet.BatchNorm` module no training batch has one row: a last
batch of one row (``n mod B == 1``, e.g. 129 rows at ``batch_size=64``)
is merged into the batch before it (that batch has B + 1 rows, so an epoch
has ``n // B`` batches), ``batch_size=1`` is refused with a ``ValueError``,
and so is a training set of one row. Without batch normalization the
batches are exactly as described under ``batch_size``.
"""

from __future__ import annotations

from typing import Any

import numpy

from .. import backend
from ..optim import LBFGS, OPTIMIZERS, SGD, Optimizer, get_optimizer, get_schedule
from ..optim.schedules import Schedule
from ..parameter import Parameter


def make_optimizer(optimizer: Any, params: list[Parameter], lr: float | None, kwargs: dict[str, Any] | None,
                   l2: float) -> Optimizer:
    """The trainer's optimizer: a name built over ``params`` with ``lr``, ``l2`` (as weight decay) and
    ``kwargs``, or an instance built by the caller (which must hold all of ``params``); ``"lbfgs"`` or an
    :class:`~deltanet.optim.LBFGS` is the full-batch path (:mod:`deltanet.training.full_batch`)."""
    if isinstance(optimizer, str) and optimizer.lower() == "lbfgs":
        if lr is not None:
            raise ValueError("Trainer: optimizer='lbfgs' has no learning rate (its line search sets each step); drop lr")
        hyper = dict(kwargs or {})
        if l2:
            hyper["weight_decay"] = l2
        return LBFGS(params, **hyper)
    if isinstance(optimizer, (Optimizer, LBFGS)):
        if lr is not None or kwargs:
            raise ValueError("Trainer: lr / optimizer_kwargs are for a named optimizer; set them on the optimizer instance")
        own = {id(p) for p in optimizer.params}
        if any(id(p) not in own for p in params):
            raise ValueError("Trainer: the optimizer instance does not hold all of model.parameters(); "
                             "build it with Optimizer(model.parameters(), ...)")
        wd = float(getattr(optimizer, "weight_decay", 0.0))
        if l2 and wd != l2:
            raise ValueError(f"Trainer: l2={l2} conflicts with the optimizer's weight_decay={wd}; "
                             "set weight_decay on the optimizer instance, or pass the optimizer by name")
        return optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a name ({', '.join(OPTIMIZERS)}) or an Optimizer, got {type(optimizer).__name__}")
    hyper = dict(kwargs or {})
    if lr is not None:
        hyper["lr"] = lr
    if l2:
        if "weight_decay" in hyper and hyper["weight_decay"] != l2:
            raise ValueError("Trainer: pass the L2 penalty as l2= or as optimizer_kwargs['weight_decay'], not both")
        hyper["weight_decay"] = l2
    return get_optimizer(optimizer, params, **hyper)


def make_schedule(schedule: Any, optimizer: Optimizer) -> Schedule | None:
    """A schedule instance over ``optimizer`` (None, a Schedule, or a callable ``optimizer -> Schedule``)."""
    if schedule is None or isinstance(schedule, Schedule):
        if schedule is not None and schedule.optimizer is not optimizer:
            raise ValueError("Trainer: the schedule drives another optimizer; build it over trainer.optimizer "
                             "or pass a callable optimizer -> Schedule")
        return schedule
    if callable(schedule):
        built = schedule(optimizer)
        if not isinstance(built, Schedule):
            raise TypeError(f"the schedule callable must return a Schedule, got {type(built).__name__}")
        return built
    raise TypeError(f"schedule must be None, a name, a Schedule or a callable, got {type(schedule).__name__}")


def schedule_or_spec(schedule: Any, kwargs: dict[str, Any] | None, optimizer: Optimizer,
                     epochs: int) -> tuple[Schedule | None, tuple[str, dict[str, Any]] | None]:
    """The trainer's ``schedule`` argument: ``(schedule, None)`` for an instance, a callable or None, or
    ``(None, (name, kwargs))`` for a name, checked now and built at the first ``fit`` (:func:`build_named_schedule`)."""
    if isinstance(schedule, str):
        spec = (schedule, dict(kwargs or {}))
        check_schedule_spec(*spec, epochs, float(optimizer.lr))
        return None, spec
    if kwargs:
        raise ValueError("schedule_kwargs is only used with a schedule name (schedule='cosine', ...)")
    return make_schedule(schedule, optimizer), None


def check_schedule_spec(name: str, kwargs: dict[str, Any], epochs: int, lr: float) -> None:
    """Refuse a bad schedule name or arguments at construction rather than at the first ``fit``: build the
    schedule once over a throw-away optimizer."""
    kw = dict(kwargs)
    kw.setdefault("epochs", epochs)
    if kw.get("per_batch"):
        kw.setdefault("steps_per_epoch", 1)
    probe = SGD([Parameter(backend.xp.zeros(1))], lr=lr, fused=False)
    try:
        get_schedule(name, probe, **kw)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Trainer: schedule={name!r}"
                        f"{f' with schedule_kwargs={kwargs!r}' if kwargs else ''}: {exc}") from exc


def build_named_schedule(spec: tuple[str, dict[str, Any]], optimizer: Optimizer, epochs: int,
                         steps_per_epoch: int) -> Schedule:
    """The schedule a name stands for, with ``epochs`` (and ``steps_per_epoch`` per batch) filled in."""
    name, kw = spec
    kw = dict(kw)
    kw.setdefault("epochs", epochs)
    if kw.get("per_batch"):
        kw.setdefault("steps_per_epoch", steps_per_epoch)
    return get_schedule(name, optimizer, **kw)


def check_batch_norm_batch(batch_size: int, batch_norm: bool) -> None:
    if batch_norm and batch_size < 2:
        raise ValueError(f"Trainer: batch_size={batch_size} cannot train a model with BatchNorm: the batch statistics "
                         "of one row are undefined (its variance is 0); use batch_size >= 2, or remove the BatchNorm")


def batch_count(n: int, batch_size: int, batch_norm: bool) -> int:
    """Batches of an epoch over ``n`` rows: ceil(n / B), one less when a last batch of one row is merged into
    the one before (a model with BatchNorm; see the Trainer's Notes)."""
    check_batch_norm_batch(batch_size, batch_norm)
    if batch_norm:
        if n < 2:
            raise ValueError(f"Trainer: a model with BatchNorm needs at least 2 training rows to estimate batch "
                             f"statistics, got {n}")
        if n % batch_size == 1:
            return n // batch_size
    return -(-n // batch_size)


def seed_streams(seed: int | None) -> tuple[numpy.random.Generator, numpy.random.SeedSequence, numpy.random.SeedSequence]:
    """Three independent streams from one seed (None: fresh entropy): the shuffling generator, the seed of the
    validation split and the seed of the model's dropout generators."""
    shuffle_seq, split_seed, dropout_seed = numpy.random.SeedSequence(seed).spawn(3)
    return numpy.random.Generator(numpy.random.PCG64(shuffle_seq)), split_seed, dropout_seed


def seed_dropout(model: Any, seed: numpy.random.SeedSequence | None) -> None:
    """Reseed every generator of ``model`` (its dropout modules') from children of ``seed``; None leaves them."""
    if seed is not None:
        gens = model.generators()
        for gen, child in zip(gens, seed.spawn(len(gens)), strict=True):
            gen.bit_generator.state = type(gen.bit_generator)(child).state


def begin_fit(trainer: Any, X: Any, y: Any, validation_data: Any, validation_fraction: float, sample_weight: Any,
              epochs: int | None) -> tuple[Any, Any, int]:
    """What a ``fit`` call prepares before its first batch; returns ``(train, val or None, epochs to run)``.

    The data validated and converted once (:func:`~deltanet.training.data.prepare_fit_data`), the batch count,
    the run's epochs (:class:`~deltanet.training.checkpoint.RunPlan`), a named schedule built now that the
    epoch and batch counts are known, the dropout generators seeded (first ``fit`` only), the ranks agreed
    (data parallelism), and the stop state reset.
    """
    from .data import prepare_fit_data
    from .metrics import MONITOR_ROWS

    t = trainer
    train, val = prepare_fit_data(t.model, X, y, t.task, validation_data=validation_data,
                                  validation_fraction=validation_fraction, sample_weight=sample_weight,
                                  split_seed=t.split_seed)
    t.monitor_X = train.X[:MONITOR_ROWS]     # the fixed rows on which dead/saturated units are measured
    t.n_batches = batch_count(len(train), t.batch_size, t.batch_norm)
    n_epochs = t.run_plan.begin(t.epoch, epochs, t.epochs)
    t.final_epoch, t.has_validation = t.run_plan.end, val is not None
    if t.schedule_spec is not None:
        t.schedule = build_named_schedule(t.schedule_spec, t.optimizer, n_epochs, t.n_batches)
        t.schedule_spec = None
    if not t.dropout_seeded:
        seed_dropout(t.model, t.dropout_seed if t.seed is not None else None)
        t.dropout_seeded = True
    if t.distributed is not None:
        t.distributed.begin_fit(t, len(train))
    t.stop_training, t.stop_reason, t.stop_message = False, None, None
    t.signals.reset()
    t.history.loss_includes_l2, t.history.task = t.l2_in_loss > 0, t.task
    return train, val, n_epochs


__all__ = ["begin_fit", "batch_count", "build_named_schedule", "check_batch_norm_batch", "check_schedule_spec", "make_optimizer",
           "make_schedule", "schedule_or_spec", "seed_dropout", "seed_streams"]
