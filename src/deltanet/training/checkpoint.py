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
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy

from .. import backend
from ..io import atomic_write

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
    """Read a state written by :func:`save_state` (no pickle: ``allow_pickle=False``)."""
    try:
        data = numpy.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a deltanet checkpoint (.npz): {exc}") from exc
    with data:
        if not hasattr(data, "files") or _META not in data.files:
            raise ValueError(f"{os.fspath(path)!r} is not a deltanet checkpoint: no {_META} entry")
        meta = json.loads(str(data[_META][()]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a deltanet checkpoint (format {meta.get('format')!r})")
        if meta.get("version", 0) > VERSION:
            raise ValueError(f"{os.fspath(path)!r} was written by a newer deltanet (checkpoint version "
                             f"{meta['version']} > {VERSION}); upgrade deltanet to read it")
        arrays = {name: backend.xp.asarray(data[name]) for name in data.files if name != _META}
    return unflatten(meta["state"], arrays)


def rng_state(gen: numpy.random.Generator) -> dict[str, Any]:
    """The bit generator state of ``gen`` (a JSON-ready dict; Python ints are exact at any size)."""
    return gen.bit_generator.state


def set_rng_state(gen: numpy.random.Generator, state: dict[str, Any]) -> None:
    """Put ``gen`` in ``state`` (as returned by :func:`rng_state`)."""
    kind = type(gen.bit_generator).__name__
    if state.get("bit_generator") != kind:
        raise ValueError(f"checkpoint: generator state is for {state.get('bit_generator')!r}, the generator is {kind}")
    gen.bit_generator.state = state
