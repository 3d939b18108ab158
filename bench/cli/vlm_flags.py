"""The VLM profile flags of ``segment``, ``bench run`` and ``bench suite``: how the model answers.

They build :class:`agent.vlm_profile.ProfileChoice` (a preset and the fields given
explicitly); the resolved profile is recorded in ``config.json`` under ``vlm.profile``.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.vlm_profile import PROFILES, TOOL_CALL_STYLES, VLMProfile
from tools.coords import UNITS

_GENERIC = VLMProfile()
# (flag, ProfileChoice field, argparse keywords): bench.cli.args declares them.
PROFILE_ROWS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "--vlm-profile",
        "name",
        {
            "choices": list(PROFILES),
            "help": "presets for a model family: coordinates, view sizing (qwen2.5-vl: the view is "
            "sent on its 28-pixel grid), tool calls, reply format (default generic: "
            f"{_GENERIC.coords}, {_GENERIC.tool_calls} tool calls); the flags below override it",
        },
    ),
    (
        "--vlm-coords",
        "coords",
        {
            "choices": list(UNITS),
            "help": "agent, ground: how the VLM gives boxes and points: pixels of the image it was "
            "shown, norm1000 (0-1000), norm1000-yx (0-1000, y first: Gemini's box_2d), norm1 (0-1) "
            "or percent (default: the profile's; generic: pixels)",
        },
    ),
    (
        "--vlm-tool-calls",
        "tool_calls",
        {
            "choices": list(TOOL_CALL_STYLES),
            "help": "agent: native (the server's tool_calls), text (tools described in the prompt, "
            "calls parsed from the reply) or auto (native when the server returns them, else "
            "text) (default: the profile's; generic: native)",
        },
    ),
    (
        "--vlm-json-schema",
        "json_schema",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "loop, ground: ask for schema-shaped replies (response_format json_schema); a "
            "server that refuses is asked again without (default: the profile's; generic: off)",
        },
    ),
    (
        "--vlm-max-pixels",
        "max_pixels",
        {
            "type": int,
            "metavar": "N",
            "help": "with a grid profile (qwen2.5-vl): the server's max_pixels, the pixel budget "
            f"the view is resized within (default {_GENERIC.max_pixels}, the models' own)",
        },
    ),
)
