"""Tool calls written as text are read in every form servers hand back, several per reply,
within caps, and in linear time (no backtracking search over the reply)."""

from __future__ import annotations

import json

import pytest

from agent.text_tool_calls import MAX_TEXT_CALLS, MAX_TEXT_CHARS, parse_text_tool_calls


def calls_of(text: str) -> list[tuple[str, dict]]:
    return [(c.name, c.parse_arguments()) for c in parse_text_tool_calls(text).calls]


def test_hermes_blocks_several_per_reply_with_prose_around() -> None:
    text = (
        'I will rank first.\n<tool_call>\n{"name": "clip_rank", "arguments": {"query": "a dog"}}\n'
        '</tool_call>\n<tool_call>{"name": "submit", "arguments": '
        '{"index": 2, "reason": "the {brace} in a string"}}</tool_call>'
    )
    assert calls_of(text) == [
        ("clip_rank", {"query": "a dog"}),
        ("submit", {"index": 2, "reason": "the {brace} in a string"}),
    ]


def test_an_unclosed_last_block_runs_to_the_end() -> None:
    assert calls_of('<tool_call>{"name": "sam_propose", "arguments": {}}') == [("sam_propose", {})]


def test_qwen3_coder_xml_calls() -> None:
    text = (
        "<tool_call>\n<function=region_prompt>\n<parameter=box>\n[10, 20, 110, 90]\n</parameter>\n"
        "<parameter=note>\nthe dog\n</parameter>\n</function>\n</tool_call>"
    )
    assert calls_of(text) == [("region_prompt", {"box": [10, 20, 110, 90], "note": "the dog"})]


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"name": "clip_rank", "arguments": {"query": "a dog"}}\n```',
        '{"name": "clip_rank", "parameters": {"query": "a dog"}}',
        'Sure. {"type": "function", "function": {"name": "clip_rank", '
        '"arguments": {"query": "a dog"}}} Done.',
        '[{"name": "clip_rank", "args": {"query": "a dog"}}]',
        '{"tool": "clip_rank", "input": {"query": "a dog"}}',
    ],
)
def test_fenced_bare_and_embedded_json(text: str) -> None:
    assert calls_of(text) == [("clip_rank", {"query": "a dog"})]


def test_arguments_given_as_a_string_are_kept_as_written() -> None:
    (call,) = parse_text_tool_calls('<tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>').calls
    assert call.arguments == '{"a": 1}' and call.parse_arguments() == {"a": 1}


def test_text_without_a_call_gives_none() -> None:
    for text in ("", "I think the dog is candidate 3.", "{not json}", '{"query": "no name"}', "[1, 2, 3]"):
        assert parse_text_tool_calls(text).calls == ()


def test_caps_on_calls_and_characters() -> None:
    many = "".join(
        f'<tool_call>{{"name": "t{i}", "arguments": {{}}}}</tool_call>' for i in range(MAX_TEXT_CALLS + 5)
    )
    parsed = parse_text_tool_calls(many)
    assert len(parsed.calls) == MAX_TEXT_CALLS and parsed.skipped == 5
    late = "x" * MAX_TEXT_CHARS + '<tool_call>{"name": "late", "arguments": {}}</tool_call>'
    parsed = parse_text_tool_calls(late)
    assert parsed.cut and parsed.calls == ()  # past the cap: not read
    huge = '<tool_call>{"name": "big", "arguments": {"q": "' + "y" * 9000 + '"}}</tool_call>'
    (call,) = parse_text_tool_calls(huge).calls
    with pytest.raises(ValueError, match="at most 8000 are accepted"):  # the native calls' own cap
        call.parse_arguments()


def test_adversarial_text_is_read_in_one_pass() -> None:
    """Inputs that make a ``\\{.*\\}`` search or a decode at every brace quadratic: megabytes of
    nested openings and unclosed strings. One scan over the capped text reads each."""
    for text in (
        "{" * 2_000_000,
        '{"' * 1_000_000,
        "[" * 500_000 + "]" * 500_000,
        '<tool_call>{"a' * 200_000,
    ):
        parsed = parse_text_tool_calls(text)
        assert parsed.calls == () and parsed.cut
    nested = '{"name": "deep", "arguments": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}"
    assert [c.name for c in parse_text_tool_calls(nested).calls] == ["deep"]
    assert json.loads(parse_text_tool_calls(nested).calls[0].arguments)["a"]["a"]["a"]
