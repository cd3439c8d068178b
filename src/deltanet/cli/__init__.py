"""The ``deltanet`` command: train, tune, evaluate, predict, summary, gradcheck, datasets, export, playground.

``main(argv)`` runs one command and returns its exit code, printing one line
``deltanet: error: ...`` on stderr (no traceback) for every failure:

=====  ==========================================================================
0      success
1      a gradient check failed; or the run could not finish for want of
       resources: disk full (ENOSPC) or another write error while writing the run
       directory (no temporary file is left behind), out of memory
2      a mistake of the user's: a missing file, an unknown option, a bad value,
       a typo'd config key, a run that cannot learn (one-class target, ...)
3      ``train``: training diverged (NaN or infinite loss or gradients); the run
       directory is written with the last good weights, the message says what to
       change (``--lr``, ``--clip``)
130    interrupted by Ctrl-C (SIGINT). During ``train`` the run stops after the
       current batch and the run directory is still written (model, history,
       report); ``deltanet train --resume RUN_DIR`` continues it from the last
       checkpoint, as if it had not been interrupted
143    ``train`` terminated by SIGTERM: handled like Ctrl-C
=====  ==========================================================================

>>> from deltanet.cli import main
>>> main(["train", "--data", "spiral", "--epochs", "3", "--quiet"])   # doctest: +SKIP
0
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import __version__
from ._common import PROG, Parser, UsageError

__all__ = ["build_parser", "main"]

COMMANDS = ("train", "tune", "evaluate", "predict", "summary", "gradcheck", "datasets", "export", "playground")


def build_parser() -> Parser:
    """The argument parser of every command."""
    from . import datasets, export, network, playground, predict, train, tune

    parser = Parser(prog=PROG, description="Multi-layer perceptrons trained by explicit, layer-wise backpropagation, on NumPy.",
                    epilog="Run 'deltanet COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_parser(sub)
    tune.add_parser(sub)
    predict.add_parsers(sub)
    network.add_parsers(sub)
    datasets.add_parser(sub)
    export.add_parser(sub)
    playground.add_parser(sub)
    parser.command_parsers = dict(sub.choices)
    return parser


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``deltanet`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        try:
            args, extras = parser.parse_known_args(list(argv) if argv is not None else None)
            if extras:  # let the command's own parser report them, with its options to suggest from
                parser.command_parsers.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extras)}")
        except SystemExit as exc:  # --help and --version exit 0
            return int(exc.code or 0) if not isinstance(exc.code, str) else 2
        if args.command is None:
            raise UsageError(f"missing command; choose one of: {', '.join(COMMANDS)} (see '{PROG} --help')")
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory; choose a smaller network (--hidden), --batch-size or dataset", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deltanet predict ... | head`: the reader went away
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
