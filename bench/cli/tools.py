"""``refseg tools [--schema]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tools", help="list the registered tools (built-ins and plugins)")
    p.add_argument("--schema", action="store_true", help="print each tool's function-calling schema")
    p.set_defaults(func=cmd_tools)


def cmd_tools(args: argparse.Namespace) -> int:
    from tools.registry import ToolRegistry

    registry = ToolRegistry()
    for row in registry.describe():
        print(f"{row['name']:16} {row['role']:8} v{row['version']:4} {row['origin']:8} {row['description']}")
        if args.schema and row["role"] != "?":
            print(json.dumps(registry.declaration(row["name"]).function_schema(), indent=2))
    return 0
