"""Data-parallel training over MPI: the same run on N processes, the same result as one.

Every rank holds the same model and the whole training set, draws the same
shuffle, and computes its shard of every global batch (rows ``[start_r, end_r)``,
:mod:`.sharding`); one all-reduce of the flat gradient buffer between backward
and the optimizer step gives every rank the global batch's gradient
(:mod:`.gradients`), so every rank takes the same step; with
``DataParallel(overlap=True)`` the buffer goes in buckets during the backward
instead (:mod:`.overlap`; same result, off by default: no faster on one
machine). The library call::

    trainer = Trainer(model, optimizer="adam", batch_size=64, distributed="mpi")
    trainer.fit(X, y)            # on every rank, under: mpiexec -n 4 python train.py

and the command: ``mpiexec -n 4 deltanet train ...`` (the launcher is detected).

Semantics (see the README's "Data-parallel training (MPI)"):

* the result equals one process training on the same global batches, to float
  rounding (SGD, momentum, Adam, L2, clipping, schedules, sample weights; equal
  or unequal shards);
* batch normalization uses each rank's local batch statistics (as PyTorch's
  DistributedDataParallel does by default); the running statistics are averaged
  over the ranks at the end of every epoch (:mod:`.state`);
* dropout draws different masks on every rank: rank 0 those of one process,
  rank r > 0 from seeds derived from the trainer's seed, r and the epoch
  (a resumed run draws the uninterrupted run's masks); reproducible for a
  given number of ranks;
* epoch records (loss, accuracy) are sums over the ranks: every rank logs the
  same numbers (:mod:`.metrics`); only rank 0 should print and write files
  (``trainer.distributed.is_root``);
* a rank that raises ends the job at once (:mod:`.failure`); Ctrl-C is left to
  the launcher, which ends every rank.

The hyper-parameter search (``mpiexec -n N deltanet tune``) spreads whole
trials over the ranks instead (:func:`map_over_ranks`).

mpi4py is imported on first use: ``pip install 'deltanet[mpi]'``.
"""

from __future__ import annotations

from .comm import INSTALL_HINT, Communicator, import_mpi
from .data_parallel import DataParallel, data_parallel
from .failure import abort_message, abort_on_error
from .launch import launched_size, local_size, set_threads, threads_per_rank
from .sharding import Shard, shard_bounds
from .tasks import map_over_ranks

__all__ = ["INSTALL_HINT", "Communicator", "DataParallel", "Shard", "abort_message", "abort_on_error", "data_parallel",
           "import_mpi", "launched_size", "local_size", "map_over_ranks", "set_threads", "shard_bounds",
           "threads_per_rank"]
