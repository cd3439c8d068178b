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
    "LEGEND_MAX", "line_style", "matplotlib_available", "plot_accuracy", "plot_confusion", "plot_dead_units",
    "plot_decision_boundary", "plot_grad_norms", "plot_loss", "plot_lr", "plot_predicted_vs_true", "plot_residuals",
    "plot_saturation", "plot_tuning", "plot_update_ratios", "to_png",
]

_SIZE = (6.4, 4.0)
_DPI = 100
#: At most this many legend entries per figure; past it a figure labels fewer lines or uses a colour bar.
LEGEND_MAX = 12
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "x", "P", "*")


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


def line_style(i: int, n_points: int) -> dict[str, Any]:
    """Line ``i``'s style: its own dash pattern and marker, markers shrinking with ``i``.

    Lines that coincide (three layers all at 100% dead units) stay visible as
    nested markers of different shapes instead of hiding one another.
    """
    style: dict[str, Any] = {"linestyle": _LINESTYLES[i % len(_LINESTYLES)], "linewidth": 1.5}
    if n_points <= 60:
        style.update(marker=_MARKERS[i % len(_MARKERS)], markersize=max(3.0, 8.0 - 0.8 * i), fillstyle="none",
                     markeredgewidth=1.2)
    return style


def _legend_outside(ax: Any, n_lines: int | None = None, **kwargs: Any) -> None:
    """A legend to the right of the axes, where it can cover neither the lines nor the title.

    With ``n_lines`` over :data:`LEGEND_MAX` the legend's title says how many of the lines it names.
    """
    if n_lines is not None and n_lines > LEGEND_MAX:
        kwargs.setdefault("title", f"first {LEGEND_MAX} of {n_lines} lines")
        kwargs.setdefault("title_fontsize", "small")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small", frameon=False, **kwargs)


def _layer_colour_bar(fig: Any, ax: Any, cmap: Any, names: Sequence[str]) -> None:
    """A colour bar from the first (input) layer to the last, in place of a legend too long to read."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(0, 0.9), cmap=cmap)
    bar = fig.colorbar(sm, ax=ax, pad=0.02)
    bar.set_ticks([0, 0.9], labels=[f"{names[0]}\n(input side)", f"{names[-1]}\n(output side)"])
    bar.ax.tick_params(labelsize="small")


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
    weights = [n for n in names if n.endswith("weight")]
    # a readable legend: every line, else the weights only, else a colour bar over the layers
    labelled = set(names) if len(names) < LEGEND_MAX else set(weights) if len(weights) < LEGEND_MAX else set()
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
                **(_marks(records, 2.5) if is_weight else {}),
                label=_param_label(name, labels) if name in labelled else "_nolegend_")
    if global_norm:
        gx, gy = _series(records, "grad_norm")
        if gy and all(v > 0 for v in gy):
            ax.plot(gx, gy, color="black", linewidth=1.0, linestyle=":", label="global norm")
            plotted = True
    if not plotted:
        return None
    ax.set_yscale("log")
    ax.set_ylabel("mean gradient L2 norm (log scale)")
    ax.set_title("Gradient norm per parameter")
    _epoch_axis(ax, records)
    if not labelled:
        _layer_colour_bar(fig, ax, cmap, [(labels or {}).get(layers[0], layers[0]), (labels or {}).get(layers[-1], layers[-1])])
    if ax.get_legend_handles_labels()[0]:
        title = None if labelled == set(names) else ("weights (biases dashed, unlabelled)" if labelled else None)
        _legend_outside(ax, title=title, title_fontsize="small")
    return fig


def _param_label(name: str, labels: dict[str, str] | None) -> str:
    """``"0.weight"`` -> ``"hidden layer 1 (Linear) weight"`` when ``labels`` names module ``"0"``."""
    layer, _, tensor = name.rpartition(".")
    if labels and layer in labels:
        return f"{labels[layer]} {tensor}"
    return name


def _layer_fractions(records: Sequence[dict[str, Any]], key: str, labels: dict[str, str] | None, *,
                     ylabel: str, title: str) -> Any:
    """One line per module of the per-layer fractions under ``key`` (in %), each line its own style."""
    paths = list(dict.fromkeys(p for r in records for p in (r.get(key) or {})))
    if not paths:
        return None
    paths.sort(key=_layer_order)
    fig = _figure((7.6, 4.0))
    ax = fig.add_subplot()
    for i, path in enumerate(paths):
        xs, ys = [], []
        for r in records:
            v = (r.get(key) or {}).get(path)
            if isinstance(v, (int, float)) and math.isfinite(v):
                xs.append(int(r["epoch"]))
                ys.append(100.0 * float(v))
        label = (labels or {}).get(path, f"layer {path}") if i < LEGEND_MAX else "_nolegend_"
        ax.plot(xs, ys, **line_style(i, len(records)), label=label, zorder=3 + len(paths) - i)
    ax.set_ylim(-3, 103)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _epoch_axis(ax, records)
    _legend_outside(ax, len(paths))
    return fig


def plot_dead_units(records: Sequence[dict[str, Any]], *, labels: dict[str, str] | None = None) -> Any:
    """Percentage of dead ReLU/LeakyReLU units per layer and epoch (``dead_fraction``: no positive output on any
    row of the fixed monitoring sample); None without ReLU layers."""
    return _layer_fractions(records, "dead_fraction", labels, ylabel="dead units (%)",
                            title="Dead ReLU units per layer (zero for every row of a fixed sample)")


def plot_saturation(records: Sequence[dict[str, Any]], *, labels: dict[str, str] | None = None) -> Any:
    """Percentage of saturated tanh/sigmoid units per layer and epoch (``saturated_fraction``: near an asymptote
    for every row of the fixed sample, so their local gradient is almost 0); None without such layers."""
    return _layer_fractions(records, "saturated_fraction", labels, ylabel="saturated units (%)",
                            title="Saturated tanh/sigmoid units per layer (|h| near its limit on every row)")


def plot_update_ratios(records: Sequence[dict[str, Any]], *, labels: dict[str, str] | None = None,
                       rule: float = 1e-3) -> Any:
    """The update/weight ratio ``||dW|| / ||W||`` of each weight at each epoch's last step, log scale.

    The band marks a decade either side of the ``rule`` of thumb (1e-3): far below it a layer barely learns,
    far above it the steps overshoot.
    """
    names = list(dict.fromkeys(n for r in records for n in (r.get("update_ratio") or {})))
    if not names:
        return None
    names.sort(key=_layer_order)
    fig = _figure((7.6, 4.0))
    ax = fig.add_subplot()
    plotted = False
    for i, name in enumerate(names):
        xs, ys = [], []
        for r in records:
            v = (r.get("update_ratio") or {}).get(name)
            if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
                xs.append(int(r["epoch"]))
                ys.append(float(v))
        if ys:
            plotted = True
            label = _param_label(name, labels) if i < LEGEND_MAX else "_nolegend_"
            ax.plot(xs, ys, **line_style(i, len(records)), label=label)
    if not plotted:
        return None
    ax.axhspan(rule / 10, rule * 10, color="tab:green", alpha=0.08, label=f"{rule / 10:g} to {rule * 10:g}")
    ax.axhline(rule, color="tab:green", linewidth=1, linestyle=":", label=f"rule of thumb {rule:g}")
    ax.set_yscale("log")
    ax.set_ylabel("||update|| / ||weight|| (log scale)")
    ax.set_title("Update/weight ratio at each epoch's last step")
    _epoch_axis(ax, records)
    _legend_outside(ax, len(names))
    return fig


def _regression_columns(y_true: Any, y_pred: Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    t = numpy.asarray(y_true, dtype=float)
    p = numpy.asarray(y_pred, dtype=float)
    t = t.reshape(len(t), -1)
    p = p.reshape(len(p), -1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape}, y_pred {p.shape}: one prediction per target value is needed")
    return t, p


def _output_names(k: int, target_names: Sequence[str] | None) -> list[str]:
    names = [str(n) for n in target_names] if target_names is not None else []
    return names[:k] + [f"output {j + 1}" for j in range(len(names), k)]


def plot_predicted_vs_true(y_true: Any, y_pred: Any, *, target_names: Sequence[str] | None = None,
                           title: str = "Predicted against true, test set") -> Any:
    """A regression's predictions against the true values, with the line ``predicted = true``.

    Points on the diagonal are exact; R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2 is in the legend
    (per output, up to :data:`LEGEND_MAX` outputs).
    """
    t, p = _regression_columns(y_true, y_pred)
    if not len(t):
        return None
    fig = _figure((5.8, 5.2))
    ax = fig.add_subplot()
    names = _output_names(t.shape[1], target_names)
    for j in range(min(t.shape[1], LEGEND_MAX)):
        ss = float(((t[:, j] - t[:, j].mean()) ** 2).sum())
        r2 = 1.0 - float(((t[:, j] - p[:, j]) ** 2).sum()) / ss if ss > 0 else float("nan")
        ax.scatter(t[:, j], p[:, j], s=10, alpha=0.6, marker=_MARKERS[j % len(_MARKERS)],
                   label=f"{names[j]} (R\u00b2 {r2:.3f})")
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="0.3", linewidth=1, linestyle="--", label="predicted = true")
    ax.set_xlabel("true value")
    ax.set_ylabel("predicted value")
    ax.set_title(title + f" ({len(t)} samples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    return fig


def plot_residuals(y_true: Any, y_pred: Any, *, target_names: Sequence[str] | None = None,
                   title: str = "Residuals, test set") -> Any:
    """Residuals ``y_hat - y`` against the prediction: a band around 0 with no trend is a good fit;
    a funnel or a curve shows what the model misses. RMSE per output in the legend."""
    t, p = _regression_columns(y_true, y_pred)
    if not len(t):
        return None
    fig = _figure((6.4, 4.0))
    ax = fig.add_subplot()
    names = _output_names(t.shape[1], target_names)
    for j in range(min(t.shape[1], LEGEND_MAX)):
        r = p[:, j] - t[:, j]
        ax.scatter(p[:, j], r, s=10, alpha=0.6, marker=_MARKERS[j % len(_MARKERS)],
                   label=f"{names[j]} (RMSE {float(numpy.sqrt(numpy.mean(r ** 2))):.3g})")
    ax.axhline(0.0, color="0.3", linewidth=1, linestyle="--")
    ax.set_xlabel("predicted value")
    ax.set_ylabel("residual (predicted - true)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
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


def plot_tuning(results: Sequence[dict[str, Any]]) -> Any:
    """A hyper-parameter search by successive halving: each trial's validation loss over its rungs' epoch
    budgets (left; the trials that went on are the lines), and every first-rung trial's loss against its
    learning rate, marked by depth (right). ``results``: the rows of :func:`deltanet.tuning.successive_halving`."""
    fig = _figure((11.0, 4.2))
    ax, bx = fig.subplots(1, 2)
    finite = [r for r in results if isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"])]
    by_trial: dict[int, list[dict[str, Any]]] = {}
    for r in finite:
        by_trial.setdefault(int(r["id"]), []).append(r)
    last = max((int(r["rung"]) for r in results), default=1)
    for rows in by_trial.values():
        rows = sorted(rows, key=lambda r: r["rung"])
        xs, ys = [r["epochs"] for r in rows], [r["val_loss"] for r in rows]
        reached = int(rows[-1]["rung"]) == last
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.6 if reached else 0.8,
                color="C3" if reached else "0.6", alpha=1.0 if reached else 0.6, zorder=3 if reached else 2)
    ax.set_xscale("log")
    budgets = sorted({int(r["epochs"]) for r in results})
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("epochs (budget of the rung)")
    ax.set_ylabel("validation loss")
    ax.set_title("successive halving: the trials of the last rung in red")
    ax.grid(True, alpha=0.3)
    first = [r for r in finite if int(r["rung"]) == 1]
    for i, depth in enumerate(sorted({int(r["depth"]) for r in first})):
        rows = [r for r in first if int(r["depth"]) == depth]
        bx.scatter([r["lr"] for r in rows], [r["val_loss"] for r in rows], s=22, marker=_MARKERS[i % len(_MARKERS)],
                   label=f"{depth} hidden layer{'s' if depth != 1 else ''}")
    bx.set_xscale("log")
    bx.set_xlabel("learning rate")
    bx.set_ylabel("validation loss after the first rung")
    bx.set_title("first rung: loss against learning rate")
    bx.grid(True, alpha=0.3)
    if first:
        _legend_outside(bx)
    return fig
