"""A run folder read for replaying its guard: its configuration, protocol and ranking steps.

A run made at ``tau_conf = tau_gap = 1`` asks for help whenever it can, and for ``loop`` and
``ground`` every other threshold pair's episode is a prefix of that one (see
:mod:`bench.frontier.replay`), so its records hold every pair's outcome. They need what
version 2 of the records carries: each ranking step's exact conf and gap, what the episode
had spent by then, and each candidate's score against the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.protocol import EvalProtocol
from bench.records import RunConfig, SampleRecord
from bench.run_folder import run_protocol
from bench.samples import SAMPLES, read_config, scan_samples
from tools.errors import InputError

# Controllers whose episodes the guard replay knows (bench.frontier.replay).
REPLAYABLE = ("loop", "ground", "agent")


class FrontierError(InputError):
    """A run the guard cannot be replayed from (what to do is in the message)."""


@dataclass(frozen=True)
class FrontierSource:
    """A run read for the replay.

    Attributes:
        name: how tables and figures name it (the folder's name).
        run_dir: the run folder.
        config: its ``config.json``.
        protocol: the protocol that scores it (its headline metric is the frontier's).
        records: the last record of each example, in example order, with ranking steps.
        notes: what the reader skipped (unreadable lines), one line each.
    """

    name: str
    run_dir: Path
    config: RunConfig
    protocol: EvalProtocol
    records: list[SampleRecord]
    notes: tuple[str, ...] = ()

    @property
    def episode(self) -> dict[str, object]:
        return self.config.results.episode

    @property
    def controller(self) -> str:
        return str(self.episode.get("controller", "?"))

    @property
    def ranker(self) -> str:
        return str(self.episode.get("ranker", "?"))

    @property
    def thresholds(self) -> tuple[float, float]:
        """The ``(tau_conf, tau_gap)`` the run was made at."""
        return _float(self.episode.get("tau_conf"), 0.5), _float(self.episode.get("tau_gap"), 0.2)

    @property
    def pick(self) -> str:
        return str(self.episode.get("pick", "best"))

    @property
    def always_asks(self) -> bool:
        return self.thresholds == (1.0, 1.0)

    @property
    def warm_start(self) -> bool:
        """``agent`` only: whether it ranked before its first VLM turn."""
        options = self.episode.get("controller_options")
        agent = options.get("agent", {}) if isinstance(options, dict) else {}
        return bool(agent.get("warm_start", True)) if isinstance(agent, dict) else True


def _float(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def read_source(run_dir: str | Path, name: str | None = None) -> FrontierSource:
    """Read a run folder with its ranking steps (any thresholds; see :func:`check_replayable`).

    Raises:
        FrontierError: not a run folder, or a run without ``config.json``.
        DatasetError: no installed adapter defines the run's protocol.
    """
    path = Path(run_dir)
    if not (path / SAMPLES).exists():
        raise FrontierError(f"{path}: not a run folder (no {SAMPLES}); make one with `refseg bench run`")
    config = read_config(path)
    if config is None:
        raise FrontierError(f"{path}: no config.json, so its controller and thresholds are unknown")
    scan = scan_samples(path, rank_steps=True)
    records = sorted(scan.records.values(), key=lambda r: r.index)
    return FrontierSource(
        name or path.name or str(path), path, config, run_protocol(config), records, tuple(scan.notes())
    )


def how_to_make(src: FrontierSource) -> str:
    """The advice: a run of the same configuration at thresholds 1/1."""
    controller = src.controller if src.controller in REPLAYABLE else "loop"
    return (
        f"make one with `refseg bench run ... --controller {controller} --tau-conf 1 --tau-gap 1 "
        "--out RUN_ASK` (the same options otherwise; `refseg bench suite` makes loop_ask)"
    )


def check_replayable(src: FrontierSource) -> None:
    """Refuse a run the replay cannot use, saying what to do.

    Raises:
        FrontierError: another controller, thresholds other than 1/1, no records, or records
            written before ranking steps carried conf, gap and scores (version < 2).
    """
    if src.controller not in REPLAYABLE:
        what = "never asks for help" if src.controller == "oneshot" else "has no guard replay"
        raise FrontierError(
            f"{src.run_dir} is a {src.controller} run, which {what}: the frontier replays "
            f"{', '.join(REPLAYABLE)} runs; {how_to_make(src)}"
        )
    if not src.always_asks:
        tc, tg = src.thresholds
        raise FrontierError(
            f"{src.run_dir} was made at tau_conf={tc:g}, tau_gap={tg:g}: its episodes stop early, "
            f"so other thresholds' outcomes are not in it; {how_to_make(src)}"
        )
    if src.controller == "agent" and not src.warm_start:
        raise FrontierError(
            f"{src.run_dir} is an agent run without warm start: its first ranking is the VLM's "
            "own, so no threshold decision can be replayed; run it with --agent-warm-start true"
        )
    if not src.records:
        raise FrontierError(f"{src.run_dir} has no finished example yet; run it first")
    old = [r for r in src.records if r.rank_steps and not scored(r)]
    if old:
        raise FrontierError(
            f"{src.run_dir}: {len(old)} of {len(src.records)} records were written before ranking "
            "steps carried conf, gap and candidate IoUs (samples schema version "
            f"{old[0].schema_version}); rerun into a new --out"
        )


def scored(rec: SampleRecord) -> bool:
    """Whether the record's steps carry what the replay reads (version 2 and later)."""
    return all(s.conf is not None and s.gap is not None and s.spent is not None for s in rec.rank_steps)
