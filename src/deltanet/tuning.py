"""Hyper-parameter search: random or grid trials over the course text's ranges, narrowed by successive halving.

The course text's tuning advice gives the ranges searched here:

==========  =====================================================  ============================
what        course text                                            searched
==========  =====================================================  ============================
lr          "Learning rate: 0.001-0.1"                             log-uniform in [1e-3, 1e-1]
depth       "Number of layers: 2-5"                                1-4 hidden layers (2-5 weight layers)
width       "Start with d_l = sqrt(d_(l-1) d_(l+1))"               that heuristic, or 64, 128, 256, 512 per layer
l2          "Regularization: lambda = 0.0001-0.01"                 log-uniform in [1e-4, 1e-2]
dropout     (no range given)                                       uniform in [0, 0.5]
==========  =====================================================  ============================

Successive halving (Jamieson and Talwalkar, 2016, https://arxiv.org/abs/1502.07943):
train every trial for ``min_epochs``, keep the best 1/eta by validation loss,
train those for eta times as many epochs (from the start: each rung is a fresh
run with its own schedule), and so on until one trial is left or the epochs
reach ``max_epochs``. The trials of a rung are independent, so ``run_rung`` may
spread them over processes (:func:`deltanet.distributed.map_over_ranks`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy

#: The searched ranges (see the module's table).
LR_RANGE = (1e-3, 1e-1)
DEPTHS = (1, 2, 3, 4)
WIDTHS: tuple[int | None, ...] = (None, 64, 128, 256, 512)          # None: the heuristic d_l = sqrt(d_(l-1) d_(l+1))
L2_RANGE = (1e-4, 1e-2)
DROPOUT_RANGE = (0.0, 0.5)
#: The grid of ``search="grid"``: 3 x 3 x 2 x 2 x 2 = 72 trials.
GRID: dict[str, tuple[Any, ...]] = {"lr": (1e-3, 1e-2, 1e-1), "depth": (1, 2, 3), "width": (None, 256),
                                    "dropout": (0.0, 0.3), "l2": (1e-4, 1e-2)}


@dataclass(frozen=True)
class Trial:
    """One point of the search: learning rate, hidden layers, width per hidden layer (None: the heuristic),
    dropout rate and L2 lambda."""

    id: int
    lr: float
    depth: int
    width: int | None
    dropout: float
    l2: float

    def describe(self) -> str:
        width = "sqrt" if self.width is None else str(self.width)
        return f"lr {self.lr:.3g}, {self.depth} x {width}, dropout {self.dropout:.2f}, l2 {self.l2:.2g}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_trials(n: int, seed: int = 0) -> list[Trial]:
    """``n`` trials drawn from the course text's ranges (the same ``seed`` gives the same trials)."""
    if n < 1:
        raise ValueError(f"the number of trials must be >= 1, got {n}")
    rng = numpy.random.default_rng(numpy.random.SeedSequence([int(seed), 7]))
    out = []
    for i in range(n):
        lr = float(math.exp(rng.uniform(math.log(LR_RANGE[0]), math.log(LR_RANGE[1]))))
        depth = int(rng.choice(DEPTHS))
        width = WIDTHS[int(rng.integers(len(WIDTHS)))]
        dropout = float(rng.uniform(*DROPOUT_RANGE))
        l2 = float(math.exp(rng.uniform(math.log(L2_RANGE[0]), math.log(L2_RANGE[1]))))
        out.append(Trial(i, lr, depth, width, round(dropout, 3), l2))
    return out


def grid_trials(grid: dict[str, Sequence[Any]] | None = None) -> list[Trial]:
    """Every combination of ``grid`` (default :data:`GRID`), in a fixed order."""
    grid = dict(GRID if grid is None else grid)
    keys = ("lr", "depth", "width", "dropout", "l2")
    missing = [k for k in keys if k not in grid]
    if missing:
        raise ValueError(f"the grid needs values for {', '.join(missing)}")
    return [Trial(i, *combo) for i, combo in enumerate(itertools.product(*(grid[k] for k in keys)))]


def rungs(n_trials: int, min_epochs: int, max_epochs: int, eta: int = 3) -> list[tuple[int, int]]:
    """``[(trials, epochs), ...]`` of successive halving: ``n, n/eta, ...`` trials for ``min_epochs, x eta, ...``
    epochs (capped at ``max_epochs``), until one trial is left or the epochs reach ``max_epochs``."""
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    if not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"need 1 <= min_epochs <= max_epochs, got {min_epochs} and {max_epochs}")
    out = [(n_trials, min_epochs)]
    while out[-1][0] > 1 and out[-1][1] < max_epochs:
        n, epochs = out[-1]
        out.append((max(1, n // eta), min(max_epochs, epochs * eta)))
    return out


def score(result: dict[str, Any]) -> float:
    """The validation loss a rung ranks by (infinite for a run that diverged or has none)."""
    v = result.get("val_loss")
    return float(v) if v is not None and math.isfinite(v) else math.inf


def successive_halving(trials: Sequence[Trial], run_rung: Callable[[list[Trial], int], list[dict[str, Any]]], *,
                       min_epochs: int, max_epochs: int, eta: int = 3,
                       on_rung: Callable[[int, int, list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Run the rungs; ``run_rung(trials, epochs)`` returns one result dict per trial (``val_loss`` at least).

    Returns every result, each with the trial's fields and ``rung``, ``epochs``; ``on_rung(rung, epochs, results)``
    is called after each rung. Ties are broken by the trial id, so every process selects alike.
    """
    plan = rungs(len(trials), min_epochs, max_epochs, eta)
    alive = list(trials)
    everything: list[dict[str, Any]] = []
    for k, (n, epochs) in enumerate(plan):
        alive = alive[:n]
        results = run_rung(alive, epochs)
        rows = [{**t.as_dict(), "rung": k + 1, "epochs": epochs, **r} for t, r in zip(alive, results, strict=True)]
        everything += rows
        if on_rung is not None:
            on_rung(k + 1, epochs, rows)
        ranked = sorted(zip(alive, rows, strict=True), key=lambda tr: (score(tr[1]), tr[0].id))
        alive = [t for t, _ in ranked]
    return everything


def best(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The best result of the last rung (lowest validation loss, then lowest trial id)."""
    last = max(r["rung"] for r in results)
    return min((r for r in results if r["rung"] == last), key=lambda r: (score(r), r["id"]))


__all__ = ["DEPTHS", "DROPOUT_RANGE", "GRID", "L2_RANGE", "LR_RANGE", "WIDTHS", "Trial", "best", "grid_trials",
           "random_trials", "rungs", "score", "successive_halving"]
