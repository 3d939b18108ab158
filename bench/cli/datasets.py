"""``refseg bench datasets`` (the dataset adapters and their protocols), ``refseg bench schema
NAME`` (the JSON Schema of a run record) and ``refseg bench data-memory`` (what streaming a data
set saves)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tools.errors import ConfigError

DEFAULT_EXPRESSIONS = 100_000


def add_parsers(sub: Any) -> None:
    """Register ``datasets`` and ``schema`` on the ``bench`` subparsers."""
    from bench.records import SCHEMAS

    datasets = sub.add_parser(
        "datasets",
        help="list the dataset adapters (built-in and plugins), how to name them, their protocols",
        description="The data sets --dataset takes: each adapter's names and local layouts, its "
        "default split, and the protocol that scores it (metrics, headline, breakdowns).",
    )
    datasets.add_argument(
        "--json", action="store_true", default=None, help="print JSON instead of text (default: text)"
    )
    datasets.set_defaults(func=cmd_datasets)
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a run record",
        description="The JSON Schema of a run folder's records: "
        + "; ".join(f"{name}: {what}" for name, (what, _) in SCHEMAS.items()),
    )
    schema.add_argument("record", choices=list(SCHEMAS), help="which record")
    schema.set_defaults(func=cmd_schema)
    memory = sub.add_parser(
        "data-memory",
        help="peak memory of reading a large generated data set: held in memory vs streamed",
        description="Generate a RefCOCO-M-shaped parquet of N expressions and print the peak "
        "resident memory and time of reading it with every example held, and streamed as "
        "`bench run` reads it, each in a fresh process.",
    )
    memory.add_argument(
        "--expressions",
        type=int,
        default=None,
        help=f"expressions to generate (default {DEFAULT_EXPRESSIONS:,})",
    )
    memory.add_argument(
        "--keep", type=Path, default=None, help="folder to write the data set into (default: a temp folder)"
    )
    memory.set_defaults(func=cmd_data_memory)


def describe_adapters() -> list[dict[str, Any]]:
    """Every adapter as ``refseg bench datasets --json`` prints it."""
    from bench.data import adapter_infos

    out = []
    for info in adapter_infos():
        entry: dict[str, Any] = {"name": info.name, "origin": info.origin, "target": info.target}
        adapter = info.adapter
        if adapter is None:
            entry["error"] = info.error
        else:
            entry.update(
                description=adapter.description,
                aliases=list(adapter.aliases),
                naming=adapter.naming,
                default_split=adapter.default_split,
                protocol=adapter.protocol.describe(),
            )
        out.append(entry)
    return out


def _text(entry: dict[str, Any]) -> list[str]:
    head = f"{entry['name']} ({entry['origin']})"
    if "error" in entry:
        return [f"{head}: does not load: {entry['error']}"]
    proto = entry["protocol"]
    lines = [f"{head}: {entry['description']}", f"  --dataset: {entry['naming'] or entry['name']}"]
    if entry["default_split"]:
        lines.append(f"  default split: {entry['default_split']}")
    lines.append(f"  protocol {proto['name']}: {proto['description']}")
    for m in proto["metrics"]:
        star = " (headline)" if m["key"] == proto["headline"] else ""
        lines.append(f"    {m['label']} [{m['key']}]{star}: {m['description']}")
    for b in proto["breakdowns"]:
        groups = f": {', '.join(b['groups'])}" if b["groups"] else ""
        lines.append(f"    by {b['label']} [{b['key']}]{groups}")
    return lines


def cmd_datasets(args: argparse.Namespace) -> int:
    described = describe_adapters()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for i, entry in enumerate(described):
        if i:
            print()
        print("\n".join(_text(entry)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from bench.records import json_schema

    print(json.dumps(json_schema(args.record), indent=2))
    return 0


def cmd_data_memory(args: argparse.Namespace) -> int:
    from bench.benchmarks.data_memory import run_data_memory_benchmark

    expressions = DEFAULT_EXPRESSIONS if args.expressions is None else args.expressions
    if expressions < 5:
        raise ConfigError("--expressions must be at least 5 (one image holds five)")
    return run_data_memory_benchmark(expressions, args.keep)
