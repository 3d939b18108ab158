"""Secrets out of everything written: by key name, by known value, by shape, by URL structure.

:func:`redact` and :func:`redact_text` are what the tracer, the VLM client and the CLI run
every string through before it is logged, raised or written. Four nets, widest last:

- key names (``api_key``, ``authorization``, ``password``, ...): the whole value goes;
- known values, in every form they can be written in (:func:`secret_forms`: as given,
  percent-decoded, percent-encoded with upper- or lower-case hex, JSON-escaped), replaced
  wherever they occur: the API keys in the environment and every value
  :func:`register_secret` was given (a key passed by flag, the user, password, Basic token
  and secret-looking query values of a VLM URL);
- shapes: ``sk-...``, ``Bearer ...`` and ``Basic <base64>`` credentials;
- URLs, structurally: ``scheme://user:pass@host/path?key=value`` keeps its scheme, host and
  path but loses the user information and every query value (:func:`redact_url`); a query
  echoed without its URL (``/v1/x?api_key=...``) loses the values of secret-named parameters.

Redacting twice is redacting once (a ``[REDACTED]`` is never taken for part of a URL).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

SECRET_ENV_VARS = ("SILICONFLOW_API_KEY", "REFSEG_VLM_API_KEY", "OPENAI_API_KEY")
REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"^(api[_-]?key|x-api-key|authorization|proxy-authorization|password|secret|"
    r"access[_-]?token|bearer|cookie|set-cookie)$",
    re.IGNORECASE,
)
_SECRET_SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._\-~+/=]+)", re.IGNORECASE)
# "Basic <base64 of user:password>": a token with a digit, +, /, = or a capital after its first
# letter (or a long one), so that prose such as "Basic shapes" stays readable.
_BASIC = re.compile(r"\bBasic\s+([A-Za-z0-9+/]{6,}={0,2})")
# Anything that looks like scheme://...: up to whitespace, a quote, an angle bracket or a square
# bracket, except a [REDACTED] already there and an IPv6 host ([::1]); trailing punctuation (the
# full stop after a URL in a sentence) is left out by _redact_urls.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://(?:\[REDACTED\]|\[[0-9A-Fa-f:.]{2,45}\]|[^\s\"'<>`\[\]])+")
_URL_TAIL = ".,;:)"
# A query parameter anywhere (an echoed path without its scheme): the name is bounded, so the
# search stays linear; only values of secret-looking names are replaced.
_PARAM = re.compile(r"([?&])([A-Za-z0-9_.\-]{1,64})=([^&\s\"'<>`\[\]]+)")
# Query parameters whose value is a credential whatever its length.
_SECRET_PARAM = re.compile(r"key|token|secret|sig|password|passwd|auth|credential|code", re.IGNORECASE)
_MIN_SECRET = 4
_LONG_VALUE = 16  # a query value this long is treated as a secret whatever its name
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this value, in every form :func:`secret_forms` gives, wherever it would be written
    (e.g. a key passed by flag)."""
    if value:
        _extra_secrets.update(secret_forms(value))


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


@functools.lru_cache(maxsize=256)
def secret_forms(value: str) -> frozenset[str]:
    """Every form ``value`` may be written in: as given, percent-decoded (``%2B`` and ``+``
    forms), percent-encoded (strictly, with ``/`` left alone, form-style; upper- and lower-case
    hex, and :func:`redact_text` matches any mix of cases) and JSON-escaped (``/`` as is and as
    ``\\/``, as some encoders write it); forms shorter than 4 characters are left out (they
    would redact ordinary words)."""
    plain = {value, unquote(value), unquote_plus(value)}
    forms = set(plain)
    for text in plain:
        for encoded in (quote(text, safe=""), quote(text), quote_plus(text), quote_plus(text, safe="/")):
            forms |= {encoded, _lower_hex(encoded)}
        escaped = json.dumps(text)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
    return frozenset(f for f in forms if len(f) >= _MIN_SECRET)


@functools.lru_cache(maxsize=1024)
def _any_hex_case(form: str) -> re.Pattern[str]:
    """``form`` with each percent-escape matching its hex digits in any case (``%2b``, ``%2B``)."""
    parts = re.split(r"(%[0-9A-Fa-f]{2})", form)
    return re.compile(
        "".join(
            f"%[{p[1].upper()}{p[1].lower()}][{p[2].upper()}{p[2].lower()}]" if i % 2 else re.escape(p)
            for i, p in enumerate(parts)
        )
    )


def basic_tokens(user: str, password: str) -> set[str]:
    """The ``Basic`` tokens an HTTP client may send for ``user:password`` from a URL (the
    user information as typed, or percent-decoded, as clients do)."""
    pairs = {(u, p) for u in (user, unquote(user)) for p in (password, unquote(password))}
    return {base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in pairs}


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries, in every form (:func:`secret_forms`): its user and
    password, the ``Basic`` token a client sends for them, and query values that look like
    secrets (by parameter name, or by length)."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:  # e.g. a port that is not a number
        return []
    found = [v for v in (user, password) if v]
    if user is not None and password:
        found += sorted(basic_tokens(user, password))
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if _SECRET_PARAM.search(name) or len(value) >= _LONG_VALUE:
            found.append(value)
    forms = {form for value in found for form in secret_forms(value)}
    return sorted(forms, key=lambda f: (-len(f), f))


def redact_url(url: str) -> str:
    """``scheme://user:pass@host/p?k=v#f`` -> ``scheme://[REDACTED]@host/p?k=[REDACTED]#f``."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rpartition('@')[2]}"
    tail, hash_, fragment = tail.partition("#")
    path, qmark, query = tail.partition("?")
    if qmark:
        params = [p.partition("=") for p in query.split("&")]
        query = "&".join(f"{k}={REDACTED}" if eq and v else f"{k}{eq}" for k, eq, v in params)
    return f"{head}://{authority}{path}{qmark}{query}{hash_}{fragment}"


def secrets_state() -> tuple[object, ...]:
    """What the known secrets depend on (the environment's keys, how many were registered):
    equal states redact alike, so a redaction may be memoized under it."""
    return (*(os.environ.get(name) for name in SECRET_ENV_VARS), len(_extra_secrets))


def _known_secrets() -> list[str]:
    values = set(_extra_secrets)
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name, "")
        if value:
            values |= secret_forms(value)
    return sorted((v for v in values if len(v) >= _MIN_SECRET), key=len, reverse=True)


def redact_text(text: str) -> str:
    """``text`` with known secret values (any form, anywhere), credential shapes, URL
    credentials and secret-named query values replaced; ``redact_text`` of its own output
    changes nothing."""
    folded: str | None = None  # the text lower-cased: finds escapes written in another case
    for secret in _known_secrets():
        if secret in text:
            text, folded = text.replace(secret, REDACTED), None
        elif "%" in secret and "%" in text:
            folded = text.lower() if folded is None else folded
            if secret.lower() in folded:
                text, folded = _any_hex_case(secret).sub(REDACTED, text), None
    if "://" in text:
        text = _URL.sub(_redact_url_match, text)
    if "=" in text:
        text = _PARAM.sub(_redact_param, text)
    text = _BASIC.sub(_basic, text)
    return _SECRET_SHAPES.sub(REDACTED, text)


def _redact_url_match(match: re.Match[str]) -> str:
    url = match.group(0)
    kept = url.rstrip(_URL_TAIL)
    return redact_url(kept) + url[len(kept) :]


def _redact_param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    if value == REDACTED or not _SECRET_PARAM.search(name):
        return match.group(0)
    return f"{sep}{name}={REDACTED}"


def _basic(match: re.Match[str]) -> str:
    token = match.group(1)
    looks_encoded = (
        len(token) >= 16 or any(c in token for c in "0123456789+/=") or token[1:] != token[1:].lower()
    )
    return REDACTED if looks_encoded else match.group(0)


def is_secret_key(name: object) -> bool:
    """Whether a field of this name holds a credential (its whole value is redacted)."""
    return isinstance(name, str) and _SECRET_KEY.match(name) is not None


def redact(value: Any) -> Any:
    """Recursively redact secrets from dicts, lists and strings."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
