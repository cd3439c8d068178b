"""Reports: figures from a history, the self-contained HTML page, and the path without matplotlib."""

from __future__ import annotations

import base64
import re
import sys

import numpy as np
import pytest

from deltanet.report import (
    NO_MATPLOTLIB,
    confusion_matrix,
    history_records,
    plot_accuracy,
    plot_dead_units,
    plot_decision_boundary,
    plot_grad_norms,
    plot_loss,
    plot_lr,
    render_html,
    write_report,
)
from deltanet.training import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_records(n: int = 4, classification: bool = True) -> list[dict]:
    records = []
    for e in range(1, n + 1):
        records.append({
            "epoch": e, "train_loss": 2.0 / e**2, "val_loss": 2.2 / e**2 + 0.01,
            "train_accuracy": 1 - 0.5 / e if classification else None,
            "val_accuracy": 1 - 0.6 / e if classification else None,
            "lr": 0.01 * 0.5 ** (e - 1), "grad_norm": 1.0 / e, "time": 0.01,
            "layer_grad_norms": {"0.weight": 1e-4 / e, "0.bias": 1e-5 / e, "2.weight": 1e-1 / e, "2.bias": 1e-2 / e},
            "dead_fraction": {"1": 0.1 * e},
        })
    return records


# -- metrics and inputs ---------------------------------------------------------------------------

def test_confusion_matrix_counts():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix([1, 1], [1, 0]).shape == (2, 2)


@pytest.mark.parametrize("t, p, k, match", [([0, 1], [0], 2, "2 entries"), ([0, 3], [0, 1], 3, r"in \[0, 3\)"),
                                            ([0, -1], [0, 0], 2, r"in \[0, 2\)")])
def test_confusion_matrix_rejects_bad_labels(t, p, k, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(t, p, k)


def test_history_records_accepts_history_dict_and_list():
    records = make_records(3)
    h = History(records)
    h.stop_reason, h.best_epoch = "max_epochs", 3
    for source in (h, h.to_dict(), records):
        got, _ = history_records(source)
        assert [r["epoch"] for r in got] == [1, 2, 3]
    assert history_records(h)[1]["best_epoch"] == 3
    with pytest.raises(ValueError, match="records"):
        history_records({"epochs": []})
    with pytest.raises(TypeError, match="History"):
        history_records(3.0)


# -- figures (drawn, not rendered: fast) ------------------------------------------------------------

def _lines(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_loss_figure_has_both_curves_and_a_log_scale_when_the_loss_spans_decades():
    pytest.importorskip("matplotlib")
    records = make_records(5)
    fig = plot_loss(records, best_epoch=4, includes_l2=True)
    lines = _lines(fig)
    assert "training (incl. L2 penalty)" in lines and "validation" in lines
    assert list(lines["validation"].get_ydata()) == [r["val_loss"] for r in records]
    assert fig.axes[0].get_yscale() == "log"
    flat = [dict(r, train_loss=1.0, val_loss=1.1) for r in records]
    assert plot_loss(flat).axes[0].get_yscale() == "linear"


def test_figures_that_do_not_apply_are_none():
    pytest.importorskip("matplotlib")
    records = make_records(3, classification=False)
    assert plot_accuracy(records) is None
    bare = [{k: v for k, v in r.items() if k not in ("layer_grad_norms", "dead_fraction")} for r in records]
    assert plot_dead_units(bare) is None
    assert plot_grad_norms(bare, global_norm=False) is None
    assert plot_lr([{"epoch": 1}]) is None


def test_gradient_norm_figure_is_log_scale_and_ordered_by_layer():
    pytest.importorskip("matplotlib")
    records = make_records(4)
    records[0]["layer_grad_norms"]["10.weight"] = 1.0  # numeric order, not string order
    fig = plot_grad_norms(records)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["0.bias", "0.weight", "2.bias", "2.weight", "10.weight", "global norm"]
    w0 = _lines(fig)["0.weight"]
    assert w0.get_linestyle() == "-" and _lines(fig)["0.bias"].get_linestyle() == "--"
    assert np.allclose(w0.get_ydata(), [1e-4 / e for e in range(1, 5)])


def test_dead_units_are_percentages_with_labels():
    pytest.importorskip("matplotlib")
    fig = plot_dead_units(make_records(3), labels={"1": "layer 1 (ReLU)"})
    line = _lines(fig)["layer 1 (ReLU)"]
    assert np.allclose(line.get_ydata(), [10.0, 20.0, 30.0])


def test_decision_boundary_evaluates_the_model_on_a_grid_covering_the_data():
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 5, size=(50, 2))
    y = (X[:, 0] > 1).astype(int)
    calls = []

    def predict(grid):
        calls.append(grid)
        return (grid[:, 0] > 1).astype(int)

    plot_decision_boundary(predict, X, y, resolution=30)
    (grid,) = calls
    assert grid.shape == (900, 2)
    assert (grid.min(axis=0) < X.min(axis=0)).all() and (grid.max(axis=0) > X.max(axis=0)).all()
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plot_decision_boundary(predict, rng.normal(size=(5, 3)), y[:5])


# -- the page ---------------------------------------------------------------------------------------

def test_html_escapes_text_and_truncates_long_histories():
    records = make_records(100)
    page = render_html(title="t <b>", config_text='name = "<script>"', records=records, metrics={"acc": 0.5})
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "t &lt;b&gt;" in page
    assert "... 40 epochs ..." in page
    assert page.count("<tr>") == 1 + 60 + 1 + 1  # header, 60 epochs, the gap, one metric


def test_write_report_writes_pngs_and_a_self_contained_page(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    h = History(make_records(3))
    h.stop_reason, h.stop_message, h.best_epoch = "max_epochs", "reached the maximum of 3 epochs", 3
    report = write_report(tmp_path / "run", h, config_text="[train]\nepochs = 3\n", metrics={"test accuracy": "90.00%"},
                          y_true=y, y_pred=1 - y, class_names=["neg", "pos"], predict=lambda g: (g[:, 0] > 0).astype(int),
                          X=X, y=y, facts=[("data", "xor")])
    names = sorted(p.name for p in report.figure_paths)
    assert names == sorted(["loss.png", "accuracy.png", "learning_rate.png", "gradient_norms.png", "dead_units.png",
                            "confusion_matrix.png", "decision_boundary.png"])
    for p in report.figure_paths:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, p.name
    page = report.html_path.read_text()
    assert report.html_path.name == "report.html" and not report.notices
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 7
    assert all(base64.b64decode(s)[:8] == PNG_MAGIC for s in images)
    for text in ("90.00%", "reached the maximum of 3 epochs", "epochs = 3", "xor"):
        assert text in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch: opens offline


def test_write_report_without_matplotlib_still_writes_the_tables(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    report = write_report(tmp_path, make_records(2), config_text="[model]\n", metrics={"test loss": 0.25})
    assert report.figure_paths == [] and report.notices == [NO_MATPLOTLIB]
    assert not list(tmp_path.glob("*.png"))
    page = report.html_path.read_text()
    assert "matplotlib is not installed" in page and "<img" not in page
    assert "0.25" in page and "train loss" in page
