"""``refseg controllers``: every controller (built-ins and plugins) with what it needs and its options."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "controllers",
        help="list the controllers (built-ins and plugins), what each needs and its options",
    )
    p.add_argument("--schema", action="store_true", help="print each controller's options as JSON Schema")
    p.set_defaults(func=cmd_controllers)


def cmd_controllers(args: argparse.Namespace) -> int:
    from agent.controllers import available_controllers, controller_origin

    specs, broken = available_controllers()
    for spec in specs:
        needs = f"vlm {spec.vlm}, prompt tool {spec.prompt_tool}, refiner {'yes' if spec.refines else 'no'}"
        print(f"{spec.name:12} {controller_origin(spec.name):8} {spec.description}")
        print(f"{'':12} needs: {needs}")
        if spec.option_fields():
            print(f"{'':12} options (--controller-option NAME.KEY=VALUE), with their defaults:")
        for key, (value, description) in spec.option_fields().items():
            setting = f"{spec.name}.{key}={json.dumps(value)}"
            print(f"{'':12} {setting:30} {description}")
        if args.schema:
            print(json.dumps(spec.Options.model_json_schema(), indent=2))
    for name, why in broken.items():
        print(f"{name:12} {controller_origin(name):8} unavailable: {why}")
    return 0
