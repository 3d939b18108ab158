"""The declarations of the SAM 3 toolset (see :mod:`tools.declaration`): registered in the
``refseg.tools`` entry-point group, and read without importing torch or transformers (the
agent learns every registered tool's role from them); :mod:`tools.sam3.propose`,
:mod:`tools.sam3.rank` and :mod:`tools.sam3.prompt` implement them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tools.declaration import ToolDeclaration
from tools.params import StrictParams
from tools.prompting import PromptParams
from tools.sam3.config import Size

DEFAULT_THRESHOLD = 0.5  # SAM 3's own image predictor keeps instances above 0.5


class Sam3ProposeParams(StrictParams):
    """What to look for and how many instances to keep."""

    query: str | None = Field(
        default=None,
        max_length=500,
        description="A short noun phrase naming the object to find, e.g. 'red car' (SAM 3 finds every "
        "instance of it); default: the current query.",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Keep instances whose score (detection x presence) exceeds this; default: the "
        "tool's threshold (0.5 unless set otherwise).",
    )
    max_instances: int = Field(
        default=20, ge=1, le=200, description="Keep at most this many, best score first."
    )


class Sam3Options(StrictParams):
    """Settings of the SAM 3 tools (``--tool-option sam3_propose.KEY=VALUE``; ``--sam3-size`` and
    ``--sam3-checkpoint`` are shortcuts of ``size`` and ``checkpoint``)."""

    size: Size = Field(default="full", description="architecture: full (the official SAM 3) or tiny (tests)")
    checkpoint: str | None = Field(
        default=None, description="safetensors weights (default: CHECKPOINT_DIR/sam3/model.safetensors)"
    )
    config: dict[str, Any] | None = Field(
        default=None, description="Sam3VideoConfig keyword arguments merged into the size's architecture"
    )
    threshold: float = Field(
        default=DEFAULT_THRESHOLD, ge=0.0, le=1.0, description="instances scoring above this are kept"
    )
    encodings: int = Field(default=8, ge=1, description="image encodings kept (an LRU by image)")
    same_instance_iou: float = Field(
        default=0.85,
        gt=0.0,
        le=1.0,
        description="a new instance overlapping a candidate this much (mask IoU) is that candidate again",
    )


class Sam3RankParams(StrictParams):
    query: str | None = Field(
        default=None,
        max_length=500,
        description="Short noun phrase to score the candidates against; default: the current query.",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="SAM 3 instances scoring at most this do not count (a candidate matching none "
        "scores 0); default: sam3_propose's threshold.",
    )


SAM3_PROPOSE = ToolDeclaration(
    name="sam3_propose",
    role="propose",
    description=(
        "Find every instance of a short noun phrase (query; default: the current query) with SAM 3 "
        "and add them to the candidates, each with SAM 3's score. Call it again with another phrase "
        "(e.g. the head noun) if the object is not among them; it may find nothing."
    ),
    implementation="tools.sam3.propose:Sam3Propose",
    Params=Sam3ProposeParams,
    Options=Sam3Options,
    prompt_tool="sam3_prompt",
    text_conditioned=True,
)

SAM3_RANK = ToolDeclaration(
    name="sam3_rank",
    role="rank",
    description=(
        "Score every candidate against a short noun phrase with SAM 3 and return the ranking: "
        "per-candidate probability, conf (top-1 probability) and gap (top-1 minus top-2). "
        "Candidates SAM 3 does not find for the phrase score 0."
    ),
    implementation="tools.sam3.rank:Sam3Rank",
    Params=Sam3RankParams,
    needs=("sam3_propose",),
)

SAM3_PROMPT = ToolDeclaration(
    name="sam3_prompt",
    role="prompt",
    description=(
        "Draw the mask of the object at a box and/or points you give, with SAM 3, and add it to "
        "the candidates; then rank and submit it. Use it when no candidate covers the object."
    ),
    implementation="tools.sam3.prompt:Sam3Prompt",
    Params=PromptParams,
    needs=("sam3_propose",),
)
