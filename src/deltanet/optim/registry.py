"""Optimizers by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..parameter import Parameter
from .adam import Adam, AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

#: Optimizer names accepted by :func:`get_optimizer`.
OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}


def get_optimizer(name: str, params: Iterable[Parameter], **hyper: Any) -> Optimizer:
    """Build an optimizer by name: ``"sgd"``, ``"adam"``, ``"adamw"`` or ``"rmsprop"`` (case-insensitive).

    ``hyper`` are the optimizer's keyword arguments; ``lr=None`` means the
    optimizer's default learning rate.

    >>> opt = get_optimizer("adam", net.parameters(), lr=3e-4, weight_decay=1e-4)   # doctest: +SKIP
    """
    cls = OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if hyper.get("lr", 0) is None:
        del hyper["lr"]
    try:
        return cls(params, **hyper)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        raise TypeError(f"optimizer {name!r} ({cls.__name__}): {exc}") from exc
