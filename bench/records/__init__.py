"""Typed run records: a result line, ``summary.json``, ``config.json`` and the trace events.

Each has a ``schema_version`` (0 for files written before records were versioned: they read
with the newer fields at their defaults). The writers build these models and every reader
parses them, so a field means one thing everywhere; ``refseg bench schema NAME`` prints
each one's JSON Schema (:data:`SCHEMAS`).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from agent.trace_events import TRACE_EVENT, TRACE_SCHEMA_VERSION, EventBase, parse_event
from bench.records.config import (
    CONFIG_SCHEMA_VERSION,
    DataFile,
    DataSelection,
    DatasetRecord,
    ExamplesRecord,
    ResultsConfig,
    RunConfig,
)
from bench.records.sample import (
    RLE,
    SAMPLES_SCHEMA_VERSION,
    RankedCandidateRecord,
    RankStepRecord,
    SampleRecord,
    SpendRecord,
    ToolCostRecord,
    parse_sample,
)
from bench.records.summary import (
    DEFAULT_PROTOCOL,
    SUMMARY_SCHEMA_VERSION,
    CostRow,
    Counts,
    EventLoopLag,
    GroupMetrics,
    MetricsSummary,
    RunLabel,
    Summary,
    Timing,
)

__all__ = [
    "CONFIG_SCHEMA_VERSION",
    "DEFAULT_PROTOCOL",
    "RLE",
    "SAMPLES_SCHEMA_VERSION",
    "SCHEMAS",
    "SUMMARY_SCHEMA_VERSION",
    "TRACE_SCHEMA_VERSION",
    "CostRow",
    "Counts",
    "DataFile",
    "DataSelection",
    "DatasetRecord",
    "EventBase",
    "EventLoopLag",
    "ExamplesRecord",
    "GroupMetrics",
    "MetricsSummary",
    "RankStepRecord",
    "RankedCandidateRecord",
    "ResultsConfig",
    "RunConfig",
    "RunLabel",
    "SampleRecord",
    "SpendRecord",
    "Summary",
    "Timing",
    "ToolCostRecord",
    "json_schema",
    "parse_event",
    "parse_sample",
]

# What `refseg bench schema NAME` prints: the file (or line) each one describes.
SCHEMAS: dict[str, tuple[str, TypeAdapter[Any]]] = {
    "samples": ("one line of samples.jsonl", TypeAdapter(SampleRecord)),
    "summary": ("summary.json", TypeAdapter(Summary)),
    "config": ("config.json", TypeAdapter(RunConfig)),
    "trace": ("one line of trace.jsonl", TRACE_EVENT),
}


# Records a current writer writes whole (model_dump): their schema is what it produces, every
# field required; the readers still take older files, defaulting what they lack.
WRITTEN_WHOLE = ("summary", "config")


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of record ``name`` (a key of :data:`SCHEMAS`): for ``summary`` and
    ``config``, what a current writer produces (``schema_version`` and every field it always
    writes required); for a result line and a trace event, what readers accept.

    Raises:
        KeyError: no such record.
    """
    what, adapter = SCHEMAS[name]
    schema = adapter.json_schema(mode="serialization" if name in WRITTEN_WHOLE else "validation")
    schema.setdefault("title", name)
    schema["description"] = f"refseg-loop {what}. " + str(schema.get("description", "")).strip()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
