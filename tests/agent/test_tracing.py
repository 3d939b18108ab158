from __future__ import annotations

from pathlib import Path

import pytest

from agent.tracing import REDACTED, Tracer, redact, redact_text, register_secret


def test_redacts_by_key_value_and_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SILICONFLOW_API_KEY", "plain-secret-value-42")
    data = {
        "headers": {"Authorization": "Bearer abc.def", "X-Api-Key": "k"},
        "api_key": "whatever",
        "note": "key is plain-secret-value-42 and sk-abcdef123456",
        "tokens_in": 12,
    }
    out = redact(data)
    assert out["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert out["api_key"] == REDACTED and out["tokens_in"] == 12
    assert "plain-secret" not in out["note"] and "sk-abcdef" not in out["note"]


def test_trace_file_never_contains_a_registered_secret(tmp_path: Path) -> None:
    register_secret("flag-passed-key-987")
    with Tracer(tmp_path / "t.jsonl") as tracer:
        tracer.bind(sample_id="x").info("tool_call", error="auth failed for flag-passed-key-987")
    text = (tmp_path / "t.jsonl").read_text()
    assert "flag-passed-key-987" not in text and REDACTED in text
    assert redact_text("nothing secret") == "nothing secret"
