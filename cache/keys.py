"""Explicit cache keys: what a tool output depends on, and nothing else."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        # 0.1 and 0.1000000001 are the same knob; 12 significant digits is plenty.
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace and normalised floats: equal args, equal text."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def make_key(
    tool: str,
    version: str,
    fingerprint: str,
    inputs: dict[str, str],
    args: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> str:
    """sha256 of (tool name, tool version, model fingerprint, input digests, canonical args,
    validated options).

    Args:
        tool: tool name.
        version: tool version; bump it when the tool's output changes.
        fingerprint: identity of the model weights (or "none").
        inputs: digests of the inputs (image, proposals, ...), by role.
        args: only the arguments that change the output.
        options: the tool's settings, every field of its validated ``Options`` (and those of
            the tools whose state it uses), by tool name; ``None`` (a tool without options)
            leaves the material as it was before options were part of keys.
    """
    fields: dict[str, Any] = {
        "tool": tool,
        "version": version,
        "fingerprint": fingerprint,
        "inputs": inputs,
        "args": args,
    }
    if options is not None:
        fields["options"] = options
    material = canonical_json(fields)
    return hashlib.sha256(material.encode()).hexdigest()
