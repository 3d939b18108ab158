"""Reasoning output (``<think>`` blocks, ``reasoning_content``) is kept out of every parser and
out of what is sent back, kept in the transcript, and its tokens are counted and priced."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers_conventions import run_family

from agent.reasoning import output_tokens, split_reasoning
from agent.vlm_profile import PROFILES
from bench.doubles.vlm_conventions import REASONING_TOKENS, THOUGHT


@pytest.mark.parametrize(
    ("content", "answer", "thought"),
    [
        (
            '<think>\nplan {"box": [9, 9, 9, 9]}\n</think>\n{"box": [1, 2, 3, 4]}',
            '{"box": [1, 2, 3, 4]}',
            'plan {"box": [9, 9, 9, 9]}',
        ),
        ("a</think>b", "b", "a"),  # the template opened the block in the prompt (Qwen3)
        ("x<think>one</think>y<think>two</think>z", "xyz", "one\ntwo"),
        ("answer<think>cut off while thinking", "answer", "cut off while thinking"),
        ("no reasoning here", "no reasoning here", ""),
    ],
)
def test_think_blocks_are_split_from_the_answer(content: str, answer: str, thought: str) -> None:
    assert split_reasoning(content) == (answer, thought)


def test_reasoning_tokens_are_billed_as_output_even_where_a_gateway_leaves_them_out() -> None:
    def usage(**kw: object) -> SimpleNamespace:
        return SimpleNamespace(**{"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 0, **kw})

    details = {"completion_tokens_details": {"reasoning_tokens": 60}}
    assert output_tokens(usage(completion_tokens=70, total_tokens=90, **details)) == 70  # OpenAI: included
    assert output_tokens(usage(completion_tokens=10, total_tokens=90, **details)) == 70  # total says more
    assert output_tokens(usage(completion_tokens=0, **details)) == 60  # no total: cannot hold them
    assert output_tokens(usage()) == 10


@pytest.mark.parametrize("reasoning", ["think", "field"])
def test_ground_parses_past_the_reasoning_and_the_transcript_keeps_it(tmp_path: Path, reasoning: str) -> None:
    trace = tmp_path / "trace.jsonl"
    run = run_family("ground", "gemini", PROFILES["gemini"], reasoning=reasoning, trace=trace)
    assert min(run.ious) >= 0.9 and {r.stop_reason for r in run.results} == {"grounded"}
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    calls = [e for e in events if e["event"] == "vlm_call"]
    assert calls and all(THOUGHT in c["reply"]["reasoning"] for c in calls)
    assert all("<think>" not in (c["reply"]["content"] or "") for c in calls)
    grounds = [e for e in events if e["event"] == "ground"]
    assert all(g["answer"].startswith("```json") for g in grounds)  # the answer alone
    vlm = run.results[0].costs.tools["vlm"]
    if reasoning == "field":
        assert all(c["reasoning_tokens"] == REASONING_TOKENS for c in calls)
        assert vlm.reasoning_tokens == REASONING_TOKENS and vlm.tokens_out > REASONING_TOKENS
        # priced as output: USD 2 per million output tokens, 1 per million input
        assert vlm.usd == pytest.approx((vlm.tokens_in * 1.0 + vlm.tokens_out * 2.0) / 1e6)
    else:
        assert vlm.reasoning_tokens == 0  # the server reported none


def test_reasoning_is_never_sent_back_to_the_model() -> None:
    run = run_family("agent", "qwen3-vl", PROFILES["qwen3-vl"], reasoning="field")
    assert min(run.ious) >= 0.9
    later = [
        r
        for r in run.requests
        if any(m.get("role") == "assistant" for m in (r.json or {}).get("messages", []))
    ]
    assert later, "the agent resent its conversation"
    for request in later:
        body = request.body.decode()
        assert THOUGHT not in body and '"reasoning' not in body
