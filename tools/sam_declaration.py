"""The declarations of ``sam_propose`` and ``sam_prompt`` (no torch, no segment-anything: see
:mod:`tools.declaration`); :mod:`tools.sam_propose` and :mod:`tools.sam_prompt` implement them."""

from __future__ import annotations

from pydantic import Field

from tools.base import StrictParams
from tools.declaration import ToolDeclaration
from tools.prompting import PromptParams
from tools.sam_configs import SamProposeOptions


class SamProposeParams(StrictParams):
    """Knobs of SAM's automatic mask generator (names and meaning as in segment-anything)."""

    points_per_side: int = Field(
        default=16, ge=1, le=64, description="Grid of points_per_side^2 point prompts (official default 32)."
    )
    points_per_batch: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Points decoded per batch (speed/memory only; default: 256 on CUDA, 64 on CPU).",
    )
    pred_iou_thresh: float = Field(
        default=0.88,
        ge=0.0,
        le=1.0,
        description="Keep masks whose predicted IoU exceeds this (0: no filter).",
    )
    stability_score_thresh: float = Field(
        default=0.95, ge=0.0, le=1.0, description="Keep masks at least this stable (0: no filter)."
    )
    stability_score_offset: float = Field(
        default=1.0, gt=0.0, le=10.0, description="Logit offset used for the stability score."
    )
    box_nms_thresh: float = Field(
        default=0.7, gt=0.0, le=1.0, description="Box IoU above which duplicates are suppressed."
    )
    min_mask_region_area: int = Field(
        default=0, ge=0, description="Fill holes and drop islands smaller than this many pixels (0: off)."
    )
    min_area: int = Field(default=0, ge=0, description="Drop masks with fewer pixels than this.")
    max_proposals: int = Field(
        default=64, ge=1, le=1000, description="Keep at most this many masks, best predicted IoU first."
    )


# ToolSettings sam_propose reads (config.json records only what the run's tools read).
_SAM_SETTINGS = frozenset(
    {"weights", "device", "checkpoint_dir", "sam_model_type", "sam_checkpoint", "seed", "precision"}
    | {"compile", "compile_backend", "encoder_batch", "points_per_batch"}
)

SAM_PROPOSE = ToolDeclaration(
    name="sam_propose",
    role="propose",
    description=(
        "Propose candidate object masks for the whole image with Segment Anything "
        "(a grid of point prompts, filtered by predicted IoU and stability, duplicates removed). "
        "Call again with a denser grid (points_per_side) or lower thresholds if the target "
        "object is not among the candidates."
    ),
    implementation="tools.sam_propose:SamPropose",
    Params=SamProposeParams,
    Options=SamProposeOptions,
    prompt_tool="sam_prompt",
    reads_settings=_SAM_SETTINGS,
)

SAM_PROMPT = ToolDeclaration(
    name="sam_prompt",
    role="prompt",
    description=(
        "Draw the mask of the object at a box and/or points you give, with Segment Anything, "
        "and add it to the candidates; then rank and submit it. Use it when no candidate "
        "covers the object."
    ),
    implementation="tools.sam_prompt:SamPrompt",
    Params=PromptParams,
    needs=("sam_propose",),
    reads_settings=frozenset({"device", "precision"}),  # and, through sam_propose, SAM's
)
