"""What every rank must hold alike: the weights, the batch-norm buffers and the seeds.

* Weights and buffers: rank 0's are broadcast at the start of every ``fit``
  (the ranks built their models alike, and now they are the same bits).
* Batch-norm running statistics: each rank's running mean and variance follow
  its own shards' batch statistics; at the end of every epoch they are averaged
  over the ranks, so evaluation, validation and the saved model see one set.
* Seeds: the shuffle and the validation split must be the same on every rank
  (every rank then cuts the same global batches); a ``seed=None`` trainer takes
  rank 0's freshly drawn seed. Dropout masks must differ between ranks (each
  rank drops units of other rows): rank 0 draws them exactly as a single
  process does; rank r > 0 seeds its dropout generators at the start of every
  epoch from the seed, r and the epoch, so that a run resumed from a checkpoint
  (which holds rank 0's generators) draws the masks of the uninterrupted run.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy

from ..modules.base import Module
from .comm import Communicator


def broadcast_model(comm: Communicator, model: Module) -> None:
    """Overwrite every parameter and buffer of ``model`` by rank 0's, in place."""
    for array in _unique(model.state_dict().values()):
        comm.bcast_array(array)


def average_buffers(comm: Communicator, model: Module) -> None:
    """Replace every float buffer of ``model`` (batch-norm running statistics) by its mean over the ranks,
    in one all-reduce."""
    buffers = [b for b in _unique(b for _, b in model.named_buffers()) if b.dtype.kind == "f"]
    if not buffers:
        return
    packed = numpy.concatenate([numpy.asarray(b, dtype=numpy.float64).reshape(-1) for b in buffers])
    comm.allreduce_sum(packed)
    packed /= comm.size
    offset = 0
    for b in buffers:
        b[...] = packed[offset:offset + b.size].reshape(b.shape)
        offset += b.size


def shared_seed(comm: Communicator, seed: int | None) -> int:
    """``seed``, or (None) a fresh seed drawn on rank 0 and sent to every rank."""
    if seed is not None:
        return int(seed)
    return int(comm.bcast(secrets.randbits(63) if comm.is_root else None))


def rank_seed(seq: numpy.random.SeedSequence, rank: int) -> numpy.random.SeedSequence:
    """The seed sequence of rank ``rank``'s dropout masks: ``seq`` itself on rank 0 (a one-rank job draws the
    masks of a single process), one mixed from ``seq``'s entropy and the rank on every other rank."""
    if rank == 0:
        return seq
    entropy = seq.entropy if isinstance(seq.entropy, (list, tuple)) else [seq.entropy]
    return numpy.random.SeedSequence([*entropy, rank], spawn_key=seq.spawn_key, pool_size=seq.pool_size)


def seed_epoch_dropout(model: Module, seq: numpy.random.SeedSequence, rank: int, epoch: int) -> None:
    """On rank r > 0: seed ``model``'s dropout generators for ``epoch`` from the rank's seed sequence ``seq``
    (:func:`rank_seed`) and the epoch. Rank 0 keeps its generators running, as one process does."""
    gens = model.generators()
    if rank == 0 or not gens:
        return
    this_epoch = numpy.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, int(epoch)), pool_size=seq.pool_size)
    for gen, child in zip(gens, this_epoch.spawn(len(gens)), strict=True):
        gen.bit_generator.state = type(gen.bit_generator)(child).state


def _unique(arrays: Any) -> list[Any]:
    seen: set[int] = set()
    out = []
    for a in arrays:
        if id(a) not in seen:       # a module used twice lists its arrays twice
            seen.add(id(a))
            out.append(a)
    return out


__all__ = ["average_buffers", "broadcast_model", "rank_seed", "seed_epoch_dropout", "shared_seed"]
