"""A plain-language backprop health summary from a training history (no HTML, no matplotlib).

>>> from deltanet.report.health import health_summary
>>> for line in health_summary(history, layer_labels=labels):  # doctest: +SKIP
...     print(line)

Each verdict is one short sentence. The CLI prints the same lines at the end of
``deltanet train`` and the report shows them at the top.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["UPDATE_RATIO_RULE", "default_layer_label", "health_summary", "layer_of", "param_layers"]

#: The usual rule of thumb for the update/weight norm ratio per step.
UPDATE_RATIO_RULE = 1e-3
#: Spread (last layer's gradient norm / first layer's) above which gradients count as vanishing.
VANISHING_SPREAD = 1e-2
EXPLODING_SPREAD = 1e2


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _order(path: str) -> tuple[Any, ...]:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.split("."))


def layer_of(param_name: str) -> str:
    """The module path of a qualified parameter name: ``"0.weight"`` -> ``"0"``."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


def param_layers(names: Sequence[str]) -> list[str]:
    """Distinct module paths of parameter names, input layer first."""
    return sorted(dict.fromkeys(layer_of(n) for n in names), key=_order)


def default_layer_label(path: str, layers: Sequence[str], labels: Mapping[str, str] | None = None) -> str:
    """``labels[path]`` if given, else "hidden layer N" / "output layer" by position among ``layers``."""
    if labels and path in labels:
        return labels[path]
    if path in layers:
        i = list(layers).index(path)
        return "output layer" if i == len(layers) - 1 else f"hidden layer {i + 1}"
    return f"layer {path}"


def _records(history: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from . import history_records

    return history_records(history)


def _last_weight_norms(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per layer: the mean gradient norm of the last epoch that recorded one (weights preferred over biases)."""
    for r in reversed(records):
        norms = r.get("layer_grad_norms") or {}
        if norms:
            out: dict[str, float] = {}
            for name, v in norms.items():
                if not _num(v):
                    continue
                layer = layer_of(name)
                if name.endswith("weight") or layer not in out:
                    out[layer] = float(v)
            return out
    return {}


def health_summary(history: Any, *, layer_labels: Mapping[str, str] | None = None,
                   unit_health: Mapping[str, Mapping[str, float]] | None = None,
                   update_ratios: Mapping[str, Sequence[float]] | None = None) -> list[str]:
    """Verdict sentences on the gradients, dead/saturated units and update sizes of a run.

    Parameters
    ----------
    history : History, its ``to_dict()`` or a list of epoch records
        Uses ``layer_grad_norms`` (last epoch, weights) for the spread over depth,
        ``dead_fraction`` (last epoch) when ``unit_health`` is not given,
        ``stop_reason``, and per-record ``update_ratio`` ({layer: ratio}) if present.
    layer_labels : mapping, optional
        Module path -> display name ("0" -> "hidden layer 1 (Linear)").
    unit_health : mapping, optional
        Module path -> {"dead": fraction, "saturated": fraction}, measured on a
        fixed sample (:func:`deltanet.training.metrics.unit_health`).
    update_ratios : mapping, optional
        Module path (or parameter name) -> update/weight norm ratio per epoch;
        by default the records' ``update_ratio``. Each layer is judged by its
        median over the epochs against :data:`UPDATE_RATIO_RULE`.
    """
    records, extra = _records(history)
    lines: list[str] = []
    reason = extra.get("stop_reason")
    if reason == "diverged":
        lines.append("Training diverged (a NaN or infinite loss): lower the learning rate or set gradient clipping.")
    elif reason == "interrupted":
        lines.append("Training was interrupted before it finished: the numbers below cover the epochs that ran.")
    if not records:
        lines.append("No epochs were recorded: nothing to judge.")
        return lines

    def name(path: str, layers: Sequence[str]) -> str:
        return default_layer_label(path, layers, layer_labels)

    norms = _last_weight_norms(records)
    layers = param_layers(list(norms))
    if len(layers) >= 2:
        first, last = norms[layers[0]], norms[layers[-1]]
        if last > 0 and first > 0:
            ratio = first / last
            head = f"The first layer's gradients are {ratio:.1e} of the last's"
            if ratio < VANISHING_SPREAD:
                lines.append(f"{head}: vanishing gradients, try ReLU, residual connections or batch norm.")
            elif ratio > EXPLODING_SPREAD:
                lines.append(f"{head}: exploding gradients, try a lower learning rate, gradient clipping or normalization.")
            else:
                lines.append(f"{head}: gradients reach every layer (healthy spread over depth).")
        elif last > 0 and first == 0:
            lines.append("The first layer receives no gradient at all: check for dead units or a detached input.")
    elif len(layers) == 1:
        lines.append("Only one layer records gradients: no spread over depth to judge.")
    else:
        lines.append("No per-layer gradient norms were recorded: the spread over depth cannot be judged.")

    if unit_health:
        dead = {p: float(v.get("dead", 0.0) or 0.0) for p, v in unit_health.items() if v.get("dead") is not None}
        sat = {p: float(v.get("saturated", 0.0) or 0.0) for p, v in unit_health.items() if v.get("saturated") is not None}
        where = "on a fixed sample"
    else:
        last_dead = next((r.get("dead_fraction") for r in reversed(records) if r.get("dead_fraction")), None) or {}
        dead = {p: float(v) for p, v in last_dead.items() if _num(v)}
        sat = {}
        where = "on the last batch"
    all_layers = sorted(set(dead) | set(sat), key=_order)
    for p in sorted(dead, key=_order):
        f = dead[p]
        if f >= 0.5:
            lines.append(f"{name(p, all_layers)}: {100 * f:.0f}% of the units are dead ({where}): lower the learning rate, "
                         "use LeakyReLU or He initialization.")
        elif f >= 0.1:
            lines.append(f"{name(p, all_layers)}: {100 * f:.0f}% of the units are dead ({where}): worth watching.")
    for p in sorted(sat, key=_order):
        f = sat[p]
        if f >= 0.1:
            lines.append(f"{name(p, all_layers)}: {100 * f:.0f}% of the units are saturated ({where}): their gradients "
                         "vanish; try ReLU, a smaller initialization or normalized inputs.")
    if dead and not any(v >= 0.1 for v in dead.values()):
        lines.append(f"Dead units: under 10% in every ReLU layer ({where}).")
    if sat and not any(v >= 0.1 for v in sat.values()):
        lines.append(f"Saturated units: under 10% in every tanh/sigmoid layer ({where}).")

    # the ratio of each layer over the run: the median over epochs (the last epochs alone would judge a schedule's
    # annealed learning rate, not the training)
    series: dict[str, list[float]] = {}
    if update_ratios:
        for k, seq in update_ratios.items():
            series.setdefault(layer_of(k) if k.endswith(("weight", "bias")) else k, []).extend(
                float(v) for v in seq if _num(v))
    else:
        for r in records:
            for k, v in (r.get("update_ratio") or {}).items():
                if _num(v):
                    series.setdefault(layer_of(k) if k.endswith(("weight", "bias")) else k, []).append(float(v))
    ratios = {k: statistics.median(v) for k, v in series.items() if v}
    if ratios:
        rl = sorted(ratios, key=_order)
        low = [p for p in rl if ratios[p] < UPDATE_RATIO_RULE / 10]
        high = [p for p in rl if ratios[p] > UPDATE_RATIO_RULE * 10]
        span = f"{min(ratios.values()):.1e} to {max(ratios.values()):.1e} (median over epochs)"
        if high:
            lines.append(f"Update/weight ratio {span} (rule of thumb {UPDATE_RATIO_RULE:g}): too large in "
                         f"{', '.join(name(p, rl) for p in high)}; lower the learning rate.")
        if low:
            lines.append(f"Update/weight ratio {span} (rule of thumb {UPDATE_RATIO_RULE:g}): too small in "
                         f"{', '.join(name(p, rl) for p in low)}; these layers barely learn, raise the learning rate.")
        if not high and not low:
            lines.append(f"Update/weight ratio {span}: near the {UPDATE_RATIO_RULE:g} rule of thumb.")
    return lines
