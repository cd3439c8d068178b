"""Serialization of the playground's events: JSON with finite numbers, heatmaps as bytes, Server-Sent Events.

A frame is one JSON object (:meth:`deltanet.playground.session.Session.frame`).
Arrays become lists of Python floats (NaN and infinity become ``null``, which
JSON has); heatmaps become base64 strings of one byte per grid point
(:func:`encode_map`), about a tenth of their size as JSON numbers. The
:class:`EventHub` hands each serialized frame to every connected page.
"""

from __future__ import annotations

import base64
import json
import math
import queue
import threading
from typing import Any

import numpy


def clean(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays turned into Python numbers and lists, non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, numpy.ndarray):
        return clean(value.tolist())
    if isinstance(value, (bool, numpy.bool_)):
        return bool(value)
    if isinstance(value, (int, numpy.integer)):
        return int(value)
    if isinstance(value, (float, numpy.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def to_json(value: Any) -> str:
    return json.dumps(clean(value), allow_nan=False, separators=(",", ":"))


def encode_map(values: Any, lo: float, hi: float) -> str:
    """One byte per value: 0 for ``lo`` (or below), 255 for ``hi`` (or above); base64 text."""
    v = numpy.asarray(values, dtype=numpy.float64).ravel()
    span = hi - lo if hi > lo else 1.0
    q = numpy.clip(numpy.nan_to_num((v - lo) / span, nan=0.5), 0.0, 1.0)
    return base64.b64encode(numpy.round(q * 255).astype(numpy.uint8).tobytes()).decode("ascii")


def decode_map(text: str, lo: float, hi: float) -> numpy.ndarray:
    """The inverse of :func:`encode_map`, to within (hi - lo) / 510."""
    q = numpy.frombuffer(base64.b64decode(text), dtype=numpy.uint8).astype(numpy.float64) / 255.0
    return lo + q * (hi - lo)


def sse(event: str, data: str) -> bytes:
    """One Server-Sent Event: ``event: NAME`` and the data on one ``data:`` line, then a blank line."""
    return f"event: {event}\ndata: {data}\n\n".encode()


class EventHub:
    """Fan-out of serialized events to the connected pages: one bounded queue per page.

    A page that falls behind loses its oldest queued frames (frames are
    snapshots; only the newest matters).
    """

    def __init__(self, depth: int = 4) -> None:
        self._lock = threading.Lock()
        self._queues: list[queue.Queue[bytes]] = []
        self.depth = depth
        self.latest: bytes | None = None

    def subscribe(self) -> queue.Queue[bytes]:
        q: queue.Queue[bytes] = queue.Queue(self.depth)
        with self._lock:
            self._queues.append(q)
            if self.latest is not None:
                q.put_nowait(self.latest)
        return q

    def unsubscribe(self, q: queue.Queue[bytes]) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._queues)

    def publish(self, event: str, data: str) -> None:
        message = sse(event, data)
        with self._lock:
            if event == "frame":
                self.latest = message
            for q in self._queues:
                while True:
                    try:
                        q.put_nowait(message)
                        break
                    except queue.Full:
                        try:
                            q.get_nowait()
                        except queue.Empty:
                            pass


__all__ = ["EventHub", "clean", "decode_map", "encode_map", "sse", "to_json"]
