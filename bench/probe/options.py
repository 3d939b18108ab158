"""The probe's options (light: the CLI reads their defaults for its help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tools.errors import ConfigError

DEADLINE_S = 55.0  # the whole probe stays under a minute
NO_IMAGES = 7  # exit code: the endpoint cannot take images


@dataclass(frozen=True)
class ProbeOptions:
    """``refseg vlm probe``.

    Attributes:
        base_url: the endpoint (``.../v1``).
        model: the model to ask (``None``: ``REFSEG_VLM_MODEL``, else the first the endpoint
            lists, else the default model).
        json_path: also write the report as JSON there.
        deadline_s: seconds the whole probe may take.
    """

    base_url: str
    model: str | None = None
    json_path: Path | None = None
    deadline_s: float = DEADLINE_S

    def __post_init__(self) -> None:
        if not self.deadline_s > 0:
            raise ConfigError(f"the probe's deadline must be > 0 seconds, got {self.deadline_s}")
