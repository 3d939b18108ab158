"""The declaration of ``clip_rank`` (no torch, no open_clip: see :mod:`tools.declaration`);
:mod:`tools.clip_rank` implements it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from tools.base import StrictParams
from tools.declaration import ToolDeclaration

# How each candidate is shown to CLIP (tools.visual_prompts draws them).
PromptMode = Literal["crop", "blur", "grey", "outline"]


class ClipRankParams(StrictParams):
    query: str | None = Field(
        default=None,
        description="Text to rank the candidates against; default: the current query.",
        max_length=1000,
    )
    mode: PromptMode = Field(
        default="crop",
        description=(
            "How each candidate is shown to CLIP: crop (its box with some context), "
            "blur or grey (the full image, blurred or greyed outside the mask), "
            "outline (the full image with a red contour around the mask)."
        ),
    )
    temperature: float = Field(
        default=0.01, gt=0.0, le=10.0, description="Softmax temperature over cosine scores."
    )
    prompt_template: str = Field(
        default="a photo of {}",
        description="Text template; {} is replaced by the query.",
        max_length=200,
    )

    @field_validator("prompt_template")
    @classmethod
    def _one_slot(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError('prompt_template needs exactly one "{}" where the query goes')
        return value


class ClipRankOptions(StrictParams):
    """Settings of ``clip_rank`` (``--tool-option clip_rank.KEY=VALUE``)."""

    style: dict[str, Any] = Field(
        default_factory=dict,
        description="visual prompt style: margin, grey, blur_sigma, outline_width, outline_color",
    )
    cache_dir: str | None = Field(default=None, description="open_clip's download cache")


CLIP_RANK = ToolDeclaration(
    name="clip_rank",
    role="rank",
    description=(
        "Score every candidate mask against a text query with CLIP and return the "
        "ranking: per-candidate probability, conf (top-1 probability) and gap (top-1 minus top-2)."
    ),
    implementation="tools.clip_rank:ClipRank",
    Params=ClipRankParams,
    Options=ClipRankOptions,
)
