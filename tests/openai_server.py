"""The scripted OpenAI-compatible test server; it lives in :mod:`bench.chaos.server` (re-exported)."""

from bench.chaos.server import *  # noqa: F403
from bench.chaos.server import (
    MAX_SLEEP_S,
    Call,
    EmptyChoices,
    Policy,
    Raw,
    RecordedRequest,
    Reset,
    ScriptedServer,
    Slow,
    Spec,
    Status,
    Text,
    ToolCalls,
    Truncated,
    completion_json,
    endless_tool_calls,
)

__all__ = [
    "MAX_SLEEP_S",
    "Call",
    "EmptyChoices",
    "Policy",
    "Raw",
    "RecordedRequest",
    "Reset",
    "ScriptedServer",
    "Slow",
    "Spec",
    "Status",
    "Text",
    "ToolCalls",
    "Truncated",
    "completion_json",
    "endless_tool_calls",
]
