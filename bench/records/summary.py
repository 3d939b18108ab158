"""``summary.json``: a run's metrics, counts, stop reasons, VLM health, costs and timing.

:class:`Summary` is built by :func:`bench.summary.build_summary` and read by the report, the
tables, the suite and the viewer. The metrics block holds what the data set's protocol
defines (:mod:`bench.data.protocol`): each metric's value under its key (``miou``, ``ciou``,
``pr@0.5``, ...), its 95% interval under ``<key>_ci`` where it has one, the protocol's name,
its headline metric and its breakdowns. Files written before summaries were versioned
(``schema_version`` 0) read too: their ``buckets`` become the ``size`` breakdown.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from bench.records.sample import ToolCostRecord
from bench.records.written import WRITTEN_BLOCK

SUMMARY_SCHEMA_VERSION = 1
DEFAULT_PROTOCOL = "mask-iou"  # what every run before protocols were named was scored with

MetricValue = float | list[float] | None


class GroupMetrics(BaseModel):
    """The metrics of one group of a breakdown (e.g. the ``small`` objects): ``n`` examples,
    and each metric's value under its key."""

    model_config = WRITTEN_BLOCK
    __pydantic_extra__: dict[str, float | None] = Field(init=False)

    n: int = 0

    def value(self, key: str) -> float | None:
        return (self.model_extra or {}).get(key)


class MetricsSummary(BaseModel):
    """The protocol's metrics over a run (see the module docstring for the layout)."""

    model_config = WRITTEN_BLOCK
    __pydantic_extra__: dict[str, MetricValue] = Field(init=False)

    protocol: str = Field(default=DEFAULT_PROTOCOL, description="the protocol that scored the run")
    headline: str = Field(default="miou", description="the key of the protocol's headline metric")
    n: int = Field(default=0, description="examples the metrics are over (failed ones count IoU 0)")
    breakdowns: dict[str, dict[str, GroupMetrics]] = Field(
        default_factory=dict, description="by breakdown, then group: metrics over that group"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_buckets(cls, data: Any) -> Any:
        """A version-0 summary's ``buckets`` is the ``size`` breakdown."""
        if isinstance(data, dict) and isinstance(data.get("buckets"), dict):
            data = dict(data)
            buckets = data.pop("buckets")
            data.setdefault("breakdowns", {}).setdefault("size", buckets)
        return data

    def value(self, key: str) -> float | None:
        """A metric's value (``None``: not computed, or no example to compute it over)."""
        value = (self.model_extra or {}).get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    def ci(self, key: str) -> tuple[float, float] | None:
        """A metric's 95% interval, or ``None``."""
        value = (self.model_extra or {}).get(f"{key}_ci")
        return (float(value[0]), float(value[1])) if isinstance(value, list) and len(value) == 2 else None


class RunLabel(BaseModel):
    """The few settings that tell runs apart in tables (from ``config.json``)."""

    model_config = WRITTEN_BLOCK

    controller: str | None = None
    max_iter: int | None = None
    refiner: str | None = None
    proposer: str | None = None
    ranker: str | None = None
    weights: str | None = None
    perturb: str = "clean"
    dataset: str | None = None
    n: int | None = None
    per_image: str | None = None
    tau_conf: float | None = Field(
        default=None, description="the guard's thresholds (absent in older summaries)"
    )
    tau_gap: float | None = None

    @property
    def always_asks(self) -> bool:
        """Made at thresholds 1/1: the guard never stops it (a frontier's source)."""
        return self.controller != "oneshot" and self.tau_conf == 1.0 and self.tau_gap == 1.0


class Counts(BaseModel):
    """How many examples the run should have, has, and how they ended."""

    model_config = WRITTEN_BLOCK

    expected: int = 0
    examples: int = 0
    missing: int = 0
    ok: int = 0
    failed: int = 0
    images: int | None = None


class Faults(BaseModel):
    """Faults the run saw: from its records, its costs and its trace (see
    :func:`bench.summary.trace_faults`)."""

    model_config = WRITTEN_BLOCK

    failed_examples: int = 0
    fallbacks: int = 0
    fallbacks_by_kind: dict[str, int] = Field(default_factory=dict)
    vlm_failed_calls: int = 0
    tool_errors: int = 0
    vlm_attempt_errors: int = 0
    vlm_retries: int = 0
    vlm_errors_by_status: dict[str, int] = Field(default_factory=dict)
    rejected_tool_calls: int = 0
    odd_finish_reasons: int = 0
    refused_tool_calls: int = 0
    episode_timeouts: int = 0

    def counted(self) -> dict[str, int]:
        """Every fault count that is not zero, by name (``fallbacks`` excluded: reported apart)."""
        out = {}
        for key, value in self.model_dump().items():
            if isinstance(value, int) and not isinstance(value, bool) and value and key != "fallbacks":
                out[key] = value
        return out


class VLMHealth(BaseModel):
    """Examples that needed the VLM and how many of those fell back, by kind."""

    model_config = WRITTEN_BLOCK

    needed: int = 0
    fallbacks: int = 0
    fallback_rate: float | None = None
    by_kind: dict[str, int] = Field(default_factory=dict)


class Failure(BaseModel):
    model_config = WRITTEN_BLOCK

    example_id: str
    error: str | None = None


class CostRow(ToolCostRecord):
    """One tool's (or the total's) calls over the run, per image and per 1,000 expressions."""

    model_config = WRITTEN_BLOCK  # merged with the record's

    cache_hit_rate: float | None = None
    per_image: dict[str, float | None] = Field(default_factory=dict)
    per_1000_expressions: dict[str, float | None] = Field(default_factory=dict)
    calls_per_example: float | None = None


class CostTable(BaseModel):
    model_config = WRITTEN_BLOCK

    tools: dict[str, CostRow] = Field(default_factory=dict)
    total: CostRow = Field(default_factory=CostRow)


class ProposeStats(BaseModel):
    """Propose computations per image run (SAM 1 proposes once per image, SAM 3 once per
    query), and the proposer's image encodes per image run (images its model ran the image
    encoder on: one per image for both from an empty cache; ``None`` when the proposer does not
    count them or the run predates the count)."""

    model_config = WRITTEN_BLOCK

    tool: str | None = None
    computations: int = 0
    images_run: int = 0
    per_image: float | None = None
    last_invocation_per_image: float | None = None
    image_encodes: int | None = None
    image_encodes_per_image: float | None = None
    last_invocation_image_encodes_per_image: float | None = None


class CacheHealth(BaseModel):
    model_config = WRITTEN_BLOCK

    degraded_invocations: int = 0
    errors: int = 0
    corrupt_entries: int = 0
    reason: str | None = None


class EventLoopLag(BaseModel):
    """How late the run's event loops woke a task that slept 20 ms (:mod:`bench.loop_lag`),
    over the last invocation's examples: every loop that ran episodes or wrote records (the
    driver's and, with Ray, each worker's). A large lag means something held a loop (an import,
    a big parse, a synchronous write) while other episodes waited."""

    model_config = WRITTEN_BLOCK

    interval_ms: float = 20.0
    samples: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    stalls_over_250ms: int = 0


class Timing(BaseModel):
    """Wall time and throughput (see :func:`bench.summary.build_summary`)."""

    model_config = WRITTEN_BLOCK

    wall_s: float = 0.0
    wall_s_total: float = 0.0
    setup_s: float = 0.0
    setup_s_total: float = 0.0
    examples_run: int = 0
    examples_per_s: float | None = None
    seconds_per_image: float | None = None
    concurrency: int | None = None
    engine: str = "local"
    workers: int = 1
    invocations: int = 0
    killed_invocations: int = 0
    event_loop: EventLoopLag = Field(default_factory=EventLoopLag)
    cpu_s: float | None = Field(
        default=None,
        description="CPU seconds of the run's processes while the last invocation's examples ran "
        "(all their threads, the event-loop lag probe's wake-ups every 20 ms included)",
    )
    cpu_ms_per_example: float | None = Field(
        default=None,
        description="cpu_s per example run; its fixed part (the lag probe, idle threads) grows "
        "with wall time, so a run that mostly waits (on VLM limits, a slow endpoint) reads higher",
    )


class Summary(BaseModel):
    """Everything ``summary.json`` holds. A current writer writes every field (its JSON
    Schema requires them, ``refseg bench schema summary``); readers default what older files
    lack."""

    model_config = WRITTEN_BLOCK

    schema_version: int = Field(
        default=0,
        description=f"layout of this file: {SUMMARY_SCHEMA_VERSION} now, 0 before files were versioned",
    )
    label: RunLabel = Field(default_factory=RunLabel)
    n_images: int = 0
    n_expressions: int = 0
    complete: bool = True
    metrics: MetricsSummary = Field(default_factory=lambda: MetricsSummary())
    counts: Counts = Field(default_factory=Counts)
    dropped: dict[str, int] = Field(
        default_factory=dict, description="rows and samples of the data set that held no example, by kind"
    )
    stop_reasons: dict[str, int] = Field(default_factory=dict)
    iterations_mean: float | None = None
    episode_seconds_mean: float | None = None
    faults: Faults = Field(default_factory=Faults)
    vlm: VLMHealth = Field(default_factory=VLMHealth)
    failures: list[Failure] = Field(default_factory=list, description="the first 20 failed examples")
    costs: CostTable = Field(default_factory=CostTable)
    propose: ProposeStats = Field(default_factory=ProposeStats)
    cache: CacheHealth = Field(default_factory=CacheHealth)
    timing: Timing = Field(default_factory=Timing)
    peak_cuda_memory_bytes: int | None = None
