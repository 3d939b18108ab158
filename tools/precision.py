"""Precisions the models can run at (no torch import: the CLI and settings use this)."""

from __future__ import annotations

from typing import Literal, get_args

from tools.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(precision: str) -> Precision:
    """``precision`` when it is one of :data:`PRECISIONS`.

    Raises:
        ConfigError: anything else, with the accepted values.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]
