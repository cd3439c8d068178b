"""Checkpoint files: the full training state, without pickle.

A checkpoint is one ``.npz`` file (NumPy's zip of ``.npy`` arrays) read with
``allow_pickle=False``: every array of the state (weights, buffers, optimizer
moments, early stopping's best weights) is a member named by its place in the
state (``model/0.weight``, ``optimizer/state/0.exp_avg``), and everything else
(epoch, history, hyper-parameters, random generator states) is one JSON text
stored as the member ``__meta__``, where each array appears as
``{"__array__": "<member name>"}``. Loading cannot run code. Files are written
to a temporary name in the target folder and moved into place with
``os.replace``, so a crash never leaves a half-written checkpoint.

The second half is the trainer's side of a checkpoint: the state it saves
(:func:`trainer_state`), restores (:func:`load_trainer_state`) and rebuilds a
trainer from (:func:`load_trainer`); :class:`~deltanet.training.Trainer`'s
``state_dict``, ``load_state_dict`` and ``load_checkpoint`` delegate here.

**Resuming exactly.** A checkpoint written at the end of a complete epoch
during ``fit`` (:class:`~deltanet.training.ModelCheckpoint` with
``complete_epochs_only=True``, or :meth:`Trainer.save_checkpoint` from
``on_epoch_end`` while :attr:`Trainer.epoch_complete`) records the run's planned
last epoch. ``Trainer.load_checkpoint(path, model)`` or
``trainer.resume(path)`` followed by ``fit(X, y, ...)`` without ``epochs=``
runs the epochs left of that plan, with the same data and validation
arguments, and ends with the weights and history of the uninterrupted run,
bit for bit (shuffling, dropout, optimizer moments, schedule and early
stopping included). ``fit(epochs=k)`` instead runs ``k`` more epochs.
"""

from __future__ import annotations

import inspect
import json
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy

from .. import backend
from ..io import ARCHIVE_ERRORS, atomic_write, check_npz_members
from ..losses import LOSSES
from ..modules.base import Module, build
from ..optim import LBFGS, OPTIMIZERS, Optimizer
from ..optim import schedules as schedules_module
from ..optim.schedules import Schedule
from .history import History

if TYPE_CHECKING:
    from .trainer import Trainer

#: Written into every checkpoint; loading checks it.
FORMAT = "deltanet.checkpoint"
VERSION = 1

_META = "__meta__"


def _is_array(x: Any) -> bool:
    return isinstance(x, numpy.ndarray) or (hasattr(x, "__array__") and hasattr(x, "dtype") and hasattr(x, "shape")
                                            and not isinstance(x, numpy.generic))


def flatten(state: Any, arrays: dict[str, numpy.ndarray], path: str = "") -> Any:
    """Replace every array in a nested dict/list by ``{"__array__": name}``, collecting it in ``arrays``."""
    if _is_array(state):
        name = path or "array"
        if name in arrays or name == _META:
            raise ValueError(f"checkpoint: duplicate array name {name!r}")
        arr = backend.to_numpy(state)
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"checkpoint: array {name!r} has dtype {arr.dtype}; only numeric arrays are stored")
        arrays[name] = arr
        return {"__array__": name}
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint: keys must be strings, got {k!r} at {path or 'the top'}")
            out[k] = flatten(v, arrays, f"{path}/{k}" if path else k)
        return out
    if isinstance(state, (list, tuple)):
        return [flatten(v, arrays, f"{path}/{i}") for i, v in enumerate(state)]
    if isinstance(state, numpy.generic):
        return state.item()
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"checkpoint: cannot store a {type(state).__name__} at {path!r} "
                    "(only dicts, lists, numbers, strings, arrays)")


def unflatten(meta: Any, arrays: dict[str, Any]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(meta, dict):
        if set(meta) == {"__array__"}:
            return arrays[meta["__array__"]]
        return {k: unflatten(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unflatten(v, arrays) for v in meta]
    return meta


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of numbers, strings and arrays) to ``path`` atomically."""
    arrays: dict[str, numpy.ndarray] = {}
    meta = {"format": FORMAT, "version": VERSION, "state": flatten(state, arrays)}
    text = json.dumps(meta, allow_nan=True)
    with atomic_write(path) as f:
        numpy.savez(f, **{_META: numpy.array(text)}, **arrays)


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_state` (no pickle: ``allow_pickle=False``).

    A file that is not a checkpoint, or a damaged one (truncated, corrupted), raises ``ValueError``
    ``"<path> is not a deltanet checkpoint or is damaged: ..."``; a missing file ``FileNotFoundError``.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise IsADirectoryError(f"{name!r} is a directory, not a deltanet checkpoint file")
    with open(name, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: a single .npy array, not an .npz archive")
    check_npz_members(name, f"{name!r} is not a deltanet checkpoint or is damaged: ")
    try:
        data = numpy.load(name, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, zipfile.BadZipFile, *ARCHIVE_ERRORS) as exc:
        raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: {exc}") from exc
    if not hasattr(data, "files"):
        raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: a single .npy array, not an .npz archive")
    with data:
        if _META not in data.files:
            raise ValueError(f"{name!r} is not a deltanet checkpoint: no {_META} entry")
        try:
            meta = json.loads(str(data[_META][()]))
            if not isinstance(meta, dict):
                raise ValueError(f"{_META} is a {type(meta).__name__}, not an object")
            if meta.get("format") != FORMAT:
                raise ValueError(f"{name!r} is not a deltanet checkpoint (format {meta.get('format')!r})")
            if meta.get("version", 0) > VERSION:
                raise ValueError(f"{name!r} was written by a newer deltanet (checkpoint version "
                                 f"{meta['version']} > {VERSION}); upgrade deltanet to read it")
            arrays = {member: backend.xp.asarray(data[member]) for member in data.files if member != _META}
            return unflatten(meta["state"], arrays)
        except ValueError as exc:
            if str(exc).startswith(repr(name)):
                raise
            raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: {exc}") from exc
        except RecursionError as exc:
            raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: its state is nested too deeply") from exc
        except (KeyError, TypeError, zipfile.BadZipFile, *ARCHIVE_ERRORS) as exc:
            raise ValueError(f"{name!r} is not a deltanet checkpoint or is damaged: {type(exc).__name__}: {exc}") from exc


def rng_state(gen: numpy.random.Generator) -> dict[str, Any]:
    """The bit generator state of ``gen`` (a JSON-ready dict; Python ints are exact at any size)."""
    return gen.bit_generator.state


def set_rng_state(gen: numpy.random.Generator, state: dict[str, Any]) -> None:
    """Put ``gen`` in ``state`` (as returned by :func:`rng_state`)."""
    kind = type(gen.bit_generator).__name__
    if state.get("bit_generator") != kind:
        raise ValueError(f"checkpoint: generator state is for {state.get('bit_generator')!r}, the generator is {kind}")
    gen.bit_generator.state = state


# -- the trainer's state -------------------------------------------------------------------------
def stateful_callbacks(trainer: Trainer) -> dict[str, Any]:
    """The callbacks whose state a checkpoint keeps, by a stable name."""
    named: dict[str, Any] = {}
    if trainer.early_stopping is not None:
        named["early_stopping"] = trainer.early_stopping
    for i, cb in enumerate(trainer.callbacks):
        named[f"callbacks.{i}.{type(cb).__name__}"] = cb
    return named


class RunPlan:
    """The epochs a run covers, across ``fit`` calls and a checkpoint-and-resume.

    A ``fit`` plans epochs ``start + 1 .. end``. A checkpoint written during it
    records ``start`` and ``end`` (as ``planned_start_epoch`` and
    ``planned_end_epoch``); after loading it, the next ``fit`` without
    ``epochs=`` runs the epochs left, ``end - epoch``, and its epoch limit still
    counts from ``start`` (the stop message names the whole run's epochs).

    Attributes
    ----------
    start, end : int or None
        The current (or last) ``fit``'s plan; ``end`` is None outside ``fit``.
    resume_start, resume_end : int or None
        The plan of a loaded checkpoint, consumed by the next ``fit``.
    """

    def __init__(self) -> None:
        self.start: int | None = None
        self.end: int | None = None
        self.resume_start: int | None = None
        self.resume_end: int | None = None

    def begin(self, epoch: int, epochs: int | None, default: int) -> int:
        """Plan a ``fit`` that starts after ``epoch``; return its epoch count: ``epochs`` when given, else the
        epochs left of a resumed plan, else ``default``. Consumes the resumed plan either way."""
        resume_start, resume_end = self.resume_start, self.resume_end
        self.resume_start = self.resume_end = None
        resumed = epochs is None and resume_end is not None and resume_end > epoch
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, (int, numpy.integer)) or epochs < 0:
                raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
            n = int(epochs)
        else:
            n = resume_end - epoch if resumed else default
        self.start = resume_start if resumed and resume_start is not None else epoch
        self.end = epoch + n
        return n

    def restore(self, end: int | None, start: int | None) -> None:
        """The plan recorded by a checkpoint (``end`` None: it was written outside a run, or after its end)."""
        self.resume_end = end
        self.resume_start = start if end is not None else None


def trainer_config(trainer: Trainer) -> dict[str, Any]:
    """The constructor arguments that rebuild ``trainer`` (JSON-ready; the optimizer is in the state)."""
    from .stopping import GradNormThreshold, LossThreshold, criterion_threshold

    loss = trainer.loss
    return {"loss": loss.name if LOSSES.get(loss.name) is type(loss) else type(loss).__name__,
            "batch_size": trainer.batch_size, "epochs": trainer.epochs, "l2": trainer.l2,
            "clip_norm": trainer.clip_norm, "seed": trainer.seed,
            "stop_loss_below": criterion_threshold(trainer.criteria, LossThreshold),
            "stop_grad_norm_below": criterion_threshold(trainer.criteria, GradNormThreshold),
            "early_stopping": None if trainer.early_stopping is None else trainer.early_stopping.config(),
            "task": trainer.task, "record_layers": trainer.record_layers, "shuffle": trainer.shuffle,
            "eval_batch_size": trainer.eval_batch_size, "on_divergence": trainer.on_divergence}


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """The full training state of ``trainer`` (:meth:`Trainer.state_dict <deltanet.training.Trainer.state_dict>`).

    Weights and buffers, optimizer state, schedule state, generator states
    (shuffle and dropout), epoch, history, callback states and the trainer's
    configuration. Arrays are copies.
    """
    xp = backend.xp
    finished = trainer.stop_reason not in (None, "interrupted")
    planned = trainer.run_plan.end if trainer.in_fit and not finished else None
    try:
        model_config = trainer.model.config()
        json.dumps(model_config)
    except (TypeError, ValueError, NotImplementedError):
        model_config = None
    callbacks = {}
    for key, cb in stateful_callbacks(trainer).items():
        st = cb.state_dict()
        if st is not None:
            callbacks[key] = st
    spec = trainer.schedule_spec
    return {
        "trainer": trainer_config(trainer),
        "model_config": model_config,
        "model": {k: xp.array(v, copy=True) for k, v in trainer.model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": None if trainer.schedule is None else trainer.schedule.state_dict(),
        "schedule_spec": None if spec is None else {"name": spec[0], "kwargs": spec[1]},
        "rng": {"shuffle": rng_state(trainer.rng), "dropout": [rng_state(g) for g in trainer.model.generators()],
                "seeded": trainer.dropout_seeded},
        "epoch": trainer.epoch,
        "planned_end_epoch": planned,
        "planned_start_epoch": None if planned is None else trainer.run_plan.start,
        "history": trainer.history.to_dict(),
        "callbacks": callbacks,
    }


def load_trainer_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """Restore a :func:`trainer_state` into ``trainer`` (from it or a checkpoint of the same model)."""
    if trainer.in_fit:
        raise RuntimeError("Trainer.load_state_dict cannot run during fit")
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    sched = state.get("schedule")
    if sched is not None:
        if trainer.schedule is None:
            trainer.schedule = rebuild_schedule(sched, trainer.optimizer)
        trainer.schedule.load_state_dict(sched)
        trainer.schedule_spec = None
    elif state.get("schedule_spec") is not None and trainer.schedule is None:
        spec = state["schedule_spec"]
        trainer.schedule_spec = (spec["name"], dict(spec["kwargs"]))
    rng = state["rng"]
    set_rng_state(trainer.rng, rng["shuffle"])
    gens = trainer.model.generators()
    if len(gens) != len(rng["dropout"]):
        raise ValueError(f"the checkpoint has {len(rng['dropout'])} dropout generators, the model {len(gens)}")
    for gen, st in zip(gens, rng["dropout"], strict=True):
        set_rng_state(gen, st)
    trainer.dropout_seeded = bool(rng["seeded"])
    trainer.epoch = int(state["epoch"])
    trainer.history = History.from_dict(state["history"])
    named = stateful_callbacks(trainer)
    for key, st in state.get("callbacks", {}).items():
        if key in named:
            named[key].load_state_dict(st)
    planned = state.get("planned_end_epoch")
    trainer.run_plan.restore(planned, state.get("planned_start_epoch"))
    trainer.resuming = planned is not None and planned > trainer.epoch


def load_trainer(cls: type[Trainer], path: str | os.PathLike[str], model: Module | None,
                 overrides: dict[str, Any]) -> Trainer:
    """Rebuild a trainer of class ``cls`` (and, unless given, its model) from a checkpoint file.

    ``overrides`` replace the constructor arguments stored in the file
    (:meth:`Trainer.load_checkpoint <deltanet.training.Trainer.load_checkpoint>`).
    """
    state = load_state(path)
    name = os.fspath(path)
    try:
        if not isinstance(state, dict) or not isinstance(state.get("trainer"), dict):
            raise ValueError("no trainer settings in its state")
        unknown = sorted(set(state["trainer"]) - set(inspect.signature(cls.__init__).parameters))
        if unknown:
            raise ValueError(f"unknown trainer settings {unknown[:5]}")
        if model is None:
            model = _model_from_state(state)
        kwargs = dict(state["trainer"])
        kwargs.update(overrides)
        if "optimizer" not in overrides:
            opt_state = state["optimizer"]
            by_class: dict[str, Any] = {c.__name__: c for c in OPTIMIZERS.values()}
            by_class["LBFGS"] = LBFGS
            opt_cls = by_class.get(opt_state["type"])
            if opt_cls is None:
                raise ValueError(f"unknown optimizer {opt_state['type']!r} in the checkpoint; pass optimizer=")
            hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in opt_state["hyperparameters"].items()}
            kwargs["optimizer"] = opt_cls(model.parameters(), **hyper)
        if isinstance(kwargs.get("loss"), str) and kwargs["loss"] not in LOSSES:
            by_class = {c.__name__: c for c in LOSSES.values()}
            if kwargs["loss"] not in by_class:
                raise ValueError(f"unknown loss {kwargs['loss']!r} in the checkpoint; pass loss=")
            kwargs["loss"] = by_class[kwargs["loss"]]()
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise _damaged(name, exc) from exc
    trainer = cls(model, **kwargs)
    try:
        trainer.load_state_dict(state)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError, OverflowError) as exc:
        raise _damaged(name, exc) from exc
    return trainer


def _damaged(name: str, exc: BaseException) -> ValueError:
    """A one-line error naming the checkpoint file and what in its state cannot be used."""
    reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
    if reason.startswith(repr(name)):
        return ValueError(reason)
    return ValueError(f"{name!r}: cannot resume from this checkpoint (damaged, or written for another model): {reason}")


def _model_from_state(state: dict[str, Any]) -> Module:
    """The model a checkpoint describes, refused before building when its arrays are too few for it."""
    from ..io import _lower_bound_elements

    config = state.get("model_config")
    if config is None:
        raise ValueError("the model has no config to rebuild it from; pass model=")
    arrays = state.get("model")
    held = sum(int(numpy.size(a)) for a in arrays.values()) if isinstance(arrays, dict) else 0
    need = _lower_bound_elements(config)
    if need > held:
        raise ValueError(f"the model description needs at least {need} weights but the checkpoint holds {held}")
    try:
        return build(config)
    except (MemoryError, RecursionError) as exc:
        raise ValueError(f"the model description is too large to build ({type(exc).__name__})") from exc


def rebuild_schedule(state: dict[str, Any], optimizer: Optimizer) -> Schedule:
    """A schedule of the type and hyper-parameters recorded in its ``state_dict``."""
    cls = getattr(schedules_module, state.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, Schedule)):
        raise ValueError(f"cannot rebuild schedule {state.get('type')!r} from a checkpoint; pass schedule= "
                         "(a Schedule over the trainer's optimizer)")
    hyper = dict(state.get("hyperparameters", {}))
    if cls is schedules_module.LinearWarmup:
        return cls(rebuild_schedule(state["schedule"], optimizer), **hyper)
    return cls(optimizer, **hyper)


class CheckpointMethods:
    """The trainer's checkpoint methods: its state out to a file and back (mixed into
    :class:`~deltanet.training.Trainer`; the state itself is :func:`trainer_state`)."""

    def config(self: Trainer) -> dict[str, Any]:
        """The constructor arguments that rebuild this trainer (JSON-ready; the optimizer is in the state)."""
        return trainer_config(self)

    def state_dict(self: Trainer) -> dict[str, Any]:
        """The full training state: everything a resumed run needs to continue bit for bit.

        Weights and buffers, optimizer state, schedule state, generator states
        (shuffle and dropout), epoch, history, callback states and the trainer's
        configuration. Arrays are copies. See :func:`trainer_state`.
        """
        return trainer_state(self)

    def load_state_dict(self: Trainer, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (from this trainer or a checkpoint of the same model)."""
        load_trainer_state(self, state)

    def save_checkpoint(self: Trainer, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` (``.npz`` + JSON, no pickle; atomic)."""
        save_state(path, self.state_dict())

    def resume(self: Trainer, path: str | os.PathLike[str]) -> Trainer:
        """Load a checkpoint into this trainer (same model architecture); ``fit`` then continues the run."""
        self.load_state_dict(load_state(path))
        return self

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], model: Module | None = None, **overrides: Any) -> Trainer:
        """Rebuild a trainer (and, unless given, its model) from a checkpoint file.

        ``overrides`` replace constructor arguments: pass ``callbacks=...``,
        ``progress=True``, or ``loss=`` / ``schedule=`` objects that the file
        cannot describe (user-defined classes).
        """
        return load_trainer(cls, path, model, overrides)
