"""The declarations of the offline toolset (see :mod:`tools.declaration`): registered in the
``refseg.tools`` entry-point group, like any third-party plugin, and imported without numpy
work or scipy; :mod:`tools.offline.region_propose`, :mod:`tools.offline.attribute_rank` and
:mod:`tools.offline.region_prompt` implement them."""

from __future__ import annotations

from pydantic import Field

from tools.base import StrictParams
from tools.declaration import ToolDeclaration
from tools.prompting import PromptParams


class RegionParams(StrictParams):
    min_area: int = Field(default=64, ge=1, description="Smallest region kept, in pixels.")
    max_proposals: int = Field(default=48, ge=1, le=1000, description="Most proposals returned.")
    color_tolerance: float = Field(
        default=40.0, gt=0, le=442, description="RGB distance within which pixels share a colour."
    )
    max_colors: int = Field(default=24, ge=1, le=128, description="Most palette colours.")
    variants: bool = Field(default=True, description="Also propose unions, splits and rectangles.")
    denoise: bool = Field(
        default=True, description="Median-filter the image first when it looks noisy (estimated sigma > 3)."
    )


class AttributeParams(StrictParams):
    query: str | None = Field(
        default=None, max_length=1000, description="Text to rank against; default: the current query."
    )
    temperature: float = Field(default=0.4, gt=0, le=10, description="Softmax temperature.")


REGION_PROPOSE = ToolDeclaration(
    name="region_propose",
    role="propose",
    description=(
        "Propose candidate object masks without any model: colour regions (quantised colours, "
        "connected components) plus unions of touching regions, splits and bounding rectangles."
    ),
    implementation="tools.offline.region_propose:RegionPropose",
    Params=RegionParams,
    version="2",
    prompt_tool="region_prompt",
    reads_settings=frozenset({"device"}),  # no models, no weights
)

ATTRIBUTE_RANK = ToolDeclaration(
    name="attribute_rank",
    role="rank",
    description=(
        "Rank the candidate masks against a query using colour words (red, blue...), shape words "
        "(circle, square, triangle, star) and position words (left, right, top, bottom, middle, "
        "biggest, smallest). It knows no synonyms: use these exact words."
    ),
    implementation="tools.offline.attribute_rank:AttributeRank",
    Params=AttributeParams,
    reads_settings=frozenset({"device"}),  # no models, no weights
)

REGION_PROMPT = ToolDeclaration(
    name="region_prompt",
    role="prompt",
    description=(
        "Draw the mask of the object at a box and/or points you give (no model: the uniformly "
        "coloured region under them) and add it to the candidates; then rank and submit it. "
        "Use it when no candidate covers the object."
    ),
    implementation="tools.offline.region_prompt:RegionPrompt",
    Params=PromptParams,
    reads_settings=frozenset(),  # no models, no weights
)
