"""``refseg view RUN [RUN_B] [--host 127.0.0.1] [--port 7860]``: browse runs in the browser.

Turns the arguments into :class:`bench.viewer.ViewerOptions` and calls :func:`bench.viewer.serve`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register ``refseg view``; its ``func`` takes the parsed namespace, returns the exit code."""
    p = subparsers.add_parser(
        "view",
        help="browse a run (or a segment output) in the browser: summary, examples, masks, traces",
        description=(
            "Serve a local web page for a bench run folder or a `refseg segment` output folder; "
            "with RUN_B, compare two runs example by example."
        ),
    )
    p.add_argument(
        "run", type=Path, metavar="RUN", help="a `refseg bench run` --out folder, or a segment output"
    )
    p.add_argument(
        "run_b",
        type=Path,
        nargs="?",
        default=None,
        metavar="RUN_B",
        help="a second run to compare (default: none, RUN alone)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--no-preload", action="store_true", help="load data sets on the first example page, not at start"
    )
    p.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from bench.viewer import ViewerOptions, serve

    serve(
        ViewerOptions(
            run=args.run, run_b=args.run_b, host=args.host, port=args.port, preload=not args.no_preload
        )
    )
    return 0
