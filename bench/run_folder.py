"""The run folder's bookkeeping: the result-defining config, invocations, the summary files.

``config.json`` (:class:`bench.records.RunConfig`) holds ``{"schema_version", "results",
"run"}``: ``results`` is everything that changes per-example results (episode config, tool
settings, VLM model, data selection, what the data set's adapter read with the files'
digests, and the examples' digest), derived from the option objects, and is compared on resume;
``run`` says how the first invocation ran (concurrency, device). Every result line carries
:func:`config_digest` of ``results`` too, so a resume with another configuration is refused
even when ``config.json`` was deleted or damaged.

``invocations.jsonl`` gets a ``start`` line when an invocation begins and an ``end`` line
when it finishes; a start without an end is an invocation that was killed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.protocol import EvalProtocol
from bench.data.registry import protocol_named
from bench.data.stream import ExampleIndex
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.options import DataSpec
from bench.records import CONFIG_SCHEMA_VERSION, DatasetRecord, RunConfig, Summary
from bench.runtime import Runtime, describe_config, result_settings
from bench.samples import (
    CONFIG,
    INVOCATIONS,
    IOUS,
    SAMPLES,
    SUMMARY,
    TRACE,
    config_differences,
    read_config,
    read_json,
    read_samples,
    write_json,
)
from bench.summary import build_summary, trace_faults
from checkpoints.registry import hashed_path
from tools.errors import ConfigError


def result_config(rt: Runtime, spec: DataSpec, dataset: DatasetRecord, index: ExampleIndex) -> dict[str, Any]:
    """The settings that change results: compared on resume (device, paths and timeouts excluded)."""
    described = describe_config(rt)
    return json.loads(
        json.dumps(
            {
                "episode": described["episode"],
                "settings": result_settings(rt),
                "vlm": described["vlm"],
                "data": asdict(spec),
                "dataset": dataset.model_dump(mode="json"),
                "examples": _examples_entry(index),
            },
            default=str,
        )
    )


def config_digest(results: dict[str, Any]) -> str:
    """A short digest of the result-defining configuration (stamped on every result line)."""
    text = json.dumps(results, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _examples_entry(index: ExampleIndex) -> dict[str, Any]:
    """Count and digest of the examples, and what the loader dropped (only when it did)."""
    entry: dict[str, Any] = {"count": len(index), "digest": index.digest}
    if index.dropped:
        entry["dropped"] = dict(index.dropped)
    return entry


def check_config(
    run_dir: Path,
    results: dict[str, Any],
    run_info: dict[str, Any],
    *,
    recorded: bool = True,
    digests: Collection[str | None] = (),
) -> str | None:
    """Write ``config.json`` on the first run; on resume, refuse a different configuration.

    Args:
        recorded: the run folder holds at least one example's record. Without one (e.g. the
            first invocation stopped on a missing checkpoint) a new configuration replaces
            the old one: there is no result it could contradict.
        digests: the ``config_digest`` of each recorded line (``None`` for lines written
            before lines carried one). Any other digest than this configuration's is refused,
            whatever ``config.json`` says; a missing or unreadable ``config.json`` is rewritten
            when every line carries this configuration's digest.

    Returns:
        A note when ``config.json`` was replaced or rewritten (else ``None``).

    Raises:
        ConfigError: the run folder holds results of another configuration, or results no
            configuration can be told for.
    """
    path = run_dir / CONFIG
    digest = config_digest(results)
    vouched = bool(digests) and all(d == digest for d in digests)  # every line says: this config
    try:
        old = read_json(path)
    except ConfigError:
        if recorded and not vouched:
            _check_line_digests(run_dir, digest, digests)
            raise
        old = None  # damaged, but the lines say which configuration made them: rewrite it
    if old is not None and "results" in old:
        diffs = config_differences(old["results"], results)
        if diffs and not recorded:
            _write_config(path, results, run_info)
            return "no example was recorded yet: config.json now holds this configuration"
        if diffs:
            advice = (
                "it was written by an older refseg-loop (config.json without schema_version): "
                f"finish it with that version or pick a new --out (`refseg bench report {run_dir}` "
                "still reads it)"
                if "schema_version" not in old
                else "resume it with the same options or pick a new --out"
            )
            raise ConfigError(
                f"{run_dir} holds a run with a different configuration ("
                + "; ".join(diffs[:6])
                + ("; ..." if len(diffs) > 6 else "")
                + f"); {advice}"
            )
        _check_line_digests(run_dir, digest, digests)
        if recorded:
            _check_weights(run_dir, old.get("run", {}).get("weights"), run_info.get("weights"))
        return None
    _check_line_digests(run_dir, digest, digests)
    if recorded and not vouched:
        raise ConfigError(
            f"{path} is missing and {run_dir / SAMPLES} holds results without a configuration "
            "digest: which configuration made them cannot be told; pick a new --out"
        )
    _write_config(path, results, run_info)
    if recorded:
        return (
            "config.json was missing or unreadable: rewritten, since every result line carries "
            "this configuration's digest"
        )
    return None


def _write_config(path: Path, results: dict[str, Any], run_info: dict[str, Any]) -> None:
    """Write ``config.json`` as a :class:`bench.records.RunConfig` (checked before written)."""
    config = {"schema_version": CONFIG_SCHEMA_VERSION, "results": results, "run": run_info}
    RunConfig.model_validate(config)
    write_json(path, config)


_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")


def _check_weights(run_dir: Path, before: Any, now: Any) -> None:
    """Refuse a resume whose weights files are not the ones the run began with (a file swapped
    at the same path). Their digests are in ``run``, not in ``results`` (a tool whose file this
    process cannot see, on a Ray node elsewhere, records why instead), so they are compared
    here, tool by tool, where both sides name a digest; the rest of a fingerprint (model type,
    precision, random weights) is in ``results``."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return  # written before weights were recorded
    for tool, old in before.items():
        new = now.get(tool)
        old_hash = _SHA256.search(old) if isinstance(old, str) else None
        new_hash = _SHA256.search(new) if isinstance(new, str) else None
        if old_hash is None or new_hash is None or old_hash[1] == new_hash[1]:
            continue
        path = hashed_path(new_hash[1])
        raise ConfigError(
            f"{run_dir} was run with other {tool} weights: {path or 'its weights file'} now has sha256 "
            f"{new_hash[1][:12]}..., the run began with {old_hash[1][:12]}...; put that file back or "
            "pick a new --out"
        )


def _check_line_digests(run_dir: Path, digest: str, digests: Collection[str | None]) -> None:
    others = sorted({d for d in digests if d is not None and d != digest})
    if others:
        raise ConfigError(
            f"{run_dir / SAMPLES} holds results of another configuration (digest {others[0]}; "
            f"these options make {digest}); resume it with the options it was started with "
            "(see config.json, if it is still there) or pick a new --out"
        )


def read_invocations(run_dir: Path) -> list[dict[str, Any]]:
    """The invocations of ``invocations.jsonl``, oldest first, each with ``ended``.

    A ``start`` line and its ``end`` line (same ``run_id``) make one invocation; a start
    without an end was killed (``ended: False``). Lines of older files (no ``event``) are
    finished invocations. Unreadable lines are skipped.
    """
    path = run_dir / INVOCATIONS
    if not path.exists():
        return []
    merged: dict[str, dict[str, Any]] = {}
    for number, raw in enumerate(path.read_bytes().splitlines()):
        try:
            line = json.loads(raw)
        except ValueError:  # a torn or undecodable line
            continue
        if not isinstance(line, dict):
            continue
        key = str(line.get("run_id") or f"line-{number}")
        event = line.pop("event", None)
        entry = merged.setdefault(key, {})
        entry.update(line)
        entry["ended"] = event != "start" or entry.get("ended", False)
    return list(merged.values())


def start_invocation(run_dir: Path, invocation: dict[str, Any]) -> None:
    """Add the ``start`` line of an invocation to ``invocations.jsonl``."""
    _append_line(run_dir / INVOCATIONS, {"event": "start", **invocation})


def append_invocation(run_dir: Path, invocation: dict[str, Any]) -> None:
    """Add the ``end`` line of an invocation to ``invocations.jsonl``."""
    _append_line(run_dir / INVOCATIONS, {"event": "end", **invocation})


def _append_line(path: Path, data: dict[str, Any]) -> None:
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, 2)
            torn = fh.read(1) != b"\n"  # a line torn by a kill must not swallow this one
    with path.open("ab") as fh:
        fh.write((b"\n" if torn else b"") + (json.dumps(data, default=str) + "\n").encode("utf-8"))


def recorded_data(config: RunConfig | None) -> DataSpec | None:
    """The data selection a run recorded (``results.data``), or ``None`` when it has none."""
    data = config.results.data if config is not None else None
    if data is None:
        return None
    known = set(DataSpec.__dataclass_fields__)
    return DataSpec(**{k: v for k, v in data.model_dump().items() if k in known})


def run_protocol(config: RunConfig | None) -> EvalProtocol:
    """The protocol a run is scored with: the one its data set's adapter recorded in
    ``config.json`` (runs from before protocols were named: ``mask-iou``).

    Raises:
        DatasetError: no installed adapter defines that protocol.
    """
    dataset = config.results.dataset if config is not None else None
    return protocol_named(dataset.protocol if dataset is not None else "mask-iou")


def write_outputs(
    run_dir: Path,
    order: Sequence[str] | None = None,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    protocol: EvalProtocol | None = None,
) -> Summary:
    """Recompute ``summary.json`` and ``ious.npy`` from the run folder's files.

    Args:
        run_dir: the run folder.
        order: the example ids in the data set's order (``None``: the records' ``index`` order).
        bootstrap: resamples for the confidence intervals.
        protocol: how the run is scored (``None``: the one ``config.json`` records).
    """
    records, _ = read_samples(run_dir)
    invocations = read_invocations(run_dir)
    config = read_config(run_dir) or RunConfig()
    if order is None:
        order = [r.example_id for r in sorted(records.values(), key=lambda r: r.index)]
    examples = config.results.examples
    expected = examples.count if examples is not None else len(order)
    faults = trace_faults(run_dir / TRACE)
    summary = build_summary(
        records,
        order,
        invocations,
        config,
        protocol or run_protocol(config),
        expected=expected,
        bootstrap=bootstrap,
        traced_faults=faults,
    )
    ious = np.array([records[eid].iou for eid in order if eid in records], dtype=np.float64)
    np.save(run_dir / IOUS, ious)
    write_json(run_dir / SUMMARY, summary.model_dump(mode="json"))
    return summary
