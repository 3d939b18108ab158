"""The events of ``trace.jsonl``, as typed records.

Every line is one event: ``event`` (its kind), ``run_id``, ``ts`` (seconds since the epoch),
``schema_version`` (stamped by :class:`agent.tracing.Tracer`; 0 for lines written before it
was), and, inside an episode, ``sample_id``. The kinds below are those readers rely on
(``refseg trace``, the viewer's timeline, the summary's fault counts); any other kind (a
plugin controller's own) reads as :class:`OtherEvent`. Every model keeps fields it does not
declare, so a reader never loses what a newer writer added.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

TRACE_SCHEMA_VERSION = 1


class EventBase(BaseModel):
    """What every event has."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(
        default=0, description=f"{TRACE_SCHEMA_VERSION} now, 0 before events were versioned"
    )
    event: str
    run_id: str | None = None
    sample_id: str | None = None
    ts: float | None = None
    step: int | None = None


class EpisodeStart(EventBase):
    event: Literal["episode_start"] = "episode_start"
    expression: str | None = None
    controller: str | None = None
    image_size: list[int] | None = Field(
        default=None, description="[H, W] of the input image (array order; shown as W x H)"
    )


class ToolCall(EventBase):
    """One tool call (written by the invoker only); ``result`` or ``error``, and ``rejected``
    for a call refused before it reached the tool (bad arguments)."""

    event: Literal["tool_call"] = "tool_call"
    tool: str | None = Field(default=None, description="the tool's name (as the caller gave it)")
    args: Any = None
    seconds: float | None = None
    cache_hit: bool = False
    result: Any = None
    error: str | None = None
    rejected: bool = False


class VLMCall(EventBase):
    """One VLM attempt: status, latency, tokens, USD, retry; with a transcript, the request's
    new ``messages``, ``sent`` (how many it had) and ``reply`` (see :mod:`agent.transcript`)."""

    event: Literal["vlm_call"] = "vlm_call"
    model: str | None = None
    attempt: int | None = None
    latency_s: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    finish_reason: str | None = None
    status: int | str | None = None
    error: str | None = None
    retry_in_s: float | None = None
    tool_calls: list[Any] = Field(default_factory=list)
    messages: list[Any] | None = None
    sent: int | None = None
    reply: Any = None


class Guard(EventBase):
    event: Literal["guard"] = "guard"
    conf: float | None = None
    gap: float | None = None
    tau_conf: float | None = None
    tau_gap: float | None = None
    passed: bool = False


class Turn(EventBase):
    """One agent turn: how the VLM's reply ended and which tools it asked for."""

    event: Literal["turn"] = "turn"
    turn: int | None = None
    finish_reason: str | None = None
    tool_calls: list[Any] = Field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    content: str | None = None


class ToolCallLimit(EventBase):
    event: Literal["tool_call_limit"] = "tool_call_limit"
    turn: int | None = None
    refused: int = 0


class EpisodeTimeout(EventBase):
    event: Literal["episode_timeout"] = "episode_timeout"
    timeout_s: float | None = None
    turns: int | None = None


class EpisodeEnd(EventBase):
    """The episode's result (``agent.episode.EpisodeResult.to_json`` without the expression)."""

    event: Literal["episode_end"] = "episode_end"
    controller: str | None = None
    chosen: int | None = None
    conf: float | None = None
    gap: float | None = None
    iterations: int | None = None
    turns: int | None = None
    stop_reason: str | None = None
    seconds: float | None = None
    error: str | None = None


# The kinds with a model of their own; any other reads as OtherEvent.
KINDS: dict[str, type[EventBase]] = {
    model.model_fields["event"].default: model
    for model in (EpisodeStart, ToolCall, VLMCall, Guard, Turn, ToolCallLimit, EpisodeTimeout, EpisodeEnd)
}


class OtherEvent(EventBase):
    """Any other kind (``agent_tools``, ``submit``, ``ground``, a plugin's own, ...)."""

    event: str = Field(json_schema_extra={"not": {"enum": list(KINDS)}})


def _kind(value: Any) -> str:
    event = value.get("event") if isinstance(value, dict) else getattr(value, "event", None)
    return event if event in KINDS else "other"


TraceEvent = Annotated[
    Annotated[EpisodeStart, Tag("episode_start")]
    | Annotated[ToolCall, Tag("tool_call")]
    | Annotated[VLMCall, Tag("vlm_call")]
    | Annotated[Guard, Tag("guard")]
    | Annotated[Turn, Tag("turn")]
    | Annotated[ToolCallLimit, Tag("tool_call_limit")]
    | Annotated[EpisodeTimeout, Tag("episode_timeout")]
    | Annotated[EpisodeEnd, Tag("episode_end")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_kind),
]
"""One ``trace.jsonl`` line: the model of its kind."""

TRACE_EVENT: TypeAdapter[Any] = TypeAdapter(TraceEvent)


def parse_event(line: bytes | str | dict[str, Any]) -> EventBase | None:
    """The event of one line (or its decoded JSON), or ``None`` when it is not one (not JSON,
    not an object with an ``event``, or a field of the wrong type)."""
    try:
        if isinstance(line, dict):
            event: EventBase = TRACE_EVENT.validate_python(line)
        else:
            event = TRACE_EVENT.validate_json(line)
    except (ValidationError, ValueError):
        return None
    return event
