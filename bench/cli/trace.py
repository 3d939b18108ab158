"""``refseg trace PATH [--sample ID] [--json]``: a run's trace as a readable tree."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from tools.errors import RefsegError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trace",
        help="show a run's trace as a tree (turns, tool calls, guards, VLM calls, final choice)",
        description="Render the episodes of a trace.jsonl as a readable tree.",
    )
    p.add_argument("path", help="a trace.jsonl, or a run folder holding one")
    p.add_argument("--sample", default=None, help="show only this sample id (default: every episode)")
    p.add_argument("--json", action="store_true", help="print the selected events grouped as JSON")
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    from agent.trace_render import render_trace

    try:
        text = render_trace(args.path, sample=args.sample, as_json=args.json)
    except RefsegError as exc:
        print(f"refseg trace: {exc}", file=sys.stderr)
        return exc.exit_code
    with contextlib.suppress(BrokenPipeError):  # `refseg trace ... | head`
        print(text)
    return 0
