"""What each page shows, as plain dicts for the templates (no HTTP here).

Pages look examples up by id in the records read from the run folders; nothing a request
sends is ever used as a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from agent.tracing import redact
from bench.data.registry import metric_columns, summary_protocol
from bench.metrics import rough_interval_note
from bench.records import Summary, ToolCostRecord
from bench.records.sample import as_rank_step
from bench.report.run_reader import RunView
from bench.report.tables import cost_table, episode_cost_table, health_table, kinds_text, run_cost_table
from bench.summary import run_label
from bench.viewer.images import DatasetImages
from bench.viewer.live_summary import Summaries
from bench.viewer.paired_view import paired_view
from bench.viewer.runs import RunFolder
from bench.viewer.segment_folder import SegmentFolder
from bench.viewer.table import TableQuery, ordered_rows, table_page
from bench.viewer.timeline import (
    episode_header,
    query_history,
    timeline,
    vlm_call_count,
    vlm_transcripts,
)

TABLE_PARAMS = ("sort", "desc", "stop", "iou_min", "iou_max", "failed", "change", "q", "page", "per")


def table_params(params: Mapping[str, str]) -> dict[str, str]:
    """The run page's own query parameters (an example page carries them to link back)."""
    return {k: params[k] for k in TABLE_PARAMS if params.get(k)}


def with_params(base: Mapping[str, str], **changes: Any) -> str:
    """``?query`` of ``base`` with ``changes`` applied (``None`` or ``""`` removes a key)."""
    merged = dict(base)
    for key, value in changes.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return "?" + urlencode(merged) if merged else "?"


def cost_tables(summary: Summary | None, name: str) -> list[dict[str, Any]]:
    """The report's cost tables (:mod:`bench.report.tables`) of one run's summary, without the run
    column: per tool, then the run's total; empty when the summary has no costs (yet)."""
    if summary is None or not summary.costs.tools:
        return []
    view = RunView(name, Path(), summary, np.zeros(0))
    out = []
    makers = (
        ("VLM health", health_table),
        ("Cost per tool", cost_table),
        ("The run's total cost", run_cost_table),
    )
    for title, make in makers:
        table = make([view])
        if table is not None:
            headers, rows = table
            out.append({"title": title, "headers": headers[1:], "rows": [row[1:] for row in rows]})
    return out


def metric_rows(summary: Summary | None) -> list[dict[str, Any]]:
    """The summary's metrics as the run page lists them: what the run's protocol defines (its
    label, value, 95% interval, description), headline first; for a protocol no installed
    adapter defines, the metrics the summary holds, by key."""
    if summary is None:
        return []
    m = summary.metrics
    protocol = summary_protocol(m.protocol)
    described = {x.key: x.description for x in protocol.metrics} if protocol is not None else {}
    rows = [
        {
            "key": key,
            "label": label,
            "value": m.value(key),
            "ci": m.ci(key),
            "description": described.get(key, ""),
            "headline": key == m.headline,
        }
        for key, label in metric_columns(m)
    ]
    return sorted(rows, key=lambda r: not r["headline"])  # stable: the protocol's order after


def breakdown_rows(summary: Summary | None) -> list[dict[str, Any]]:
    """Each breakdown (e.g. by object size): its label and, per group, ``n`` and its metrics."""
    if summary is None:
        return []
    m = summary.metrics
    protocol = summary_protocol(m.protocol)
    labels = {b.key: b.label for b in protocol.breakdowns} if protocol is not None else {}
    names = dict(metric_columns(m))
    out = []
    for key, groups in m.breakdowns.items():
        cells = [
            {
                "group": g,
                "n": stat.n,
                "metrics": [(names.get(k, k), v) for k, v in (stat.model_extra or {}).items()],
            }
            for g, stat in groups.items()
        ]
        out.append({"label": labels.get(key, key), "groups": cells})
    return out


def fault_chips(summary: Summary | None) -> list[str]:
    """Each fault the run saw, by name: counts (``tool errors 2``) and tallies by kind
    (``vlm errors by status: 429 2, 500 1``), as the report's health table words them."""
    if summary is None:
        return []
    chips = []
    for key, value in summary.faults.model_dump().items():
        label = key.replace("_", " ")
        if isinstance(value, dict) and value:
            chips.append(f"{label}: {kinds_text(value)}")
        elif isinstance(value, int) and not isinstance(value, bool) and value:
            chips.append(f"{label} {value}")
    return chips


def _run_info(run: RunFolder, summaries: Summaries) -> dict[str, Any]:
    summary = summaries.get(run)
    config = run.config()
    expected = run.expected()
    recorded = len(run.samples.records)
    return {
        "name": run.name,
        "path": str(run.path),
        "summary": summary,
        "label": run_label(config) if config is not None else None,
        "metrics": metric_rows(summary.data),
        "breakdowns": breakdown_rows(summary.data),
        "faults": fault_chips(summary.data),
        "rough": rough_interval_note(summary.data.counts.images) if summary.data is not None else "",
        "cost_tables": cost_tables(summary.data, run.name),
        "config": redact(config.model_dump(mode="json")) if config is not None else {},
        "config_error": run.config_error,
        "recorded": recorded,
        "expected": expected,
        "complete": expected is not None and recorded >= expected,
        "skipped_lines": run.samples.tail.skipped,
        "skipped_at": ", ".join(str(n) for n in run.samples.tail.skipped_at),
        "torn_tail": run.samples.tail.torn_tail_bytes > 0,
    }


def _random_weights(settings: Any) -> bool:
    return isinstance(settings, Mapping) and settings.get("weights") == "random"


def _result_random(result: Mapping[str, Any]) -> bool:
    """A ``refseg segment`` result.json made with random weights."""
    config = result.get("config")
    return _random_weights(config.get("settings") if isinstance(config, Mapping) else None)


def random_weight_names(a: RunFolder | SegmentFolder, b: RunFolder | None) -> list[str]:
    """The runs of the page (or the segment results) made with random weights: every page
    says so (a page of a single segment result narrows it to that result)."""
    names = []
    for run in (a, b):
        if isinstance(run, RunFolder):
            config = run.config()
            if config is not None and _random_weights(config.results.settings):
                names.append(run.name)
        elif isinstance(run, SegmentFolder):
            names += [r.rel for r in run.results() if _result_random(r.result)]
    return names


def run_page(
    run: RunFolder, run_b: RunFolder | None, params: Mapping[str, str], summaries: Summaries
) -> dict[str, Any]:
    """The run page: the summaries of RUN (and RUN_B) and one page of the examples table."""
    run.refresh()
    if run_b is not None:
        run_b.refresh()
    query = TableQuery.parse(params)
    page = table_page(run.samples.rows(), run_b.samples.rows() if run_b else None, query)
    base = table_params(params)
    a = _run_info(run, summaries)
    return {
        "a": a,
        "b": _run_info(run_b, summaries) if run_b else None,
        "paired": paired_view(run, run_b, a["summary"].data) if run_b else None,
        "page": page,
        "q": page.query,
        "params": base,
        "with_params": lambda **kw: with_params(base, **kw),
        "example_query": lambda example_id: with_params(base, id=example_id),
    }


def _neighbours(
    run: RunFolder, run_b: RunFolder | None, params: Mapping[str, str], example_id: str
) -> tuple[str | None, str | None, int, int]:
    """Previous and next example ids in the run page's filtered, sorted order, and the position."""
    rows_b = run_b.samples.rows() if run_b else None
    ids = [r.a.example_id for r in ordered_rows(run.samples.rows(), rows_b, TableQuery.parse(params)).rows]
    if example_id not in ids:
        return None, None, 0, len(ids)
    i = ids.index(example_id)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None), i + 1, len(ids)


def _side(run: RunFolder, which: str, example_id: str, images: DatasetImages) -> dict[str, Any] | None:
    record = run.record(example_id)
    if record is None:
        return None
    spec = run.data_spec()
    pixels, image_error = images.pixels(spec, example_id)
    _, gt_error = images.ground_truth(spec, example_id)
    episodes = run.trace.episodes(example_id)
    last = episodes[-1] if episodes else None
    return {
        "which": which,
        "name": run.name,
        "record": redact(record.model_dump(mode="json", exclude={"mask", "rank_steps"})),
        "row": run.samples.row(example_id),
        "image_error": image_error,
        "has_image": pixels is not None,
        "gt_error": gt_error,
        "has_pred": record.mask is not None,
        "perturb": spec.perturb if spec is not None else "clean",
        "queries": query_history(record.queries, last),
        "episodes": len(episodes),
        "header": episode_header(last) if last else {},
        "timeline": timeline(last) if last else [],
        "trace_exists": run.trace.exists,
        "costs": episode_cost_table(record.costs),
        "rank_steps": rank_steps_view(run.rank_steps(example_id)),
        "vlm": vlm_transcripts(last),
        "vlm_calls": vlm_call_count(last),
        "picture_query": f"/img/{which}/candidate.png?{urlencode({'id': example_id})}&",
        "vlm_query": f"/img/{which}/vlm.png?{urlencode({'id': example_id})}&",
    }


def rank_steps_view(steps: Any) -> list[dict[str, Any]] | None:
    """A record's ``rank_steps`` for the page (``None``: not recorded), each candidate
    numbered for its picture's URL (a ``refseg segment`` result's are JSON, checked here)."""
    if not isinstance(steps, list):
        return None
    out = []
    for i, raw in enumerate(steps):
        step = as_rank_step(raw)
        if step is None:
            continue
        cands = [
            {"j": j, "index": c.index, "prob": c.prob, "origin": c.origin, "has_mask": c.mask is not None}
            for j, c in enumerate(step.candidates)
        ]
        out.append({"i": i, "step": step.step, "query": step.query, "candidates": cands})
    return out


def example_page(
    run: RunFolder,
    run_b: RunFolder | None,
    example_id: str,
    params: Mapping[str, str],
    images: DatasetImages,
) -> dict[str, Any] | None:
    """The example page, or ``None`` when RUN has no such example."""
    run.refresh()
    if run_b is not None:
        run_b.refresh()
    a = _side(run, "a", example_id, images)
    if a is None:
        return None
    b = _side(run_b, "b", example_id, images) if run_b else None
    prev_id, next_id, position, count = _neighbours(run, run_b, params, example_id)
    base = table_params(params)
    return {
        "example_id": example_id,
        "sides": [s for s in (a, b) if s is not None],
        "b_missing": run_b is not None and b is None,
        "run_b_name": run_b.name if run_b else None,
        "back": with_params(base),
        "prev": with_params(base, id=prev_id) if prev_id else None,
        "next": with_params(base, id=next_id) if next_id else None,
        "position": position,
        "count": count,
        "id_query": urlencode({"id": example_id}),
    }


def segment_index(folder: SegmentFolder) -> dict[str, Any]:
    return {"folder": folder, "results": folder.results()}


def segment_result(folder: SegmentFolder, n: int, images: DatasetImages) -> dict[str, Any] | None:
    result = folder.result(n)
    if result is None:
        return None
    trace = folder.trace_for(result)
    sample_id = str(result.result.get("sample_id", ""))
    episodes = trace.episodes(sample_id) if trace is not None and sample_id else []
    last = episodes[-1] if episodes else None
    count = len(folder.results())
    return {
        "random_weights": [result.rel] if _result_random(result.result) else [],
        "folder": folder,
        "res": result,
        "result": redact({k: v for k, v in result.result.items() if k != "config"}),
        "config": redact(result.result.get("config") or {}),
        "pictures": [name for name in ("overlay.png", "mask.png") if result.picture(name) is not None],
        "queries": query_history([str(q) for q in result.result.get("queries") or []], last),
        "timeline": timeline(last) if last else [],
        "episodes": len(episodes),
        "trace_exists": trace is not None,
        "costs": episode_cost_table(_costs(result.result.get("costs"))),
        "rank_steps": rank_steps_view(result.result.get("rank_steps")),
        "has_image": images.file_pixels(result.result.get("image")) is not None,
        "vlm": vlm_transcripts(last),
        "vlm_calls": vlm_call_count(last),
        "picture_query": f"/result/{n}/candidate.png?",
        "vlm_query": f"/result/{n}/vlm.png?",
        "prev": n - 1 if n > 0 else None,
        "next": n + 1 if n + 1 < count else None,
    }


def _costs(raw: Any) -> dict[str, ToolCostRecord]:
    """A ``refseg segment`` result's per-tool costs (entries that are not costs left out)."""
    out = {}
    for tool, row in (raw or {}).items() if isinstance(raw, dict) else ():
        if not isinstance(row, dict) or "calls" not in row:
            continue
        try:
            out[str(tool)] = ToolCostRecord.model_validate(row)
        except ValueError:
            continue
    return out
