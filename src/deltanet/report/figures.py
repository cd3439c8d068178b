"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state).

Each ``plot_*`` function takes plain data (the history's per-epoch records,
label arrays, a prediction function) and returns a
:class:`matplotlib.figure.Figure`, or ``None`` when there is nothing to draw
(no validation accuracy for a regression run, no ReLU layers, ...).
:func:`to_png` renders a figure to PNG bytes with the Agg canvas. matplotlib is
the ``[plot]`` extra: :func:`matplotlib_available` says whether it imports.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy

__all__ = [
    "matplotlib_available", "plot_accuracy", "plot_confusion", "plot_dead_units", "plot_decision_boundary",
    "plot_grad_norms", "plot_loss", "plot_lr", "to_png",
]

_SIZE = (6.4, 4.0)
_DPI = 100


def matplotlib_available() -> bool:
    """Whether matplotlib (the ``[plot]`` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(size: tuple[float, float] = _SIZE) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=_DPI, layout="constrained")


def to_png(fig: Any) -> bytes:
    """Render a figure to PNG bytes (Agg canvas; works without a display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Epochs and values of ``key`` where the value is a finite number."""
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(int(r["epoch"]))
            ys.append(float(v))
    return xs, ys


def _marks(records: Sequence[dict[str, Any]], size: float = 3.0) -> dict[str, Any]:
    """Point markers for short runs; plain lines when there are too many epochs to tell points apart."""
    return {"marker": "o", "markersize": size} if len(records) <= 60 else {}


def _epoch_axis(ax: Any, records: Sequence[dict[str, Any]]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if records:
        ax.set_xlim(0.5 if len(records) == 1 else 1, max(1.5, float(records[-1]["epoch"])))
    ax.grid(True, alpha=0.3)


def _mark_best(ax: Any, best_epoch: int | None) -> None:
    if best_epoch is not None:
        ax.axvline(best_epoch, color="0.5", linestyle=":", linewidth=1, label=f"best epoch ({best_epoch})")


def plot_loss(records: Sequence[dict[str, Any]], *, best_epoch: int | None = None, includes_l2: bool = False) -> Any:
    """Training and validation loss per epoch (log scale when the loss spans more than a decade)."""
    tx, ty = _series(records, "train_loss")
    vx, vy = _series(records, "val_loss")
    if not ty and not vy:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(tx, ty, **_marks(records), label="training" + (" (incl. L2 penalty)" if includes_l2 else ""))
    if vy:
        ax.plot(vx, vy, **_marks(records), label="validation")
    _mark_best(ax, best_epoch)
    values = [v for v in ty + vy if v > 0]
    if values and len(values) == len(ty + vy) and max(values) / min(values) > 10:
        ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title("Loss per epoch")
    _epoch_axis(ax, records)
    ax.legend()
    return fig


def plot_accuracy(records: Sequence[dict[str, Any]], *, best_epoch: int | None = None) -> Any:
    """Training and validation accuracy per epoch (classification only; None otherwise)."""
    tx, ty = _series(records, "train_accuracy")
    vx, vy = _series(records, "val_accuracy")
    if not ty and not vy:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    if ty:
        ax.plot(tx, [100 * v for v in ty], **_marks(records), label="training (batches, training mode)")
    if vy:
        ax.plot(vx, [100 * v for v in vy], **_marks(records), label="validation")
    _mark_best(ax, best_epoch)
    ax.set_ylabel("accuracy (%)")
    low = min(ty + vy)
    ax.set_ylim(max(0.0, 100 * low - 5), 100.5)
    ax.set_title("Accuracy per epoch")
    _epoch_axis(ax, records)
    ax.legend(loc="lower right")
    return fig


def plot_lr(records: Sequence[dict[str, Any]]) -> Any:
    """The learning rate of each epoch (of its last step)."""
    x, y = _series(records, "lr")
    if not y:
        return None
    fig = _figure((6.4, 3.2))
    ax = fig.add_subplot()
    ax.plot(x, y, **_marks(records), color="tab:purple")
    ax.set_ylim(bottom=0, top=1.05 * max(y) if max(y) > 0 else None)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    _epoch_axis(ax, records)
    return fig


def _layer_order(name: str) -> tuple[Any, ...]:
    """Sort key of a qualified parameter name: numeric path components as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split("."))


def plot_grad_norms(records: Sequence[dict[str, Any]], *, global_norm: bool = True,
                    labels: dict[str, str] | None = None) -> Any:
    """Mean gradient L2 norm of each parameter per epoch, on a log scale.

    ``labels`` maps a module path (``"0"``) to the name the other figures and the
    console use (``"hidden layer 1 (Linear)"``); a line is that name and the tensor
    (``"hidden layer 1 (Linear) weight"``).

    Weights are solid lines, biases and normalization parameters dashed; the
    colour runs from the first layer (dark) to the last (light), so gradients
    that shrink (vanish) or grow (explode) towards the input stand out as a
    fan of lines spread over decades.
    """
    names: list[str] = list(dict.fromkeys(n for r in records for n in (r.get("layer_grad_norms") or {})))
    if not names:
        return None
    from matplotlib import colormaps

    names.sort(key=_layer_order)
    layers = list(dict.fromkeys(n.rsplit(".", 1)[0] if "." in n else n for n in names))
    cmap = colormaps["viridis"]
    fig = _figure((7.6, 4.4))
    ax = fig.add_subplot()
    plotted = False
    for name in names:
        layer = name.rsplit(".", 1)[0] if "." in name else name
        xs, ys = [], []
        for r in records:
            v = (r.get("layer_grad_norms") or {}).get(name)
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                xs.append(int(r["epoch"]))
                ys.append(float(v))
        if not ys:
            continue
        plotted = True
        colour = cmap(0.9 * layers.index(layer) / max(1, len(layers) - 1))
        is_weight = name.endswith("weight")
        ax.plot(xs, ys, color=colour, linestyle="-" if is_weight else "--", linewidth=1.6 if is_weight else 1.0,
                **(_marks(records, 2.5) if is_weight else {}), label=_param_label(name, labels))
    if global_norm:
        gx, gy = _series(records, "grad_norm")
        if gy and all(v > 0 for v in gy):
            ax.plot(gx, gy, color="black", linewidth=1.0, linestyle=":", label="global norm")
            plotted = True
    if not plotted:
        return None
    ax.set_yscale("log")
    ax.set_ylabel("mean gradient L2 norm (log scale)")
    ax.set_title("Gradient norm per parameter (input layer dark, output layer light)")
    _epoch_axis(ax, records)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False)
    return fig


def _param_label(name: str, labels: dict[str, str] | None) -> str:
    """``"0.weight"`` -> ``"hidden layer 1 (Linear) weight"`` when ``labels`` names module ``"0"``."""
    layer, _, tensor = name.rpartition(".")
    if labels and layer in labels:
        return f"{labels[layer]} {tensor}"
    return name


def plot_dead_units(records: Sequence[dict[str, Any]], *, labels: dict[str, str] | None = None) -> Any:
    """Fraction of dead ReLU units (no positive output on the epoch's last batch) per layer and epoch."""
    paths = list(dict.fromkeys(p for r in records for p in (r.get("dead_fraction") or {})))
    if not paths:
        return None
    paths.sort(key=_layer_order)
    fig = _figure()
    ax = fig.add_subplot()
    for path in paths:
        xs, ys = [], []
        for r in records:
            v = (r.get("dead_fraction") or {}).get(path)
            if isinstance(v, (int, float)) and math.isfinite(v):
                xs.append(int(r["epoch"]))
                ys.append(100.0 * float(v))
        ax.plot(xs, ys, **_marks(records), label=(labels or {}).get(path, f"layer {path}"))
    ax.set_ylim(-2, 102)
    ax.set_ylabel("dead units (%)")
    ax.set_title("Dead ReLU units per layer (zero output for every sample of a batch)")
    _epoch_axis(ax, records)
    ax.legend(fontsize="small")
    return fig


def plot_confusion(cm: numpy.ndarray, class_names: Sequence[str] | None = None, *, title: str = "Confusion matrix") -> Any:
    """A confusion matrix (rows: true class, columns: predicted class), coloured by row fraction, with counts."""
    cm = numpy.asarray(cm)
    k = cm.shape[0]
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    side = min(10.0, max(4.2, 0.45 * k + 2.5))
    fig = _figure((side + 1.0, side))
    ax = fig.add_subplot()
    rows = cm.sum(axis=1, keepdims=True)
    frac = numpy.divide(cm, rows, out=numpy.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize="small" if k > 12 else "medium",
                            color="white" if frac[i, j] > 0.5 else "black")
    ticks = numpy.arange(k)
    long_names = max(len(n) for n in names) > 3
    ax.set_xticks(ticks, names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(cm.sum())
    acc = float(numpy.trace(cm)) / total if total else float("nan")
    ax.set_title(f"{title} ({total} samples, accuracy {100 * acc:.1f}%)")
    return fig


def plot_decision_boundary(predict: Callable[[numpy.ndarray], numpy.ndarray], X: numpy.ndarray, y: numpy.ndarray, *,
                           class_names: Sequence[str] | None = None, resolution: int = 200,
                           feature_names: Sequence[str] | None = None) -> Any:
    """The predicted class over a grid covering 2-D data, with the data points on top.

    Parameters
    ----------
    predict : callable
        Maps raw inputs of shape ``(n, 2)`` to integer class indices ``(n,)``.
    X, y : arrays
        The points to draw, shape ``(n, 2)``, and their true class indices.
    resolution : int
        Grid points per axis (``resolution**2`` predictions, one batched call).
    """
    from matplotlib.colors import ListedColormap

    X = numpy.asarray(X, dtype=float)
    y = numpy.asarray(y).astype(int)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: expected X of shape (n, 2), got {X.shape}")
    k = int(max(y.max(initial=0) + 1, len(class_names) if class_names is not None else 0))
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.08 * numpy.maximum(hi - lo, 1e-9)
    gx = numpy.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    gy = numpy.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = numpy.meshgrid(gx, gy)
    grid = numpy.column_stack([xx.ravel(), yy.ravel()])
    zz = numpy.asarray(predict(grid)).astype(int).reshape(xx.shape)
    base = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
            "tab:olive", "tab:cyan"]
    colours = [base[i % len(base)] for i in range(max(k, 1))]
    cmap = ListedColormap(colours)
    fig = _figure((6.0, 5.2))
    ax = fig.add_subplot()
    ax.contourf(xx, yy, zz, levels=numpy.arange(k + 1) - 0.5, cmap=cmap, alpha=0.25)
    ax.contour(xx, yy, zz, levels=numpy.arange(k + 1) - 0.5, colors="0.3", linewidths=0.6)
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(k)]
    for c in range(k):
        sel = y == c
        if sel.any():
            ax.scatter(X[sel, 0], X[sel, 1], s=12, color=colours[c], edgecolors="black", linewidths=0.3, label=names[c])
    fx, fy = [*feature_names, "x1", "x2"][:2] if feature_names else ("x1", "x2")
    ax.set_xlabel(fx)
    ax.set_ylabel(fy)
    ax.set_title("Decision regions of the trained network")
    ax.legend(fontsize="small", loc="best", framealpha=0.8)
    return fig
