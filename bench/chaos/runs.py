"""The scorecard's runs: quick offline bench runs through the library API, in or out of process.

Every row runs real bench runs on generated scenes with the offline toolset (no weights). In
process, :func:`run_offline` calls :func:`bench.runner.run_examples`; out of process (to kill
a run, or to share a cache between two processes), :func:`spawn_offline` starts
``python -m bench.chaos.worker`` with the same :class:`OfflineRun` as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from agent.episode import EpisodeConfig
from bench.options import (
    BenchOptions,
    CacheOptions,
    DataSpec,
    EngineOptions,
    EpisodeOptions,
    ModelOptions,
    RunOptions,
    VLMOptions,
)
from bench.runner import run_examples
from bench.runtime import build_runtime
from bench.samples import WriteHook

BACKOFF_S = (0.01, 0.05)  # base and cap: faults are retried at once, runs stay short


@dataclass(frozen=True)
class OfflineRun:
    """A quick offline bench run (generated scenes, the offline toolset).

    Attributes:
        run_dir: the run folder.
        cache_dir: the disk cache (``None``: no disk cache).
        n: scenes (``None`` with a parquet ``dataset``: all rows).
        dataset: ``synthetic`` or a parquet file.
        episode: controller, guards and budgets (:class:`EpisodeConfig` fields).
        vlm: VLM endpoint fields (:class:`VLMOptions` fields); retries back off briefly.
        bootstrap: bootstrap resamples.
        concurrency: examples in flight.
        engine: engine fields (:class:`EngineOptions` fields; empty: the local engine).
        limit: run at most this many new examples (``None``: all).
        cache_timeout_s: the cache's lock timeout (``None``: the default).
        data: other :class:`DataSpec` fields (e.g. ``allow_outside_paths``).
    """

    run_dir: Path
    cache_dir: Path | None = None
    n: int | None = 2
    dataset: str = "synthetic"
    episode: dict[str, Any] = field(default_factory=dict)
    vlm: dict[str, Any] = field(default_factory=dict)
    bootstrap: int = 0
    concurrency: int = 8
    engine: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    cache_timeout_s: float | None = None

    def options(self) -> BenchOptions:
        """The run as :class:`bench.options.BenchOptions`."""
        vlm = {"backoff_base_s": BACKOFF_S[0], "backoff_max_s": BACKOFF_S[1], **self.vlm} if self.vlm else {}
        return BenchOptions(
            out=Path(self.run_dir),
            episode=EpisodeOptions(
                models=ModelOptions(toolset="offline"),
                episode=EpisodeConfig(**self.episode),
                vlm=VLMOptions(**vlm),
                cache=CacheOptions(
                    directory=self.cache_dir,
                    enabled=self.cache_dir is not None,
                    **({} if self.cache_timeout_s is None else {"timeout_s": self.cache_timeout_s}),
                ),
            ),
            data=DataSpec(dataset=self.dataset, n=self.n, **self.data),
            # Faults are injected on purpose: the scorecard checks that examples survive
            # them, not the VLM's health, so any fallback rate is allowed here.
            run=RunOptions(
                concurrency=self.concurrency,
                bootstrap=self.bootstrap,
                quiet=True,
                limit=self.limit,
                engine=EngineOptions(**self.engine),
                max_fallback_rate=1.0,
            ),
        )

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["run_dir"] = str(self.run_dir)
        data["cache_dir"] = None if self.cache_dir is None else str(self.cache_dir)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> OfflineRun:
        data = json.loads(text)
        data["run_dir"] = Path(data["run_dir"])
        data["cache_dir"] = None if data["cache_dir"] is None else Path(data["cache_dir"])
        return cls(**data)


@dataclass(frozen=True)
class RunOutcome:
    """What an in-process run left: exit code, the example ids it should hold, cache damage,
    the runner's notes and its summary."""

    exit_code: int
    example_ids: list[str]
    corrupt_entries: int
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def run_offline(run: OfflineRun, *, before_write: WriteHook | None = None) -> RunOutcome:
    """Run (or resume) ``run`` in this process, as ``refseg bench run`` would."""
    options = run.options()
    examples = options.data.load()
    rt = build_runtime(options.episode)
    try:
        result = anyio.run(
            lambda: run_examples(
                rt, examples, options.out, options.data, options.run, before_write=before_write
            )
        )
        corrupt = rt.cache.corrupt if rt.cache is not None else 0
    finally:
        rt.close()
    ids = [ex.example_id for ex in examples]
    return RunOutcome(
        result.exit_code, ids, corrupt, list(result.notes), result.summary.model_dump(mode="json")
    )


def spawn_offline(
    run: OfflineRun, *, kill_at_line: int = 0, stats: Path | None = None
) -> subprocess.Popen[bytes]:
    """``run`` in a child process (``python -m bench.chaos.worker``); with ``kill_at_line`` N
    the child tears its N-th result line and SIGKILLs itself; with ``stats`` it writes its peak
    RSS there as JSON."""
    extra = [str(stats)] if stats is not None else []
    return subprocess.Popen(
        [sys.executable, "-m", "bench.chaos.worker", run.to_json(), str(kill_at_line), *extra],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
