"""Flags of how a run scales: the VLM endpoint's limits (``--vlm-max-concurrency``, ``--vlm-rpm``,
``--vlm-tpm``: :class:`agent.vlm_limits.VLMLimits`) and ``--workers N|auto``; declared in
:mod:`bench.cli.args` with the other VLM and engine flags."""

from __future__ import annotations

import argparse
from typing import Any

# (flag, VLMOptions field, argparse keywords)
LIMIT_ROWS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--vlm-max-concurrency",
        "max_concurrency",
        {
            "type": int,
            "metavar": "N",
            "help": "VLM requests in flight at once, the whole run (all Ray "
            "workers) together; waiting for it is booked as wait (default: no limit)",
        },
    ),
    (
        "--vlm-rpm",
        "rpm",
        {
            "type": int,
            "metavar": "N",
            "help": "VLM requests in any minute, the whole run together (default: no limit)",
        },
    ),
    (
        "--vlm-tpm",
        "tpm",
        {
            "type": int,
            "metavar": "N",
            "help": "VLM tokens (prompt + reply) in any minute, the whole run "
            "together; a request reserves an estimate until its reply reports its usage (default: no limit)",
        },
    ),
)


def workers_arg(text: str) -> int | str:
    """``--workers``: a number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


WORKERS_ROW: tuple[str, str, dict[str, Any]] = (
    "--workers",
    "workers",
    {
        "type": workers_arg,
        "metavar": "N|auto",
        "help": "Ray actors; auto: one per core of this machine (with --ray-address: one per "
        "free CPU of the cluster less one), the way to use every core for VLM-bound runs "
        "(default: one per free GPU, else one per free CPU less one; auto and the default are "
        "capped at --concurrency, a number may not exceed it)",
    },
)
