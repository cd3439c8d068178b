"""``deltanet playground``: the browser playground, served from this machine (127.0.0.1 only)."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any

from ._common import UsageError


def add_parser(sub: Any) -> None:
    from ..playground.server import DEFAULT_PORT

    p = sub.add_parser("playground", help="train an MLP live in the browser and watch backprop work",
                       description="Start the playground: a page on http://127.0.0.1:PORT/ where you choose a data set, "
                       "features and a network, train it with deltanet and watch the output, every unit, the loss "
                       "curves and the backward pass (deltas, gradient norms per layer, updates, one phase at a time). "
                       "Works offline; stop it with Ctrl-C.")
    p.add_argument("--port", type=int, default=None, metavar="N",
                   help=f"port to listen on (default {DEFAULT_PORT}, or any free port if that one is taken; 0: any free port)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a web browser")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import webbrowser

    from ..playground.server import DEFAULT_PORT, PlaygroundServer

    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in [0, 65535], got {args.port}")
    try:
        server = PlaygroundServer(DEFAULT_PORT if args.port is None else args.port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise UsageError(f"cannot listen on 127.0.0.1:{args.port or DEFAULT_PORT}: {exc.strerror or exc}") from None
        if args.port is not None:
            raise UsageError(f"port {args.port} is in use; choose another with --port N (or --port 0 for any free port)") from None
        server = PlaygroundServer(0)
    print(f"deltanet playground: {server.url}  (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("deltanet playground: stopped", file=sys.stderr)
    finally:
        server.stopping.set()
        server.loop.pause_()
        server.server_close()
    return 0
