"""``refseg bench engines | viewer | ground``: the benchmark commands that print figures.

Each measures one thing side by side in one run (this machine is shared and noisy, so
ratios, not absolute times, are what carries over); the library functions do the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tools.errors import ConfigError


def add_parsers(sub: Any) -> None:
    """Register the benchmark subcommands on the ``bench`` subparsers."""
    engines = sub.add_parser(
        "engines",
        help="examples/s of the local and Ray engines, same answers, a killed worker",
        description="Throughput of the local engine and of Ray at each worker count on the "
        "offline toolset (no cache), the answers compared example by example, and a run "
        "with a worker SIGKILLed. Exit 1 when an answer differs or an example is lost.",
    )
    engines.add_argument("--n", type=int, default=12, help="generated scenes, ~18 examples each (default 12)")
    engines.add_argument("--concurrency", type=int, default=4, help="examples in flight (default 4)")
    engines.add_argument("--workers", default="1,2", help="Ray worker counts to measure (default 1,2)")
    engines.add_argument("--out", type=Path, default=None, help="run folders (default: a temp folder)")
    engines.set_defaults(func=cmd_engines)

    viewer = sub.add_parser(
        "viewer",
        help="time to first byte of the viewer's run page on a generated run",
        description="Serve a generated N-example run with `refseg view`'s app over a real "
        "socket and print the time to first byte of its pages (finished and live run).",
    )
    viewer.add_argument("--n", type=int, default=5000, help="examples in the generated run (default 5000)")
    viewer.add_argument("--repeat", type=int, default=20, help="requests per warm figure (default 20)")
    viewer.set_defaults(func=cmd_viewer)

    ground = sub.add_parser(
        "ground",
        help="grounded prompts vs loop and agent on scenes the proposer misses",
        description="Controllers oneshot, loop, agent and ground on generated scenes whose "
        "target the offline proposer misses, against an exact and a jittered box VLM.",
    )
    ground.add_argument("--n", type=int, default=20, help="generated scenes (default 20)")
    ground.set_defaults(func=cmd_ground)


def _worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise ConfigError(f"--workers {text!r}: give worker counts as positive integers, e.g. 1,2")
    return counts


def cmd_engines(args: argparse.Namespace) -> int:
    from bench.benchmarks.engines import run_engine_benchmark

    return run_engine_benchmark(args.n, args.concurrency, _worker_counts(args.workers), args.out)


def cmd_viewer(args: argparse.Namespace) -> int:
    from bench.benchmarks.viewer import run_viewer_benchmark

    return run_viewer_benchmark(args.n, args.repeat)


def cmd_ground(args: argparse.Namespace) -> int:
    from bench.benchmarks.ground import run_ground_table

    return run_ground_table(args.n)
