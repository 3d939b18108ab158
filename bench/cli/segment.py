"""``refseg segment IMAGE [IMAGE ...] EXPRESSION``: masks, overlays, results and traces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.cli.args import add_episode_flags, episode_options
from bench.cli.progress import Progress
from bench.options import SegmentOptions
from bench.segment import IMAGE_SUFFIXES, SegmentedImage, segment_images
from tools.errors import InputError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "segment",
        help="segment the object an expression refers to, in one or more images",
        usage="%(prog)s [-h] [options] IMAGE [IMAGE ...] EXPRESSION",
        description="Segment what EXPRESSION refers to in each IMAGE (a file, or a folder of images). "
        "Writes mask.png, overlay.png, result.json and trace.jsonl into --out.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument(
        "expression", metavar="EXPRESSION", help='the referring expression, in quotes: "the black dog"'
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: ./out)")
    p.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run one-shot and write side-by-side overlays (default: on for several images)",
    )
    add_episode_flags(p)
    p.set_defaults(func=cmd_segment)


def check_expression(expression: str) -> str:
    """The expression, unless it is an image file (the arguments in the wrong order)."""
    if Path(expression).exists() and Path(expression).suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"the last argument ({expression}) is a file; put the expression last, in quotes")
    return expression


def cmd_segment(args: argparse.Namespace) -> int:
    out = {"out": args.out} if args.out is not None else {}
    options = SegmentOptions(
        images=tuple(Path(p) for p in args.images),
        expression=check_expression(args.expression),
        episode=episode_options(args),
        compare=args.compare,
        **out,
    )
    with Progress() as progress:  # a live line on a terminal; nothing when piped

        def print_result(done: SegmentedImage) -> None:
            progress.done()
            _print_result(done)

        report = segment_images(options, on_result=print_result, on_stage=progress.stage_hook)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for path, reason in report.skipped:
        print(f"refseg: skipped {path}: {reason}", file=sys.stderr)
    for done in report.fell_back:
        print(
            f"refseg: error: {done.path.name}: {done.result.fallback_reason or 'the episode fell back'}; "
            "its mask is the best candidate so far",
            file=sys.stderr,
        )
    if report.random_weights:
        print(
            "note: random weights: masks are meaningless; use this for smoke runs and timing only",
            file=sys.stderr,
        )
    return report.exit_code


def _print_result(done: SegmentedImage) -> None:
    result = done.result
    timing = ", ".join(
        f"{name} {c.seconds:.2f}s ({c.computed} computed, {c.joined} joined, {c.cache_hits} cached)"
        for name, c in sorted(result.costs.tools.items())
    )
    status = (
        f"error: {result.error}"
        if result.error
        else f"chosen #{result.chosen} of {result.n_proposals} conf={result.conf:.3f} gap={result.gap:.3f}"
    )
    print(
        f"{done.path.name} [{result.controller}] {status}; stop={result.stop_reason} "
        f"iterations={result.iterations}; {timing} -> {done.folder}"
    )
