"""What the VLM was shown and answered: the ``messages`` and ``reply`` of ``vlm_call`` events.

The VLM client hands every attempt's request messages and reply to its ``on_call`` hook,
:func:`log_vlm_call`, which writes one ``vlm_call`` event into the running episode's trace.
An agent resends its whole conversation every turn (and a retry resends it again), so each
message is logged once per episode: an event carries only the messages of its request
that no earlier call of the episode logged (with ``i``, their position in the request),
``sent`` (how many the request had) and ``reply`` (the assistant message, which is not
logged again when the agent sends it back; its ``reasoning``, a reasoning model's thinking,
is kept here only). Image parts become references to files the
tracer stores once (``{"type": "image", "file": "vlm_images/<sha256>.jpg"}``; see
:mod:`agent.trace_images`). Text is cut within the tracer's limits (:data:`TEXT_LIMIT` a
string, :data:`TEXT_BUDGET` an event), so the tracer never has to cut the transcript's
structure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from contextvars import ContextVar
from typing import Any

from agent.tracing import CURRENT_LOG, MAX_ITEMS, MAX_STRING, Tracer, clip

TEXT_LIMIT = MAX_STRING - 64  # one string, with room for the cut marker
TEXT_BUDGET = 40_000  # text characters of one event (the tracer's event budget is 64,000)
MAX_MESSAGES = MAX_ITEMS - 10  # new messages logged by one event
MAX_PARTS = MAX_ITEMS - 10  # parts logged of one message
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|webp);base64,", re.IGNORECASE)
_EXT = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp"}

# The running episode's transcript (set by the session around each episode).
CURRENT_TRANSCRIPT: ContextVar[Transcript | None] = ContextVar("refseg_transcript", default=None)


class _Budget:
    """Text characters an event may still log."""

    def __init__(self, chars: int = TEXT_BUDGET):
        self.left = chars

    def text(self, value: Any) -> str:
        """``value`` as text, redacted and cut to what is left (a marker once nothing is)."""
        text = "" if value is None else value if isinstance(value, str) else str(value)
        if not text:
            return ""
        if self.left <= 0:
            return f"[not logged: {len(text)} chars over the event's budget]"
        limit = min(TEXT_LIMIT, self.left)
        self.left -= min(len(text), limit)
        return clip(text, limit)


def _digest(position: int, message: Any) -> str:
    payload = json.dumps([position, message], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class Transcript:
    """One episode's record of what was logged already, and where its images go.

    Args:
        tracer: stores the images (``None``: image parts are logged without a file).
    """

    def __init__(self, tracer: Tracer | None):
        self._tracer = tracer
        self._seen: set[str] = set()

    def fields(self, messages: Any, reply: Any = None) -> dict[str, Any]:
        """The ``messages``, ``sent`` and ``reply`` fields of one call's event."""
        if not isinstance(messages, list):
            return {}
        budget = _Budget()
        new: list[dict[str, Any]] = []
        skipped = 0
        for i, msg in enumerate(messages):
            key = _digest(i, msg)
            if key in self._seen:
                continue
            if len(new) >= MAX_MESSAGES:
                skipped += 1
                continue
            self._seen.add(key)
            new.append(self._message(msg, budget, i))
        out: dict[str, Any] = {"messages": new, "sent": len(messages)}
        if skipped:
            out["messages_not_logged"] = skipped
        if isinstance(reply, dict):
            # The agent sends it back next turn, without its reasoning: log it once.
            sent_back = {k: v for k, v in reply.items() if k != "reasoning"}
            self._seen.add(_digest(len(messages), sent_back))
            out["reply"] = self._message(reply, budget)
        return out

    def _message(self, msg: Any, budget: _Budget, position: int | None = None) -> dict[str, Any]:
        if not isinstance(msg, dict):
            return {"role": "?", "content": budget.text(msg)}
        out: dict[str, Any] = {} if position is None else {"i": position}
        out["role"] = clip(str(msg.get("role", "?")), 40)
        content = msg.get("content")
        if isinstance(content, list):
            out["content"] = [self._part(p, budget) for p in content[:MAX_PARTS]]
            if len(content) > MAX_PARTS:
                out["content"].append({"type": "text", "text": f"[{len(content) - MAX_PARTS} more parts]"})
        else:
            out["content"] = budget.text(content)
        if msg.get("tool_call_id"):
            out["tool_call_id"] = clip(str(msg["tool_call_id"]), 80)
        calls = msg.get("tool_calls")
        if isinstance(calls, list) and calls:
            out["tool_calls"] = [_call(c, budget) for c in calls[:MAX_PARTS]]
        if msg.get("reasoning"):  # what a reasoning model thought (never sent back to it)
            out["reasoning"] = budget.text(msg["reasoning"])
        return out

    def _part(self, part: Any, budget: _Budget) -> dict[str, Any]:
        if not isinstance(part, dict):
            return {"type": "text", "text": budget.text(part)}
        kind = part.get("type")
        if kind == "text":
            return {"type": "text", "text": budget.text(part.get("text"))}
        if kind == "image_url":
            url = part.get("image_url", {}).get("url") if isinstance(part.get("image_url"), dict) else None
            return self._image(url if isinstance(url, str) else "")
        return {"type": "text", "text": budget.text(json.dumps(part, default=str)[:TEXT_LIMIT])}

    def _image(self, url: str) -> dict[str, Any]:
        """An image part as a file reference (a data URL), or the URL itself (any other)."""
        match = _DATA_URL.match(url)
        if match is None:
            return {"type": "image", "url": clip(url, 300)}
        try:
            data = base64.b64decode(url[match.end() :], validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            return {"type": "image", "missing": "the data URL holds no base64 image"}
        ref = self._tracer.store_image(data, _EXT[match.group(1).lower()]) if self._tracer else None
        if ref is None:
            return {"type": "image", "missing": "not stored (this trace keeps no images)", "bytes": len(data)}
        return {"type": "image", "file": ref, "bytes": len(data)}


def _call(call: Any, budget: _Budget) -> dict[str, Any]:
    """``{"name", "arguments"}`` of an assistant message's ``tool_calls`` entry."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return {"name": "?", "arguments": budget.text(call)}
    return {"name": clip(str(fn.get("name", "?")), 80), "arguments": budget.text(fn.get("arguments"))}


def log_vlm_call(info: dict[str, Any]) -> None:
    """``on_call`` hook of the VLM client: one ``vlm_call`` event in the current episode, with
    the request's new messages and the reply (see the module docstring).

    ``info`` is the client's event; its ``messages`` (the request) and ``reply_message``
    (the reply as an assistant message) are turned into the transcript fields.
    """
    current = CURRENT_LOG.get()
    messages = info.pop("messages", None)
    reply = info.pop("reply_message", None)
    if current is None:
        return
    transcript = CURRENT_TRANSCRIPT.get()
    if transcript is not None:
        info.update(transcript.fields(messages, reply))
    current.info("vlm_call", **info)
