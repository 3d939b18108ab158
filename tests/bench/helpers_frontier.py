"""Helpers of the frontier tests: real runs at several thresholds, and the replay beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers_runner import run

from bench.data import Example
from bench.data.registry import protocol_named
from bench.frontier.points import PointEvaluator
from bench.frontier.replay import replay_run, replayed_records
from bench.frontier.source import read_source
from bench.options import DataSpec, VLMOptions
from bench.samples import read_samples

PAIRS = ((0.5, 0.2), (0.3, 0.1), (0.7, 0.4))


def runs_at(
    root: Path,
    examples: list[Example],
    n: int,
    pairs: tuple[tuple[float, float], ...],
    *,
    url: str | None = None,
    refiner: str = "rules",
    **episode: Any,
) -> dict[tuple[float, float], Path]:
    """One real run per threshold pair (each with its own memory-only cache: no run reuses
    another's answers), ``(1.0, 1.0)`` first."""
    out = {}
    for tau in ((1.0, 1.0), *pairs):
        folder = root / f"{episode.get('controller', 'loop')}_{refiner}_{tau[0]:g}_{tau[1]:g}"
        run(
            folder,
            None,
            examples,
            spec=DataSpec("synthetic", n=n),
            episode={"tau_conf": tau[0], "tau_gap": tau[1], **episode},
            models={"refiner": refiner},
            vlm=VLMOptions(base_url=url) if url else None,
            concurrency=8,
        )
        out[tau] = folder
    return out


def compare_with_replay(ask: Path, real: Path, tau: tuple[float, float]) -> dict[str, Any]:
    """Assert that the replay of ``ask`` at ``tau`` is the real run ``real``, example by example
    and in total; return what the real run did (for the caller's checks)."""
    episodes = replay_run(read_source(ask))
    replayed = replayed_records(episodes, *tau)
    records, _ = read_samples(real)
    assert set(records) == set(replayed)
    for eid, rec in records.items():
        out = replayed[eid]
        assert out.record is not None, eid
        got = out.record
        assert (got.chosen, got.iou, got.inter, got.union, got.stop_reason, got.iterations) == (
            rec.chosen,
            rec.iou,
            rec.inter,
            rec.union,
            rec.stop_reason,
            rec.iterations,
        ), eid
        assert got.queries == rec.queries, eid
        assert rec.spent is not None and out.spend.vlm_calls == rec.spent.vlm_calls, eid
        assert out.spend.asks == rec.spent.asks, eid
        assert abs(out.spend.cold_usd - rec.spent.usd) < 1e-9, eid  # fresh caches: spent = cold
        assert got.needed_vlm == rec.needed_vlm, eid
        assert got.mask == rec.mask, eid
    config = read_source(real).config
    protocol = protocol_named(config.results.dataset.protocol if config.results.dataset else "mask-iou")
    point = PointEvaluator(episodes, protocol, bootstrap=0).point(*tau)
    in_order = sorted(records.values(), key=lambda r: r.index)  # as summary.json sums them
    real_miou = protocol.metric("miou").value(in_order)
    assert point.value == real_miou
    assert point.metrics["ciou"] == protocol.metric("ciou").value(in_order)
    calls = sum(r.spent.vlm_calls for r in records.values() if r.spent)
    assert round(point.vlm_calls_per_1k * len(records) / 1000) == calls
    return {
        "miou": real_miou,
        "vlm_calls": calls,
        "asks": sum(r.spent.asks for r in records.values() if r.spent),
        "stops": sorted(r.stop_reason for r in records.values()),
        "late_guard": sum(r.stop_reason == "guard" and r.iterations > 0 for r in records.values()),
    }
