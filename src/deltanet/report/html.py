"""A single self-contained HTML page: figures embedded as base64 PNG, no external files or scripts."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plain_name", "render_html"]

_PLAIN = {"test_loss": "test loss", "test_accuracy": "test accuracy", "test_rmse": "test RMSE (root mean squared error)",
          "test_r2": "test R\u00b2 (explained variance)", "test_samples": "test samples", "stop_reason": "stopped because",
          "train_seconds": "training time (s)", "final_train_loss": "final training loss",
          "final_val_loss": "final validation loss", "final_train_accuracy": "final training accuracy",
          "final_val_accuracy": "final validation accuracy", "epochs": "epochs"}


def plain_name(key: str) -> str:
    """A metric key in plain words: ``test_loss`` -> ``test loss`` (also for keys already spaced)."""
    k = str(key)
    return _PLAIN.get(k, _PLAIN.get(k.replace(" ", "_"), k.replace("_", " ")))

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1000px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td.key, th.key { text-align: left; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.notice { background: #fff6d6; border: 1px solid #e8d48a; padding: 0.5em 0.8em; }
.banner { background: #fde2e1; border: 2px solid #d9534f; padding: 0.6em 0.9em; font-weight: bold; }
.muted { color: #777; font-size: 0.9em; }
"""

_HISTORY_COLUMNS = (("epoch", "epoch"), ("train_loss", "train loss"), ("val_loss", "val loss"),
                    ("train_accuracy", "train acc."), ("val_accuracy", "val acc."), ("lr", "lr"),
                    ("grad_norm", "grad norm"), ("time", "time (s)"))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td class='key'>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _history_table(records: Sequence[Mapping[str, Any]], max_rows: int = 60) -> str:
    cols = [(k, label) for k, label in _HISTORY_COLUMNS if any(r.get(k) is not None for r in records)]
    shown = list(records)
    skipped = 0
    if len(shown) > max_rows:  # the first and the last epochs of a long run
        half = max_rows // 2
        skipped = len(shown) - 2 * half
        shown = [*shown[:half], None, *shown[-half:]]
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in cols)
    rows = []
    for r in shown:
        if r is None:
            rows.append(f"<tr><td colspan='{len(cols)}' class='key muted'>... {skipped} epochs ...</td></tr>")
        else:
            rows.append("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for k, _ in cols) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_html(*, title: str, metrics: Mapping[str, Any] | None = None, figures: Sequence[tuple[str, str, bytes]] = (),
                config_text: str | None = None, records: Sequence[Mapping[str, Any]] = (),
                notices: Sequence[str] = (), facts: Sequence[tuple[str, Any]] = (), banner: str | None = None,
                health: Sequence[str] = ()) -> str:
    """The report page.

    Parameters
    ----------
    title : str
    metrics : mapping, optional
        Final metrics (``{"test accuracy": 0.98, ...}``), shown first.
    figures : sequence of (title, caption, png bytes)
        Embedded as ``<img src="data:image/png;base64,...">``.
    config_text : str, optional
        The configuration (TOML), shown verbatim.
    records : sequence of dict
        The history's per-epoch records (a table of the scalar columns).
    notices : sequence of str
        Lines shown in a highlighted box (for example: figures skipped).
    facts : sequence of (key, value)
        Details of the run (stop reason, epochs, time, ...).
    """
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             f"<title>{html.escape(title)}</title>", f"<style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for n in notices:
        parts.append(f"<p class='notice'>{html.escape(n)}</p>")
    if banner:
        parts.append(f"<p class='banner'>{html.escape(banner)}</p>")
    if health:
        parts += ["<h2>Backprop health summary</h2>", "<ul class='health'>"]
        parts += [f"<li>{html.escape(line)}</li>" for line in health]
        parts.append("</ul>")
    rows = [(plain_name(k), v) for k, v in (metrics or {}).items()]
    seen = {k for k, _ in rows}
    rows += [(plain_name(k), v) for k, v in facts if plain_name(k) not in seen]
    if rows:
        parts += ["<h2>Summary</h2>", _table(rows)]
    if figures:
        parts.append("<h2>Figures</h2>")
        for fig_title, caption, png in figures:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(fig_title)}\">"
                         f"<figcaption><b>{html.escape(fig_title)}.</b> {html.escape(caption)}</figcaption></figure>")
    if config_text:
        parts += ["<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>"]
    if records:
        parts += ["<h2>History</h2>", _history_table(records)]
    parts.append("<p class='muted'>Written by deltanet. This page is self-contained: it needs no network access.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
