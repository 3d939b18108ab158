"""Reasoning output: what a reasoning model thought, kept apart from what it answered.

Reasoning models put their thinking in ``<think>...</think>`` inside ``content`` (or only
the closing ``</think>``, when the chat template opened the block in the prompt, as Qwen3's
newer templates do), or in a separate message field: ``reasoning_content`` (DeepSeek,
llama.cpp, older vLLM) or ``reasoning`` (newer vLLM). :func:`split_reasoning` takes the
thinking out of the text every parser reads; the transcript keeps it. Usage reports the
thinking as ``completion_tokens_details.reasoning_tokens``, normally inside
``completion_tokens``; :func:`output_tokens` also bills what a gateway left out of them.

Everything here is linear in the text: ``str.find`` only, no regular expressions.
"""

from __future__ import annotations

from typing import Any

OPEN, CLOSE = "<think>", "</think>"
REASONING_FIELDS = ("reasoning_content", "reasoning")


def split_reasoning(content: str) -> tuple[str, str]:
    """``(answer, reasoning)`` of a reply's text.

    Every ``<think>...</think>`` block goes to the reasoning; an unclosed ``<think>`` (a reply
    cut off while thinking) takes the rest of the text; a ``</think>`` with no opening
    before it ends reasoning that began in the prompt.
    """
    if OPEN not in content and CLOSE not in content:
        return content, ""
    answer: list[str] = []
    thought: list[str] = []
    pos = 0
    first_close, first_open = content.find(CLOSE), content.find(OPEN)
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        thought.append(content[:first_close])
        pos = first_close + len(CLOSE)
    while pos < len(content):
        start = content.find(OPEN, pos)
        if start < 0:
            answer.append(content[pos:])
            break
        answer.append(content[pos:start])
        end = content.find(CLOSE, start + len(OPEN))
        if end < 0:
            thought.append(content[start + len(OPEN) :])
            break
        thought.append(content[start + len(OPEN) : end])
        pos = end + len(CLOSE)
    return "".join(answer).strip(), "\n".join(t.strip() for t in thought if t.strip())


def message_reasoning(message: Any) -> str:
    """The reasoning a server returned in its own message field (``""`` when none)."""
    extra = getattr(message, "model_extra", None) or {}
    for name in REASONING_FIELDS:
        value = getattr(message, name, None) or extra.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def reasoning_tokens(usage: Any) -> int:
    """``usage.completion_tokens_details.reasoning_tokens`` (0 when not reported)."""
    details = getattr(usage, "completion_tokens_details", None)
    if isinstance(details, dict):
        value = details.get("reasoning_tokens")
    else:
        value = getattr(details, "reasoning_tokens", None)
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def output_tokens(usage: Any) -> int:
    """The output tokens to bill: ``completion_tokens``, which by the OpenAI convention
    includes the reasoning tokens, or more where a server left those out of it.

    Some gateways report Gemini's thinking only in ``total_tokens`` and
    ``reasoning_tokens`` (``completion_tokens`` then counts the visible answer alone): what
    ``total_tokens`` holds beyond prompt and completion is billed as output, and without a
    total, reasoning tokens larger than the completion are added to it.
    """
    prompt = _int(getattr(usage, "prompt_tokens", 0))
    completion = _int(getattr(usage, "completion_tokens", 0))
    total = _int(getattr(usage, "total_tokens", 0))
    if total > prompt + completion:
        return total - prompt
    thinking = reasoning_tokens(usage)
    return completion + thinking if not total and thinking > completion else completion


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
