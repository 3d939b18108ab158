"""``refseg bench frontier-check``: the replay against real runs, side by side.

On generated scenes with the offline toolset, each controller (``loop`` with the rules
refiner, ``loop`` with a scripted VLM refiner over real HTTP and the real ``openai`` client,
``ground`` against a jittered oracle box VLM) runs once at thresholds 1/1 and once at each
checked pair, every run with its own memory-only cache (so each real run asks the VLM
itself). The frontier is replayed from the 1/1 run and compared with each real run, example by
example (chosen candidate, IoU, stop reason, rounds, VLM calls, refiner calls) and in total
(the headline metric, VLM calls, USD). Exit 1 when anything differs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.episode import EpisodeConfig
from bench.benchmarks.frontier_check_setups import DEFAULT_PAIRS, SETUPS
from bench.data import Example, load_dataset_spec
from bench.doubles.oracle_vlm import OracleVLM, Target
from bench.doubles.scripted_refiner import ScriptedRefiner, synthetic_rewrites
from bench.doubles.scripted_server import ScriptedServer
from bench.frontier.points import PER, PointEvaluator
from bench.frontier.replay import Outcome, replay_run, replayed_records
from bench.frontier.source import read_source
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, RunOptions, VLMOptions
from bench.records import SampleRecord
from bench.report.tables import fmt
from bench.runner import run_examples_sync
from bench.runtime import build_runtime
from bench.samples import read_samples, read_summary

ALWAYS = (1.0, 1.0)


@dataclass
class CheckRow:
    """One real run against the replay at its thresholds."""

    setup: str
    tau_conf: float
    tau_gap: float
    n: int
    real_value: float | None
    replay_value: float | None
    real_vlm_calls: int
    replay_vlm_calls: int
    real_usd: float
    replay_usd: float
    mismatches: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return (
            not self.mismatches
            and self.real_value == self.replay_value
            and self.real_vlm_calls == self.replay_vlm_calls
            and abs(self.real_usd - self.replay_usd) < 1e-9
        )


def outcome_fields(rec: SampleRecord) -> tuple[object, ...]:
    """What must agree between a real run's record and the replay's."""
    spent = rec.spent
    return (
        rec.chosen,
        rec.iou,
        rec.stop_reason,
        rec.iterations,
        spent.vlm_calls if spent else None,
        spent.asks if spent else None,
    )


def replay_fields(out: Outcome | None) -> tuple[object, ...] | None:
    """:func:`outcome_fields` of a replayed outcome (``None``: none, or not replayable)."""
    if out is None or out.record is None:
        return None
    rec = out.record
    return (rec.chosen, rec.iou, rec.stop_reason, rec.iterations, out.spend.vlm_calls, out.spend.asks)


def compare(setup: str, ask_dir: Path, real_dir: Path, tau: tuple[float, float]) -> CheckRow:
    """The replay of ``ask_dir`` at ``tau`` against the real run ``real_dir``."""
    src = read_source(ask_dir)
    episodes = replay_run(src)
    replayed: dict[str, Outcome] = replayed_records(episodes, *tau)
    real, _ = read_samples(real_dir)
    point = PointEvaluator(episodes, src.protocol, bootstrap=0).point(*tau)
    mismatches = []
    for eid, rec in sorted(real.items()):
        got = replay_fields(replayed.get(eid))
        if got != outcome_fields(rec):
            mismatches.append(f"{eid}: real {outcome_fields(rec)} replay {got}")
    headline = src.protocol.metric(src.protocol.headline)
    summary = read_summary(real_dir)
    n = len(real)
    return CheckRow(
        setup,
        tau[0],
        tau[1],
        n,
        summary.metrics.value(headline.key) if summary is not None else None,  # what the run reported
        point.value,
        sum(r.spent.vlm_calls if r.spent else 0 for r in real.values()),
        round(point.vlm_calls_per_1k * n / PER),
        sum(r.spent.usd if r.spent else 0.0 for r in real.values()),
        point.usd_per_1k * n / PER,
        mismatches,
    )


def _examples(n: int) -> list[Example]:
    return load_dataset_spec("synthetic", n)


def _oracle(examples: Sequence[Example], jitter: float) -> OracleVLM:
    targets = {}
    for ex in examples:
        mask = ex.gt_mask()
        ys, xs = np.nonzero(mask)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        targets[ex.sentence] = Target(box, (mask.shape[1], mask.shape[0]), ex.sentence)
    return OracleVLM(targets, jitter=jitter)


def _run(out: Path, examples: list[Example], n: int, setup: str, tau: tuple[float, float], url: str) -> Path:
    controller, refiner = SETUPS[setup]
    options = EpisodeOptions(
        models=ModelOptions(toolset="offline", refiner=refiner),  # type: ignore[arg-type]
        episode=EpisodeConfig(controller=controller, tau_conf=tau[0], tau_gap=tau[1]),
        vlm=VLMOptions(base_url=url),
        cache=CacheOptions(enabled=False),
    )
    run_dir = out / f"{setup}_{tau[0]:g}_{tau[1]:g}"
    rt = build_runtime(options)
    try:
        run_examples_sync(
            rt, examples, run_dir, DataSpec("synthetic", n=n), RunOptions(quiet=True, bootstrap=0)
        )
    finally:
        rt.close()
    return run_dir


def run_frontier_check(
    n: int = 3,
    pairs: Sequence[tuple[float, float]] = DEFAULT_PAIRS,
    setups: Sequence[str] = tuple(SETUPS),
    out: Path | None = None,
) -> list[CheckRow]:
    """Run every setup at 1/1 and at ``pairs``; compare each real run with the replay."""
    examples = _examples(n)
    policy = ScriptedRefiner(synthetic_rewrites(n), fallback=_oracle(examples, jitter=0.3))
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(policy=policy, max_requests=1_000_000) as srv:
        folder = out or Path(tmp)
        for setup in setups:
            ask = _run(folder, examples, n, setup, ALWAYS, srv.base_url)
            for tau in pairs:
                real = _run(folder, examples, n, setup, tau, srv.base_url)
                rows.append(compare(setup, ask, real, tau))
    return rows


def check_table(rows: Sequence[CheckRow]) -> str:
    """The comparison as a markdown table."""
    lines = [
        "| setup | tau_conf | tau_gap | expressions | mIoU real | mIoU replay | VLM calls real | VLM calls "
        "replay | USD real | USD replay | examples that differ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.setup} | {r.tau_conf:g} | {r.tau_gap:g} | {r.n} | {fmt(r.real_value, 6)} | "
            f"{fmt(r.replay_value, 6)} | {r.real_vlm_calls} | {r.replay_vlm_calls} | {r.real_usd:.6f} | "
            f"{r.replay_usd:.6f} | {len(r.mismatches)} |"
        )
    return "\n".join(lines)
