"""The run folder's bookkeeping: the result-defining config, invocations, the summary files.

``config.json`` holds ``{"results": ..., "run": ...}``: ``results`` is everything that
changes per-example results (episode config, tool settings, VLM model, data selection and
the examples' digest), derived from the option objects, and is compared on resume;
``run`` says how the first invocation ran (concurrency, device).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Example
from bench.options import DataSpec
from bench.runtime import Runtime, describe_config, result_settings
from bench.samples import (
    CONFIG,
    INVOCATIONS,
    IOUS,
    SUMMARY,
    TRACE,
    config_differences,
    read_json,
    read_samples,
    write_json,
)
from bench.summary import build_summary, trace_faults
from tools.errors import ConfigError


def examples_digest(examples: Sequence[Example]) -> str:
    """A short digest of the example ids and sentences (which examples a run holds)."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(f"{ex.example_id}\x00{ex.sentence}\x01".encode())
    return h.hexdigest()[:16]


def result_config(rt: Runtime, spec: DataSpec, examples: Sequence[Example]) -> dict[str, Any]:
    """The settings that change results: compared on resume (device, paths and timeouts excluded)."""
    described = describe_config(rt)
    return json.loads(
        json.dumps(
            {
                "episode": described["episode"],
                "settings": result_settings(rt),
                "vlm": described["vlm"],
                "data": asdict(spec),
                "examples": {"count": len(examples), "digest": examples_digest(examples)},
            },
            default=str,
        )
    )


def check_config(
    run_dir: Path, results: dict[str, Any], run_info: dict[str, Any], *, recorded: bool = True
) -> bool:
    """Write ``config.json`` on the first run; on resume, refuse a different configuration.

    Args:
        recorded: the run folder holds at least one example's record. Without one (e.g. the
            first invocation stopped on a missing checkpoint) a new configuration replaces
            the old one: there is no result it could contradict.

    Returns:
        True when a different configuration was replaced.
    """
    path = run_dir / CONFIG
    old = read_json(path)
    if old is not None and "results" in old:
        diffs = config_differences(old["results"], results)
        if diffs and not recorded:
            write_json(path, {"results": results, "run": run_info})
            return True
        if diffs:
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration ("
                + "; ".join(diffs[:6])
                + ("; ..." if len(diffs) > 6 else "")
                + "); resume it with the same options or pick a new --out"
            )
        return False
    write_json(path, {"results": results, "run": run_info})
    return False


def read_invocations(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``invocations.jsonl`` (unreadable ones skipped)."""
    path = run_dir / INVOCATIONS
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def append_invocation(run_dir: Path, invocation: dict[str, Any]) -> None:
    """Add one line to ``invocations.jsonl``."""
    with (run_dir / INVOCATIONS).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(invocation) + "\n")


def write_outputs(
    run_dir: Path, examples: Sequence[Example] | None = None, *, bootstrap: int = 2000
) -> dict[str, Any]:
    """Recompute ``summary.json`` and ``ious.npy`` from the run folder's files."""
    records, _ = read_samples(run_dir)
    invocations = read_invocations(run_dir)
    config = read_json(run_dir / CONFIG) or {}
    if examples is not None:
        order = [ex.example_id for ex in examples]
    else:
        order = [r["example_id"] for r in sorted(records.values(), key=lambda r: r.get("index", 0))]
    expected = int(config.get("results", {}).get("examples", {}).get("count", len(order)))
    faults = trace_faults(run_dir / TRACE)
    summary = build_summary(
        records, order, invocations, config, expected=expected, bootstrap=bootstrap, traced_faults=faults
    )
    ious = np.array([records[eid]["iou"] for eid in order if eid in records], dtype=np.float64)
    np.save(run_dir / IOUS, ious)
    write_json(run_dir / SUMMARY, summary)
    return summary
