"""The ``refseg`` command line: segment, bench, trace, weights, cache, tools.

Every command returns an exit code. Errors the project raises on purpose
(:class:`tools.errors.RefsegError`) and file-system errors (``OSError``: a bad ``--out``, no
permission, a full disk) are printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cache.store import ENV_VAR as CACHE_ENV_VAR
from cache.store import ToolCache, default_cache_dir
from tools.errors import RefsegError


def _cache_parser(sub: Any) -> None:
    p = sub.add_parser("cache", help="show or clear the tool-output cache")
    p.add_argument("action", choices=["stats", "clear"])
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


def _weights_parser(sub: Any) -> None:
    p = sub.add_parser("weights", help="download or list model weights")
    wsub = p.add_subparsers(dest="weights_action", required=True)
    d = wsub.add_parser("download", help="fetch official weights with sha256 verification")
    d.add_argument("family", choices=["sam", "clip"])
    d.add_argument("--model", default=None, help="sam: vit_b|vit_l|vit_h (default vit_b); clip: ViT-B-16")
    d.add_argument("--pretrained", default="openai", help="clip: open_clip pretrained tag")
    d.add_argument("--dest", type=Path, default=None, help="sam: folder (default ./checkpoints)")
    d.set_defaults(func=cmd_weights_download)
    ls = wsub.add_parser("list", help="known checkpoints and whether they are present")
    ls.add_argument("--dest", type=Path, default=None)
    ls.set_defaults(func=cmd_weights_list)


def cmd_weights_download(args: argparse.Namespace) -> int:
    from tools.base import default_checkpoint_dir

    if args.family == "sam":
        from checkpoints.download import download_checkpoint

        path = download_checkpoint(args.model or "vit_b", args.dest or default_checkpoint_dir())
        print(f"SAM {args.model or 'vit_b'}: {path} (sha256 verified)")
    else:
        from tools.clip_loading import prepare_clip

        where = prepare_clip(args.model or "ViT-B-16", args.pretrained)
        print(f"CLIP {args.model or 'ViT-B-16'} {args.pretrained}: {where}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from checkpoints.registry import KNOWN_CHECKPOINTS
    from tools.base import default_checkpoint_dir

    dest = args.dest or default_checkpoint_dir()
    for key, ck in KNOWN_CHECKPOINTS.items():
        present = "present" if (dest / ck.filename).exists() else "missing"
        print(f"{key:8} {ck.filename:28} {present:8} {ck.url}")
    return 0


def _tools_parser(sub: Any) -> None:
    p = sub.add_parser("tools", help="list the registered tools (built-ins and plugins)")
    p.add_argument("--schema", action="store_true", help="print each tool's function-calling schema")
    p.set_defaults(func=cmd_tools)


def cmd_tools(args: argparse.Namespace) -> int:
    from tools.registry import ToolRegistry

    registry = ToolRegistry()
    for row in registry.describe():
        print(f"{row['name']:16} {row['role']:8} v{row['version']:4} {row['origin']:8} {row['description']}")
        if args.schema and row["role"] != "?":
            print(json.dumps(registry.tool_class(row["name"]).function_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from agent.trace_view import add_trace_parser
    from bench.bench_cli import add_bench_parsers
    from bench.chaos import add_chaos_parser
    from bench.cli_view import add_view_parser
    from bench.segment_cmd import add_segment_parser

    parser = argparse.ArgumentParser(
        prog="refseg",
        description="Closed-loop referring segmentation: SAM proposes, CLIP ranks, a VLM refines.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_parser(sub)
    add_bench_parsers(sub)
    add_chaos_parser(sub)
    add_trace_parser(sub)
    _weights_parser(sub)
    _cache_parser(sub)
    _tools_parser(sub)
    add_view_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
