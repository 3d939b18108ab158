"""``refseg tools [NAME] [--schema]``: the registered tools, or one tool's arguments and options."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tools",
        help="list the registered tools (built-ins and plugins), or one tool's arguments and options",
        description="Without NAME: every tool with its role, version and origin. With NAME: its "
        "arguments (what a controller or the VLM passes) and its options (--tool-option "
        "NAME.KEY=VALUE), each with its type, default and allowed values.",
    )
    p.add_argument("name", nargs="?", default=None, help="a tool's name (default: list every tool)")
    p.add_argument("--schema", action="store_true", help="print each tool's function-calling schema")
    p.set_defaults(func=cmd_tools)


def cmd_tools(args: argparse.Namespace) -> int:
    from tools.registry import ToolRegistry

    registry = ToolRegistry()
    if args.name is not None:
        registry.spec(args.name)  # an unknown name: one line listing the known ones
        print(tool_text(registry, args.name))
        if args.schema:
            print(json.dumps(registry.declaration(args.name).function_schema(), indent=2))
        return 0
    for row in registry.describe():
        print(f"{row['name']:16} {row['role']:8} v{row['version']:4} {row['origin']:8} {row['description']}")
        if args.schema and row["role"] != "?":
            print(json.dumps(registry.declaration(row["name"]).function_schema(), indent=2))
    print("`refseg tools NAME` shows a tool's arguments and options")
    return 0


def tool_text(registry: Any, name: str) -> str:
    """One tool described: role, version, origin, description, arguments and options."""
    from tools.option_docs import describe_fields

    cls = registry.declaration(name)  # no tool module imported
    spec = registry.spec(name)
    lines = [f"{name} ({cls.role}, v{cls.version}, {spec.origin}: {spec.target})", f"  {cls.description}"]
    if cls.prompt_tool:
        lines.append(f"  prompt tool: {cls.prompt_tool}")
    sections = (
        ("arguments (each call's; what the VLM sees as the function's parameters)", cls.Params),
        (f"options (--tool-option {name}.KEY=VALUE; part of every cache key)", cls.Options),
    )
    for title, model in sections:
        fields = describe_fields(model) if model is not None else []
        if not fields:
            lines.append(f"{title.split(' (')[0]}: none")
            continue
        lines.append(f"{title}:")
        for doc in fields:
            allowed = f"; {doc.allowed}" if doc.allowed else ""
            lines.append(f"  {doc.key}: {doc.type}{allowed} (default {doc.default})")
            if doc.description:
                lines.append(f"      {doc.description}")
    return "\n".join(lines)
