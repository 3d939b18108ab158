"""Trace strings are redacted once per secrets state: a secret added later is still redacted."""

from __future__ import annotations

import pytest

from agent.redaction import register_secret
from agent.tracing import MEMO_CHARS, bound, clip


def test_a_secret_registered_after_a_string_was_traced_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "token zq-9f8e7d6c5b4a-made-up in a field"
    assert clip(text) == text  # traced once, nothing secret yet
    register_secret("zq-9f8e7d6c5b4a-made-up")
    assert "zq-9f8e7d6c5b4a" not in clip(text)
    monkeypatch.setenv("REFSEG_VLM_API_KEY", "Key-0123456789-abc")
    event = bound({"note": "uses Key-0123456789-abc", "n": 3, "ok": True, "x": None})
    assert "Key-0123456789" not in event["note"] and event["n"] == 3 and event["ok"] is True
    assert len(text) <= MEMO_CHARS
