"""``refseg cache stats|clear``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cache.store import ENV_VAR as CACHE_ENV_VAR
from cache.store import ToolCache, default_cache_dir


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cache", help="show or clear the tool-output cache")
    p.add_argument("action", choices=["stats", "clear"], help="stats: entries, size, hits; clear: empty it")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help=f"default: ${CACHE_ENV_VAR} or {default_cache_dir()}"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_cache)


def cmd_cache(args: argparse.Namespace) -> int:
    with ToolCache(args.cache_dir) as cache:
        if args.action == "clear":
            n = cache.clear()
            print(f"cleared {n} entries from {cache.directory}")
            return 0
        stats = cache.stats().as_dict()
    if args.json:
        print(json.dumps(stats))
    else:
        total = stats["hits"] + stats["misses"]
        rate = f"{stats['hits'] / total:.1%}" if total else "n/a"
        print(
            f"cache {stats['directory']}: {stats['entries']} entries, "
            f"{stats['size_bytes'] / 2**20:.1f} MiB, hits {stats['hits']} / misses {stats['misses']} "
            f"(hit rate {rate})"
        )
    return 0
