"""The ``refseg`` command line: segment, bench, trace, weights, cache, tools.

This subpackage is the only code that reads argparse. Each command module declares its
parser, turns the parsed namespace into typed options once, and calls a library function
(``segment_images``, ``run_bench``, ``run_suite``, ``run_scorecard``, ...).

Every command returns an exit code. Errors the project raises on purpose
(:class:`tools.errors.RefsegError`) and file-system errors (``OSError``: a bad ``--out``, no
permission, a full disk) are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tools.errors import RefsegError


def build_parser() -> argparse.ArgumentParser:
    """The ``refseg`` parser with every command."""
    from bench.cli import bench, cache, segment, tools, trace, view, weights

    parser = argparse.ArgumentParser(
        prog="refseg",
        description="Closed-loop referring segmentation: SAM proposes, CLIP ranks, a VLM refines.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (segment, bench, trace, weights, cache, tools, view):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``refseg`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except (RefsegError, OSError) as exc:  # OSError: --out names a file, no permission, disk full
        from agent.tracing import redact_text

        print(f"refseg: error: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, RefsegError) else 2
    except KeyboardInterrupt:
        print(
            "refseg: interrupted (a bench run resumes when started again with the same --out)",
            file=sys.stderr,
        )
        return 130
    return code
