"""The backprop health summary and the report's banner and summary table."""

from __future__ import annotations

import pytest

from deltanet.report import write_report
from deltanet.report.health import health_summary
from deltanet.training import History


def _hist(first: float, last: float, dead: float = 0.0, reason: str = "max_epochs") -> History:
    h = History([{"epoch": 1, "train_loss": 1.0, "val_loss": None, "train_accuracy": None, "val_accuracy": None, "lr": 0.1,
                  "grad_norm": 1.0, "time": 0.1, "layer_grad_norms": {"0.weight": first, "0.bias": 1.0, "2.weight": last},
                  "dead_fraction": {"1": dead}}])
    h.stop_reason = reason
    return h


def test_vanishing_gradients_are_named_with_the_ratio():
    lines = health_summary(_hist(1e-5, 1e-1))
    assert any("1.0e-04 of the last's: vanishing" in s and "ReLU" in s for s in lines)


def test_healthy_run():
    lines = health_summary(_hist(0.5, 1.0), update_ratios={"0": [1e-3], "2": [2e-3]})
    assert any("healthy" in s for s in lines)
    assert any("near the 0.001 rule of thumb" in s for s in lines)
    assert not any("dead" in s and "%" in s for s in lines)


def test_dead_units_and_saturation():
    lines = health_summary(_hist(0.5, 1.0, dead=0.75), layer_labels={"1": "hidden layer 1 (ReLU)"})
    assert "hidden layer 1 (ReLU): 75% of the units are dead (on the last batch): lower the learning rate, " \
           "use LeakyReLU or He initialization." in lines
    lines = health_summary(_hist(0.5, 1.0), unit_health={"1": {"saturated": 0.4}})
    assert any("40% of the units are saturated (on a fixed sample)" in s for s in lines)


def test_diverged_report_has_a_banner_one_table_and_plain_names(tmp_path):
    h = _hist(1e-5, 1e-1, reason="diverged")
    h.stop_message = "loss became nan at epoch 1"
    page = write_report(tmp_path, h, metrics={"test_loss": 0.5, "stop_reason": "diverged"}, facts=[("epochs", 1)],
                        figures=False).html_path.read_text()
    assert "class='banner'>This run DIVERGED: loss became nan at epoch 1" in page
    assert page.count("<h2>Summary</h2>") == 1 and "Final metrics" not in page and "<h2>Run</h2>" not in page
    assert "test loss" in page and "test_loss" not in page
    assert "Backprop health summary" in page and "vanishing" in page


def test_gradient_figure_names_layers_as_the_console_does():
    pytest.importorskip("matplotlib")
    from deltanet.report.figures import plot_grad_norms

    records = [{"epoch": e, "grad_norm": 1.0 / e, "layer_grad_norms": {"0.weight": 0.1 / e, "0.bias": 0.05 / e,
                                                                        "2.weight": 1.0 / e}} for e in (1, 2, 3)]
    labels = {"0": "hidden layer 1 (Linear)", "2": "output layer (Linear)"}
    fig = plot_grad_norms(records, labels=labels)
    shown = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(shown) == sorted(["hidden layer 1 (Linear) weight", "hidden layer 1 (Linear) bias",
                                    "output layer (Linear) weight", "global norm"])
    assert "0.weight" in plot_grad_norms(records).axes[0].get_legend_handles_labels()[1]   # no labels: tensor names
