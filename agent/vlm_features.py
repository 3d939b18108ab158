"""Optional request features, and what the client does when a server refuses one.

Two things a request may ask for that not every OpenAI-compatible server takes:

- ``tools`` (native function calling): vLLM answers HTTP 400 to ``tool_choice: auto`` unless
  it was started with ``--enable-auto-tool-choice --tool-call-parser ...``; older llama.cpp
  servers answer HTTP 500 "tools param requires --jinja flag"; a gateway may refuse
  ``tools`` outright. With ``--vlm-tool-calls auto`` they are optional (the prompt
  describes the tools too); with ``native`` they are not, and the error says how to fix it.
- ``response_format`` with a JSON schema (``--vlm-json-schema``): always optional.

A refused optional feature (HTTP 400 or 422 to a request that carried it) is dropped and the
request sent again once; when that succeeds, the client never asks for the feature again,
logs one warning, and every later reply records it in ``VLMReply.dropped`` (the trace's
``vlm_call`` events show ``dropped``), so the fallback is never silent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agent.vlm_profile import VLMProfile

log = logging.getLogger(__name__)

REFUSAL_STATUS = frozenset({400, 422})
REFUSAL_PHRASES = ("requires --jinja",)
NATIVE_TOOLS_FIX = (
    "the server refused native tool calls; start it with tool calling on (vLLM: "
    "--enable-auto-tool-choice --tool-call-parser hermes; llama.cpp: --jinja) or pass "
    "--vlm-tool-calls text (or auto)"
)


@dataclass(frozen=True)
class Plan:
    """One request's extra ``create()`` arguments, and which of them may be dropped."""

    kw: dict[str, Any]
    optional: tuple[str, ...] = ()
    native_tools: bool = False  # tools sent and required (a refusal gets NATIVE_TOOLS_FIX)

    def without_optional(self) -> dict[str, Any]:
        """The arguments with the optional features left out."""
        drop = {"tools", "tool_choice"} if "tools" in self.optional else set()
        if "json_schema" in self.optional:
            drop.add("response_format")
        return {k: v for k, v in self.kw.items() if k not in drop}


@dataclass
class Features:
    """What this client asks for, and what its server refused (feature -> the server's message)."""

    profile: VLMProfile
    refused: dict[str, str] = field(default_factory=dict)

    def plan(
        self,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | dict[str, Any] | None,
        json_schema: dict[str, Any] | None,
        tools_optional: bool,
    ) -> Plan:
        """The features to send: tools (unless optional and refused before), and
        ``response_format`` when the profile asks for JSON schemas and the server took them."""
        kw: dict[str, Any] = {}
        optional: list[str] = []
        if tools and not (tools_optional and "tools" in self.refused):
            kw["tools"] = tools
            if tool_choice is not None:
                kw["tool_choice"] = tool_choice
            if tools_optional:
                optional.append("tools")
        if json_schema is not None and self.profile.json_schema and "json_schema" not in self.refused:
            kw["response_format"] = {"type": "json_schema", "json_schema": json_schema}
            optional.append("json_schema")
        return Plan(kw, tuple(optional), native_tools=bool(tools) and not tools_optional)

    def dropped(self, requested_tools: bool, requested_schema: bool) -> tuple[str, ...]:
        """Features a request asked for that this client no longer sends (refused earlier)."""
        wanted = {"tools": requested_tools, "json_schema": requested_schema and self.profile.json_schema}
        return tuple(name for name, asked in wanted.items() if asked and name in self.refused)

    def mark_refused(self, names: tuple[str, ...], message: str) -> None:
        """Never ask for ``names`` again (one warning each)."""
        for name in names:
            if name not in self.refused:
                self.refused[name] = message
                log.warning("the VLM server refused %s (%s); continuing without it", name, message)


def is_refusal(status: int | None, message: str = "") -> bool:
    """An answer that can mean "this server does not take that request feature": HTTP 400 or
    422, or the HTTP 500 older llama.cpp servers give ``tools`` ("tools param requires --jinja
    flag")."""
    if status in REFUSAL_STATUS:
        return True
    return status is not None and status >= 500 and any(p in message for p in REFUSAL_PHRASES)
