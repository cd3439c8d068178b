"""Training reports: PNG figures and one self-contained ``report.html``.

>>> from deltanet.report import write_report
>>> report = write_report("runs/demo", history, config_text=open("runs/demo/config.toml").read(),  # doctest: +SKIP
...                       metrics={"test accuracy": 0.98}, y_true=y_test, y_pred=pred, class_names=names)
>>> report.html_path  # doctest: +SKIP
PosixPath('runs/demo/report.html')

The figures (matplotlib, the ``[plot]`` extra): loss and accuracy per epoch
(training and validation), the learning rate, per-parameter gradient norms on a
log scale (vanishing and exploding gradients show as lines decades apart), the
fraction of dead ReLU units and of saturated tanh/sigmoid units per layer (on a
fixed sample of training rows), the update/weight ratio of each weight against
the 1e-3 rule of thumb, a confusion matrix for classifiers, predicted-against-true
and residual plots for regression and, for 2-D inputs, the decision regions.
Every figure names a layer as the console does ("hidden layer 1 (Linear)").
Without matplotlib the figures are skipped with a notice and the page still
holds the health summary, the metrics, the configuration and the history table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy

from ..io import atomic_write
from . import figures as _fig
from .figures import (
    matplotlib_available,
    plot_accuracy,
    plot_confusion,
    plot_dead_units,
    plot_decision_boundary,
    plot_grad_norms,
    plot_loss,
    plot_lr,
    plot_predicted_vs_true,
    plot_residuals,
    plot_saturation,
    plot_update_ratios,
    to_png,
)
from .html import render_html

__all__ = [
    "NO_MATPLOTLIB", "Report", "confusion_matrix", "history_records", "make_figures", "matplotlib_available",
    "plot_accuracy", "plot_confusion", "plot_dead_units", "plot_decision_boundary", "plot_grad_norms", "plot_loss",
    "plot_lr", "plot_predicted_vs_true", "plot_residuals", "plot_saturation", "plot_update_ratios", "render_html",
    "to_png", "write_report",
]

#: The notice shown (once) when the figures are skipped.
NO_MATPLOTLIB = "figures skipped: matplotlib is not installed (pip install 'deltanet[plot]'); report.html has the tables only"


@dataclass
class Report:
    """What :func:`write_report` wrote."""

    html_path: Path
    figure_paths: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> numpy.ndarray:
    """Counts ``C[i, j]`` of samples of true class i predicted as class j.

    ``y_true`` and ``y_pred`` are integer class indices of shape ``(n,)``;
    ``n_classes`` defaults to one more than the largest index seen.
    """
    t = numpy.asarray(y_true).astype(numpy.int64).ravel()
    p = numpy.asarray(y_pred).astype(numpy.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: y_true has {t.size} entries, y_pred has {p.size}")
    k = int(n_classes if n_classes is not None else max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        lo, hi = min(t.min(), p.min()), max(t.max(), p.max())
        raise ValueError(f"confusion_matrix: class indices must be in [0, {k}), got values in [{lo}, {hi}]")
    return numpy.bincount(t * k + p, minlength=k * k).reshape(k, k)


def history_records(history: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(records, extra)`` from a ``History``, its ``to_dict()`` dict, or a list of records.

    ``extra`` holds ``stop_reason``, ``stop_message``, ``best_epoch``,
    ``loss_includes_l2`` where known.
    """
    keys = ("stop_reason", "stop_message", "best_epoch", "loss_includes_l2", "task")
    if hasattr(history, "records"):
        return list(history.records), {k: getattr(history, k, None) for k in keys}
    if isinstance(history, Mapping):
        if "records" not in history:
            raise ValueError("a history dict needs a 'records' list (History.to_dict())")
        return list(history["records"]), {k: history.get(k) for k in keys}
    if isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        return list(history), {}
    raise TypeError(f"expected a History, its to_dict() or a list of epoch records, got {type(history).__name__}")


def make_figures(history: Any, *, y_true: Any = None, y_pred: Any = None, class_names: Sequence[str] | None = None,
                 predict: Callable[[numpy.ndarray], numpy.ndarray] | None = None, X: Any = None, y: Any = None,
                 feature_names: Sequence[str] | None = None, layer_labels: dict[str, str] | None = None,
                 task: str | None = None, target_names: Sequence[str] | None = None) -> list[tuple[str, str, str, bytes]]:
    """Draw every figure that applies; ``[(file stem, title, caption, png bytes), ...]``.

    Needs matplotlib. ``y_true``/``y_pred`` give the confusion matrix (class
    indices) or, when ``task`` (default: the history's) is ``"regression"``, the
    predicted-against-true and residual plots (values, one column per output);
    ``predict`` (raw inputs ``(n, 2)`` -> class indices) with ``X``, ``y`` gives
    the decision regions when the inputs have two features.
    """
    records, extra = history_records(history)
    best = extra.get("best_epoch")
    task = task or extra.get("task")
    specs: list[tuple[str, str, str, Any]] = [
        ("loss", "Loss", "Mean training loss per epoch and the validation loss at its end; the dotted line marks the best epoch.",
         lambda: plot_loss(records, best_epoch=best, includes_l2=bool(extra.get("loss_includes_l2")))),
        ("accuracy", "Accuracy", "Training accuracy on the batches as they were seen (training mode) and validation accuracy.",
         lambda: plot_accuracy(records, best_epoch=best)),
        ("learning_rate", "Learning rate", "The learning rate at the end of each epoch, as the schedule set it.",
         lambda: plot_lr(records)),
        ("gradient_norms", "Gradient norms",
         "Mean L2 norm of each parameter's gradient over each epoch, log scale; colour runs from the input layer (dark) "
         "to the output layer (light), weights solid, biases dashed. Lines spread over decades mean vanishing "
         "(small near the input) or exploding gradients.", lambda: plot_grad_norms(records, labels=layer_labels)),
        ("dead_units", "Dead ReLU units",
         "Share of each ReLU layer's units whose output is zero for every row of a fixed sample of training rows "
         "(measured in eval mode at each epoch's end): a dead unit passes no gradient back.",
         lambda: plot_dead_units(records, labels=layer_labels)),
        ("saturated_units", "Saturated units",
         "Share of each tanh/sigmoid layer's units within 0.03 of an asymptote (|h| > 0.97 for tanh) for every row of the same fixed sample: "
         "their derivative is nearly 0, so the error signal through them vanishes.",
         lambda: plot_saturation(records, labels=layer_labels)),
        ("update_ratios", "Update/weight ratio",
         "||W after - W before|| / ||W before|| of each weight matrix over each epoch's last optimizer step. The usual "
         "rule of thumb is about 1e-3 (shaded: a decade either way).",
         lambda: plot_update_ratios(records, labels=layer_labels)),
    ]
    if y_true is not None and y_pred is not None and task == "regression":
        specs.append(("predicted_vs_true", "Predicted against true",
                      "Test set: each point is a sample; on the dashed diagonal the prediction is exact.",
                      lambda: plot_predicted_vs_true(y_true, y_pred, target_names=target_names)))
        specs.append(("residuals", "Residuals",
                      "Test set: prediction minus truth against the prediction. A flat band around 0 is a good fit; "
                      "a trend or a funnel is structure the model misses.",
                      lambda: plot_residuals(y_true, y_pred, target_names=target_names)))
    elif y_true is not None and y_pred is not None:
        k = len(class_names) if class_names is not None else None
        cm = confusion_matrix(y_true, y_pred, k)
        specs.append(("confusion_matrix", "Confusion matrix", "Test set: rows are the true classes, columns the predictions.",
                      lambda: plot_confusion(cm, class_names, title="Confusion matrix, test set")))
    if predict is not None and X is not None and y is not None and numpy.asarray(X).ndim == 2 and numpy.asarray(X).shape[1] == 2:
        specs.append(("decision_boundary", "Decision regions",
                      "The class the network predicts at every point of a grid over the data, with the data points.",
                      lambda: plot_decision_boundary(predict, X, y, class_names=class_names, feature_names=feature_names)))
    out = []
    for stem, title, caption, draw in specs:
        fig = draw()
        if fig is not None:
            out.append((stem, title, caption, to_png(fig)))
    return out


def write_report(directory: str | os.PathLike[str], history: Any, *, config_text: str | None = None,
                 metrics: Mapping[str, Any] | None = None, facts: Sequence[tuple[str, Any]] = (),
                 y_true: Any = None, y_pred: Any = None, class_names: Sequence[str] | None = None,
                 predict: Callable[[numpy.ndarray], numpy.ndarray] | None = None, X: Any = None, y: Any = None,
                 feature_names: Sequence[str] | None = None, layer_labels: dict[str, str] | None = None,
                 title: str = "deltanet training report", figures: bool = True,
                 health: Sequence[str] | None = None, unit_health: Mapping[str, Mapping[str, float]] | None = None,
                 update_ratios: Mapping[str, Sequence[float]] | None = None, task: str | None = None,
                 target_names: Sequence[str] | None = None) -> Report:
    """Write the figures as PNG files and ``report.html`` (figures embedded) into ``directory``.

    Parameters
    ----------
    directory : path
        Created if missing.
    history : History, dict or list of dict
        The training history (``History``, ``History.to_dict()`` or its records).
    config_text : str, optional
        The configuration, shown verbatim.
    metrics : mapping, optional
        Final metrics for the table at the top.
    facts : sequence of (key, value)
        More details of the run (data, epochs, stop reason, time).
    y_true, y_pred, class_names
        Test labels and predictions: class indices for the confusion matrix, or
        values (``task="regression"``, default: the history's task) for the
        predicted-against-true and residual plots, labelled by ``target_names``.
    predict, X, y
        For 2-D inputs: a function from raw inputs to class indices, and the
        points to draw over the decision regions.
    figures : bool
        False writes the page without figures (no matplotlib needed).
    health : sequence of str, optional
        The backprop health summary shown at the top; by default
        :func:`~deltanet.report.health.health_summary` of the history, with
        ``unit_health`` and ``update_ratios`` if given.

    Returns
    -------
    Report
        The paths written and any notice (figures skipped).
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, extra = history_records(history)
    notices: list[str] = []
    drawn: list[tuple[str, str, str, bytes]] = []
    if figures:
        if _fig.matplotlib_available():
            drawn = make_figures(history, y_true=y_true, y_pred=y_pred, class_names=class_names, predict=predict, X=X, y=y,
                                 feature_names=feature_names, layer_labels=layer_labels, task=task,
                                 target_names=target_names)
        else:
            notices.append(NO_MATPLOTLIB)
    paths = []
    for stem, _, _, png in drawn:
        p = out_dir / f"{stem}.png"
        with atomic_write(p) as f:
            f.write(png)
        paths.append(p)
    run_facts = list(facts)
    if extra.get("stop_message") or extra.get("stop_reason"):
        run_facts.append(("stopped because", extra.get("stop_message") or extra.get("stop_reason")))
    if extra.get("best_epoch") is not None:
        run_facts.append(("best epoch", extra["best_epoch"]))
    if health is None:
        from .health import health_summary
        health = health_summary(history, layer_labels=layer_labels, unit_health=unit_health, update_ratios=update_ratios)
    banner = None
    if extra.get("stop_reason") == "diverged":
        banner = "This run DIVERGED: " + str(extra.get("stop_message") or "the loss became NaN or infinite")
    elif extra.get("stop_reason") == "interrupted":
        banner = "This run was INTERRUPTED: " + str(extra.get("stop_message") or "stopped before the last epoch")
    page = render_html(banner=banner, health=list(health), title=title, metrics=metrics, figures=[(t, c, png) for _, t, c, png in drawn],
                       config_text=config_text, records=records, notices=notices, facts=run_facts)
    html_path = out_dir / "report.html"
    with atomic_write(html_path) as f:
        f.write(page.encode("utf-8"))
    return Report(html_path=html_path, figure_paths=paths, notices=notices)
