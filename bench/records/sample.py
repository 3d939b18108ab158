"""One line of ``samples.jsonl``: what evaluating one example produced.

:class:`SampleRecord` is written by the runner (:mod:`bench.evaluate` builds it, the sample
writer appends it) and read back by resume, the summary, the report, the paired comparison,
the case galleries and the viewer. ``schema_version`` says which layout a line has: 0 for
lines written before records were versioned (they lack the newer fields, which take their
defaults), :data:`SAMPLES_SCHEMA_VERSION` for lines written now. Unknown fields (a newer
writer's) are kept, so a record read and written again loses nothing.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SAMPLES_SCHEMA_VERSION = 2  # 2: rank steps carry conf, gap and spend; candidates their IoU


class RLE(BaseModel):
    """A mask as compressed COCO RLE (pycocotools' ``counts`` string) at ``size = [H, W]``."""

    model_config = ConfigDict(extra="allow")

    size: list[int] = Field(min_length=2, max_length=2, description="[H, W] of the mask")
    counts: str = Field(description="compressed COCO RLE counts")


class ToolCostRecord(BaseModel):
    """The calls of one tool in one example (see :mod:`agent.costs` for each field)."""

    model_config = ConfigDict(extra="allow")

    calls: int = 0
    computed: int = 0
    joined: int = 0
    cache_hits: int = 0
    disk_hits: int = 0
    errors: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    vlm_wait_seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    reasoning_tokens: int = 0
    cold_seconds: float = 0.0
    cold_tokens_in: int = 0
    cold_tokens_out: int = 0
    cold_usd: float = 0.0
    cold_unknown: int = 0


class SpendRecord(BaseModel):
    """What an episode had spent asking for help (see :class:`agent.costs.Spend`)."""

    model_config = ConfigDict(extra="allow")

    vlm_calls: int = Field(default=0, description="calls that asked the VLM (cache-served ones too)")
    asks: int = Field(default=0, description="calls that asked the refiner (rules or VLM) or the VLM")
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    cold_tokens_in: int = 0
    cold_tokens_out: int = 0
    cold_usd: float = Field(default=0.0, description="USD from an empty cache")


class RankedCandidateRecord(BaseModel):
    """One candidate of a ranking step: proposal index, probability, origin, mask, and its
    score against the ground truth as the protocol counts it (absent before version 2, and in
    ``refseg segment`` results, which have no ground truth)."""

    model_config = ConfigDict(extra="allow")

    index: int
    prob: float
    origin: str = ""
    mask: RLE | None = None
    iou: float | None = None
    inter: int | None = None
    union: int | None = None
    pred_area: int | None = None
    scores: dict[str, float] | None = Field(default=None, description="the protocol's own numbers")


class RankStepRecord(BaseModel):
    """One ranking an episode made: its step, its query and its top candidates; ``conf`` and
    ``gap`` exactly as the guard compared them, and ``spent``: what the episode had spent
    asking for help up to it (both absent before version 2). A guard check of an empty ranking
    (nothing found) has no candidates."""

    model_config = ConfigDict(extra="allow")

    step: int
    query: str | None = None
    conf: float | None = None
    gap: float | None = None
    spent: SpendRecord | None = None
    proposal_set: int = Field(
        default=0, description="times the candidates were replaced or added to before this ranking"
    )
    candidates: list[RankedCandidateRecord] = Field(default_factory=list)


class SampleRecord(BaseModel):
    """One example's result (one line of ``samples.jsonl``; the last line per
    ``example_id`` counts).

    A failed example (``failed``) has ``iou`` 0, ``inter`` 0 and ``union`` equal to the ground
    truth's area where it could be read, so it still counts in cIoU; ``error`` says why.
    """

    model_config = ConfigDict(extra="allow")

    schema_version: int = Field(
        default=0,
        description=f"layout of this line: {SAMPLES_SCHEMA_VERSION} now, 0 before lines were versioned",
    )
    index: int = Field(description="position of the example in the data set's example order")
    example_id: str
    image_id: str
    sentence: str = Field(description="the referring expression as the data set stores it")
    category: str = ""
    tags: dict[str, str] = Field(
        default_factory=dict, description="the example's attributes a protocol breaks metrics down by"
    )
    failed: bool = True
    error: str | None = None
    iou: float = Field(default=0.0, description="intersection over union (1.0 when both masks are empty)")
    inter: int = Field(default=0, description="pixels in both the prediction and the ground truth")
    union: int = Field(default=0, description="pixels in either")
    gt_area: int = Field(default=0, description="ground-truth pixels")
    pred_area: int | None = Field(default=None, description="predicted pixels (absent in version-0 lines)")
    bucket: str | None = Field(default=None, description="COCO size bucket of the ground truth")
    scores: dict[str, float] = Field(
        default_factory=dict, description="per-example numbers a protocol adds (by metric name)"
    )
    mask: RLE | None = Field(default=None, description="the predicted mask")
    iterations: int = 0
    stop_reason: str = "error"
    queries: list[str] = Field(default_factory=list, description="the expression, then each rewrite")
    conf: float = 0.0
    gap: float = 0.0
    chosen: int = -1
    n_proposals: int = 0
    costs: dict[str, ToolCostRecord] = Field(default_factory=dict, description="per tool")
    seconds: float = 0.0
    needed_vlm: bool = False
    fallback_reason: str | None = None
    fallback_kind: str | None = None
    config_digest: str | None = Field(
        default=None, description="digest of the result-defining configuration that made this line"
    )
    spent: SpendRecord | None = Field(
        default=None, description="what the episode spent asking for help (absent before version 2)"
    )
    rank_steps: list[RankStepRecord] = Field(
        default_factory=list, description="every ranking of the episode (always the line's last field)"
    )

    @property
    def predicted_area(self) -> int:
        """Predicted pixels: ``pred_area``, or for a version-0 line ``union - gt_area + inter``."""
        if self.pred_area is not None:
            return self.pred_area
        return max(0, self.union - self.gt_area + self.inter) if not self.failed else 0

    @property
    def usd(self) -> float:
        """USD the example spent now, all tools together."""
        return sum(c.usd for c in self.costs.values())

    def to_line(self) -> bytes:
        """The JSON line (with its newline), ``rank_steps`` last."""
        data = self.model_dump(mode="json")
        data["rank_steps"] = data.pop("rank_steps")
        return (json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def as_rank_step(raw: Any) -> RankStepRecord | None:
    """A ranking step from a record (or a ``refseg segment`` result's JSON), or ``None`` when
    it is not one."""
    if isinstance(raw, RankStepRecord):
        return raw
    try:
        return RankStepRecord.model_validate(raw)
    except ValidationError:
        return None


def parse_sample(data: bytes | str | dict[str, Any]) -> SampleRecord | None:
    """A record from one line (or its decoded JSON), or ``None`` when it is not one: not
    UTF-8, not JSON, not an object, or fields of the wrong type."""
    try:
        if isinstance(data, dict):
            return SampleRecord.model_validate(data)
        return SampleRecord.model_validate_json(data)
    except (ValidationError, ValueError):
        return None
