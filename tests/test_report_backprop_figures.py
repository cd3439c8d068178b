"""What the report shows of backprop: units measured on a fixed sample, saturation, update/weight ratios,
readable legends, regression plots, layer names, and the page's own writing."""

from __future__ import annotations

import numpy as np
import pytest

import deltanet as dn
from deltanet.cli.train import layer_labels
from deltanet.report import make_figures, write_report
from deltanet.report.figures import (
    LEGEND_MAX,
    plot_grad_norms,
    plot_predicted_vs_true,
    plot_residuals,
    plot_saturation,
    plot_update_ratios,
)
from deltanet.report.health import health_summary
from deltanet.training import History, unit_health
from deltanet.training.metrics import MONITOR_ROWS


def _data(n: int = 300, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


# -- what the Trainer records ------------------------------------------------------------------------

def test_dead_units_are_measured_on_the_same_fixed_rows_every_epoch():
    X, y = _data()
    net = dn.mlp([4, 16, 2], rng=0)
    h = dn.Trainer(net, epochs=2, batch_size=50, seed=0).fit(X, y)
    expected = unit_health(net, X[:MONITOR_ROWS])       # the last epoch's weights, the first MONITOR_ROWS rows
    assert h.last["dead_fraction"] == {k: pytest.approx(v["dead"]) for k, v in expected.items()}
    assert h.last["saturated_fraction"] == {}


def test_saturated_tanh_units_are_recorded_per_layer():
    X, y = _data()
    net = dn.mlp([4, 8, 8, 2], activation="tanh", rng=0)
    net[0].bias.value[:4] = 50.0                         # four of the first layer's units pinned at +1 on every row
    h = dn.Trainer(net, optimizer="sgd", lr=1e-6, epochs=1, seed=0).fit(X, y)
    sat = h.last["saturated_fraction"]
    assert set(sat) == {"1", "3"} and h.last["dead_fraction"] == {}
    assert sat["1"] == pytest.approx(0.5)


def test_update_ratio_is_the_relative_size_of_the_last_step():
    X, y = _data(64)
    net = dn.mlp([4, 6, 2], rng=0)
    w0 = {p.name: p.value.copy() for p in net.parameters()}
    h = dn.Trainer(net, optimizer="sgd", lr=0.1, batch_size=64, epochs=1, seed=0, shuffle=False).fit(X, y)
    ratios = h.last["update_ratio"]
    assert set(ratios) == {"0.weight", "2.weight"}      # weight matrices only
    for p in net.parameters():
        if p.name in ratios:                             # one batch: the epoch's last step is its only one
            want = np.linalg.norm(p.value - w0[p.name]) / np.linalg.norm(w0[p.name])
            assert ratios[p.name] == pytest.approx(want, rel=1e-10)
    assert dn.Trainer(dn.mlp([4, 6, 2], rng=0), epochs=1, record_layers=False).fit(X, y).last["update_ratio"] == {}


def test_history_csv_has_a_column_per_layer_for_the_new_diagnostics():
    X, y = _data(64)
    text = dn.Trainer(dn.mlp([4, 6, 2], activation="tanh", rng=0), epochs=1).fit(X, y).to_csv()
    header = text.splitlines()[0]
    assert "saturated_fraction[1]" in header and "update_ratio[0.weight]" in header


# -- health verdicts ----------------------------------------------------------------------------------

def _ratio_history(ratios: list[float]) -> History:
    return History([{"epoch": i + 1, "train_loss": 1.0, "layer_grad_norms": {}, "dead_fraction": {},
                     "update_ratio": {"0.weight": r}} for i, r in enumerate(ratios)])


def test_update_ratio_verdict_uses_the_median_over_epochs_not_an_annealed_last_step():
    lines = health_summary(_ratio_history([2e-3, 1e-3, 8e-4, 1e-6]))   # a schedule annealed to ~0 at the end
    assert any("near the 0.001 rule of thumb" in line for line in lines)
    lines = health_summary(_ratio_history([1e-6, 2e-6, 1e-6]))
    assert any("too small in" in line for line in lines)


# -- figures ------------------------------------------------------------------------------------------

def _records(n_epochs: int = 4, n_layers: int = 3) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "val_loss": None, "lr": 0.1, "grad_norm": 1.0, "time": 0.1,
             "layer_grad_norms": {f"{2 * i}.{t}": 10.0 ** -i / e for i in range(n_layers) for t in ("weight", "bias")},
             "dead_fraction": {str(2 * i + 1): 1.0 for i in range(n_layers)},        # every layer 100% dead
             "saturated_fraction": {str(2 * i + 1): 0.25 * i for i in range(n_layers)},
             "update_ratio": {f"{2 * i}.weight": 1e-3 * e for i in range(n_layers)}} for e in range(1, n_epochs + 1)]


def _labelled(ax) -> list:
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_coinciding_lines_stay_apart_in_style():
    pytest.importorskip("matplotlib")
    from deltanet.report import plot_dead_units

    ax = plot_dead_units(_records(), labels={"1": "hidden layer 1 (ReLU)"}).axes[0]
    lines = _labelled(ax)
    assert len(lines) == 3 and lines[0].get_label() == "hidden layer 1 (ReLU)"
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(styles) == 3                                  # all at 100%: told apart by dash and marker
    assert len({line.get_markersize() for line in lines}) == 3
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1   # the legend is right of the axes


def test_saturation_figure_plots_percentages_per_layer():
    pytest.importorskip("matplotlib")
    ax = plot_saturation(_records(), labels={"3": "hidden layer 2 (Tanh)"}).axes[0]
    line = next(line for line in ax.get_lines() if line.get_label() == "hidden layer 2 (Tanh)")
    assert np.allclose(line.get_ydata(), 25.0)
    assert plot_saturation([{"epoch": 1, "saturated_fraction": {}}]) is None


def test_update_ratio_figure_marks_the_rule_of_thumb():
    pytest.importorskip("matplotlib")
    ax = plot_update_ratios(_records(), labels={"0": "hidden layer 1 (Linear)"}).axes[0]
    assert ax.get_yscale() == "log"
    line = next(line for line in ax.get_lines() if line.get_label() == "hidden layer 1 (Linear) weight")
    assert np.allclose(line.get_ydata(), [1e-3, 2e-3, 3e-3, 4e-3])
    rule = next(line for line in ax.get_lines() if "rule of thumb" in line.get_label())
    assert np.allclose(rule.get_ydata(), 1e-3)


def test_a_deep_model_gets_a_capped_legend_and_a_colour_bar():
    pytest.importorskip("matplotlib")
    fig = plot_grad_norms(_records(n_layers=22))             # 44 parameters: a Transformer's worth
    ax = fig.axes[0]
    entries = ax.get_legend().get_texts() if ax.get_legend() else []
    assert len(entries) <= LEGEND_MAX
    assert len(fig.axes) == 2                                # the colour bar from input to output layer
    fig = plot_grad_norms(_records(n_layers=8))              # 16 parameters: only the 8 weights are named
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(names) == 9 and all(n.endswith("weight") for n in names[:-1]) and names[-1] == "global norm"
    ax = plot_update_ratios(_records(n_layers=22)).axes[0]
    assert ax.get_legend().get_title().get_text() == f"first {LEGEND_MAX} of 22 lines"


def test_regression_gets_predicted_against_true_and_residuals_instead_of_a_confusion_matrix():
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    t = rng.normal(size=50)
    p = t + 0.1 * rng.normal(size=50)
    stems = [s for s, *_ in make_figures(_records(), y_true=t, y_pred=p, task="regression")]
    assert "predicted_vs_true" in stems and "residuals" in stems and "confusion_matrix" not in stems
    r2 = 1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()
    ax = plot_predicted_vs_true(t, p, target_names=["price"]).axes[0]
    assert ax.collections[0].get_label() == f"price (R\u00b2 {r2:.3f})"
    assert np.allclose(ax.collections[0].get_offsets(), np.column_stack([t, p]))
    ax = plot_residuals(t, p).axes[0]
    assert np.allclose(ax.collections[0].get_offsets()[:, 1], p - t)
    with pytest.raises(ValueError, match="one prediction per target"):
        plot_residuals(t, p[:-1])


# -- names and the page -------------------------------------------------------------------------------

def test_positional_embeddings_and_norms_do_not_count_as_hidden_layers():
    net = dn.transformer_classifier(3, 2, 5, d_model=8, n_heads=2, n_blocks=1, rng=0)
    labels = layer_labels(net)
    kinds = {path: label for path, label in labels.items() if "." not in path}
    assert kinds["0"] == "hidden layer 1 (Linear)"
    assert kinds["1"] == "hidden layer 1 (PositionalEmbedding)"
    assert kinds["2"] == "hidden layer 2 (TransformerEncoderBlock)"
    assert list(kinds.values())[-1] == "output layer (Linear)"


def test_write_report_leaves_no_temporary_files(tmp_path):
    write_report(tmp_path, _records(), figures=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    (tmp_path / "report.html").unlink()
    (tmp_path / "report.html").mkdir()                       # cannot be written: a clear error, no .tmp left
    with pytest.raises(OSError, match="directory"):
        write_report(tmp_path, _records(), figures=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
