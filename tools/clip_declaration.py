"""The declaration of ``clip_rank`` (no torch, no open_clip: see :mod:`tools.declaration`);
:mod:`tools.clip_rank` implements it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator

from tools.base import StrictParams
from tools.declaration import ToolDeclaration

# How each candidate is shown to CLIP (tools.visual_prompts draws them).
PromptMode = Literal["crop", "blur", "grey", "outline"]


@dataclass(frozen=True)
class PromptStyle:
    """Knobs of the visual prompts (fractions are of the image's longer side).

    Attributes:
        margin: crop context on each side, as a fraction of the box's longer side.
        grey: grey level (0..255) outside the mask in ``grey`` mode.
        blur_sigma: Gaussian sigma of ``blur`` mode.
        outline_width: contour thickness of ``outline`` mode (at least 1 pixel).
        outline_color: contour colour, RGB 0..255.
    """

    margin: float = 0.1
    grey: int = 128
    blur_sigma: float = 0.04
    outline_width: float = 0.01
    outline_color: tuple[int, int, int] = (255, 0, 0)


DEFAULT_STYLE = PromptStyle()


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


Colour = Annotated[int, Field(ge=0, le=255, strict=True)]


class StyleOptions(StrictParams):
    """``clip_rank.style``: the :class:`PromptStyle` fields, each checked when the run is set up
    (fractions are of the image's longer side; defaults are :data:`DEFAULT_STYLE`'s)."""

    margin: float = Field(default=DEFAULT_STYLE.margin, ge=0.0, le=2.0, allow_inf_nan=False)
    grey: int = Field(default=DEFAULT_STYLE.grey, ge=0, le=255, strict=True)
    blur_sigma: float = Field(default=DEFAULT_STYLE.blur_sigma, gt=0.0, le=1.0, allow_inf_nan=False)
    outline_width: float = Field(default=DEFAULT_STYLE.outline_width, ge=0.0, le=0.25, allow_inf_nan=False)
    outline_color: tuple[Colour, Colour, Colour] = DEFAULT_STYLE.outline_color


class ClipRankOptions(StrictParams):
    """Settings of ``clip_rank`` (``--tool-option clip_rank.KEY=VALUE``)."""

    style: StyleOptions = Field(
        default_factory=StyleOptions,
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
    # ToolSettings it reads (config.json records only what the run's tools read).
    reads_settings=frozenset(
        {
            "weights",
            "device",
            "clip_model",
            "clip_pretrained",
            "seed",
            "precision",
            "compile",
            "compile_backend",
        }
    ),
)
