"""``refseg bench scale``: examples/s against a fixed-latency VLM at each concurrency (and engine),
the speed-up, efficiency, event-loop lag and peak RSS of every cell: how to size ``--concurrency``
and workers. Defaults live in :class:`bench.benchmarks.scale_options.ScaleOptions`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bench.cli.scale_flags import workers_arg
from tools.errors import ConfigError

# What a flag left out means, where its option's default is None.
_UNSET = {
    "workers": "the engine's, as bench run --workers",
    "vlm_max_concurrency": "no limit",
    "out": "a temporary folder, removed at the end",
    "json_path": "no JSON",
}


def _default(name: str) -> Any:
    from bench.benchmarks.scale_options import ScaleOptions

    value = next(f for f in dataclasses.fields(ScaleOptions) if f.name == name).default
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def add_parser(sub: Any) -> None:
    """Register ``bench scale`` on the ``bench`` subparsers."""
    scale = sub.add_parser(
        "scale",
        help="examples/s, speed-up and event-loop lag at each --concurrency against a fixed-latency VLM",
        description="Runs `refseg bench run` (generated scenes, offline toolset, guard off) for each "
        "controller and concurrency against a built-in endpoint that answers after a fixed latency, "
        "and prints examples/s, speed-up over the smallest concurrency, efficiency, event-loop lag, "
        "CPU per example and peak RSS per cell. Exit 1 when an example failed.",
    )
    rows: list[tuple[str, str, dict[str, Any]]] = [
        (
            "--latency",
            "latency_s",
            {"type": float, "metavar": "SECONDS", "help": "seconds the VLM takes per request"},
        ),
        (
            "--controllers",
            "controllers",
            {"metavar": "A,B", "help": "agent, ground, loop (VLM refiner, 3 rounds)"},
        ),
        ("--concurrency", "concurrency", {"metavar": "C,C", "help": "--concurrency levels, e.g. 1,4,16,64"}),
        ("--engine", "engine", {"choices": ["local", "ray"], "help": "engine of every cell"}),
        (
            "--workers",
            "workers",
            {
                "type": workers_arg,
                "metavar": "N|auto",
                "help": "Ray workers (--engine ray; capped at each cell's concurrency)",
            },
        ),
        (
            "--waves",
            "waves",
            {"type": int, "help": "examples per cell: waves x c (more waves: less of the run's tail)"},
        ),
        ("--min-examples", "min_examples", {"type": int, "help": "the fewest examples of a cell"}),
        (
            "--vlm-max-concurrency",
            "vlm_max_concurrency",
            {"type": int, "metavar": "N", "help": "the VLM limit of every cell"},
        ),
        ("--out", "out", {"type": Path, "metavar": "DIR", "help": "keep the run folders here"}),
        ("--json", "json_path", {"type": Path, "metavar": "PATH", "help": "also write the cells as JSON"}),
    ]
    for flag, name, kwargs in rows:
        shown = _default(name)
        kwargs["help"] += f" (default: {_UNSET.get(name, 'none') if shown is None else shown})"
        scale.add_argument(flag, dest=name, default=None, **kwargs)
    scale.set_defaults(func=cmd_scale)


def _levels(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r}: give whole numbers separated by commas, e.g. 1,4,16,64"
        ) from None


def cmd_scale(args: argparse.Namespace) -> int:
    from bench.benchmarks.scale import run_scale_table
    from bench.benchmarks.scale_options import ScaleOptions

    given = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(ScaleOptions)}}
    given = {k: v for k, v in given.items() if v is not None}
    if "controllers" in given:
        given["controllers"] = tuple(c.strip() for c in given["controllers"].split(",") if c.strip())
    if "concurrency" in given:
        given["concurrency"] = _levels(given["concurrency"], "--concurrency")
    return run_scale_table(ScaleOptions(**given))
