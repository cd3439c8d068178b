"""MkDocs hooks of the deltanet docs site: the command-line reference, generated from the argparse parsers.

``docs/cli.md`` holds the page's introduction and the marker ``<!-- cli-reference -->``; at build time the
marker becomes the ``--help`` text of ``deltanet`` and of every subcommand, so the page is the parser's
own word and never goes stale. ``cli_reference()`` needs only deltanet (the tests call it without MkDocs).
"""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- cli-reference -->"


def _plain(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser with coloured help turned off (Python 3.14 colours help on a terminal)."""
    if hasattr(parser, "color"):
        parser.color = False
    return parser


def cli_reference() -> str:
    """Markdown: ``deltanet --help``, then one section per command with its ``--help``."""
    from deltanet.cli import COMMANDS, build_parser

    parser = build_parser()
    parts = ["## `deltanet`", "", "```text", _plain(parser).format_help().rstrip(), "```", ""]
    for command in COMMANDS:
        sub = _plain(parser.command_parsers[command])
        parts += [f"## `deltanet {command}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "cli.md":
        if MARKER not in markdown:
            raise ValueError(f"docs/cli.md: the marker {MARKER} is missing")
        return markdown.replace(MARKER, cli_reference())
    return markdown
