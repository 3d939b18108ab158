"""Item 4: a secret is registered in every form it can appear in (as typed, percent-decoded,
percent-encoded, base64 in Basic auth) and redaction works on any substring of any text;
redacting twice changes nothing (a redacted URL no longer grows ``]]``)."""

from __future__ import annotations

import base64

import pytest
from helpers_chaos import chaos_row

from agent.redaction import redact_text, register_secret, url_secrets
from bench.chaos.secret_encodings import ENC_KEY, ENC_PASSWORD, ENCODED_SECRETS, encoded_url, every_form

URL = encoded_url(8000)


def test_every_form_of_the_url_s_credentials_is_a_secret() -> None:
    found = set(url_secrets(URL))
    assert set(every_form(ENC_PASSWORD)) <= found and set(every_form(ENC_KEY)) <= found
    basic = base64.b64encode(f"chaos-user:{ENC_PASSWORD}".encode()).decode()
    assert basic in found  # what the HTTP client sends for user:password@


@pytest.mark.parametrize("form", ENCODED_SECRETS)
def test_a_registered_secret_is_redacted_in_any_form_inside_any_text(form: str) -> None:
    for secret in url_secrets(URL):
        register_secret(secret)
    for text in (f"POST /v1/chat/completions?api_key={form} -> 500", f"x{form}y", f'{{"path": "{form}"}}'):
        assert form not in redact_text(text)


def test_a_query_secret_echoed_without_its_scheme_is_redacted() -> None:
    out = redact_text("got /v1/chat/completions?api_key=never-registered-771&v=1 from you")
    assert "never-registered-771" not in out and "api_key=[REDACTED]&v=1" in out


def test_redaction_is_idempotent_and_keeps_the_text_around_a_url() -> None:
    text = "the server said (see http://h:1/v1?api_key=abcdef0123456789) and [http://u:p@h/x]."
    once = redact_text(text)
    assert redact_text(redact_text(once)) == once
    assert once.endswith("(see http://h:1/v1?api_key=[REDACTED]) and [http://[REDACTED]@h/x].")


@pytest.mark.slow
def test_encoded_credentials_row_leaks_nothing() -> None:
    row = chaos_row("URL-encoded credentials")
    assert row.survived, row.problems
    assert row.details["leaks"] == [] and row.injected == row.detected > 0


@pytest.mark.parametrize(
    ("echoed", "redacted"),
    [
        ('"QK+planted\\/99key"', '"[REDACTED]"'),  # JSON with "/" escaped, as some encoders write it
        ("QK%2bplanted%2F99key", "[REDACTED]"),  # percent-escapes in mixed case
        ("QK%2Bplanted%2f99key", "[REDACTED]"),
        ("p%40ss", "[REDACTED]"),
        ("QK%2bPLANTED%2f99KEY", "QK%2bPLANTED%2f99KEY"),  # only the escapes' case may vary
    ],
)
def test_json_escaped_slashes_and_mixed_case_escapes_are_redacted(echoed: str, redacted: str) -> None:
    for secret in url_secrets("http://u:p%40ss@host/v1?api_key=QK%2Bplanted%2F99key"):
        register_secret(secret)
    assert redact_text(f"the server said {echoed}.") == f"the server said {redacted}."
