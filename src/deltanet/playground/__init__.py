"""``deltanet playground``: configure an MLP in the browser and watch the real library train it, forward and backward.

The page (``static/``: HTML, JavaScript, CSS; no CDN, works offline) draws
what a :class:`~deltanet.playground.session.Session` computes with deltanet's
own modules, losses, optimizers and schedules: the output over the input
plane, every unit's output, links drawn by weight, gradient or update, loss
curves, accuracy and the confusion matrix, and the backward view (|delta| per
unit, gradient norm per layer over time, update/weight ratios, dead and
saturated units, the phases of one step with the course's equations and live
numbers).

>>> from deltanet.playground import start
>>> server, _ = start(port=0)          # doctest: +SKIP
>>> print(server.url)                  # doctest: +SKIP

Modules: :mod:`.settings` (the configuration the URL hash holds),
:mod:`.datasets` (the 2-D sets, features, split, uploads), :mod:`.network`
(the network of a configuration, presets), :mod:`.probe` (what the modules'
passes computed), :mod:`.session` (training by the five plain calls, phase by
phase, and the frames), :mod:`.phases` (equations with live numbers),
:mod:`.events` (serialization, Server-Sent Events), :mod:`.server` (HTTP).
"""

from __future__ import annotations

from .server import DEFAULT_PORT, PlaygroundServer, start
from .session import Session

__all__ = ["DEFAULT_PORT", "PlaygroundServer", "Session", "start"]
