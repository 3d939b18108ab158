"""``refseg vlm probe``: what a VLM endpoint can do, and the flags to use with it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    from bench.probe.options import DEADLINE_S, NO_IMAGES

    p = sub.add_parser("vlm", help="check a VLM endpoint (refseg vlm probe)")
    vsub = p.add_subparsers(dest="vlm_action", required=True)
    probe = vsub.add_parser(
        "probe",
        help="what an OpenAI-compatible VLM endpoint can do, and the flags to use",
        description="Sends a bounded set of requests (under a minute): models listed, a text reply, "
        "an image reply, native and text tool calls, the coordinate convention (fitted on generated "
        "pictures), JSON schemas, latency, tokens per image, reasoning output. Prints "
        f"'suggested: --vlm-coords X --vlm-tool-calls Y ...'. Exit {NO_IMAGES} when the endpoint "
        "cannot take images, 6 when it rejects the key or has no such model, 5 when it cannot be "
        "reached.",
    )
    probe.add_argument("--vlm-base-url", required=True, help="the endpoint, ending in /v1")
    probe.add_argument(
        "--vlm-model",
        default=None,
        help="model to probe (default: $REFSEG_VLM_MODEL, else the first the endpoint lists)",
    )
    probe.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the report as JSON (default: not written)",
    )
    probe.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds the whole probe may take (default {DEADLINE_S:g})",
    )
    probe.set_defaults(func=cmd_probe)


def cmd_probe(args: argparse.Namespace) -> int:
    from bench.probe.options import ProbeOptions
    from bench.probe.run import run_probe

    fields = {"base_url": args.vlm_base_url, "model": args.vlm_model, "json_path": args.json}
    if args.deadline is not None:
        fields["deadline_s"] = args.deadline
    return run_probe(ProbeOptions(**fields))
