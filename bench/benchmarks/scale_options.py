"""What ``refseg bench scale`` runs (:class:`ScaleOptions`), light enough for its parser to
import: :mod:`bench.benchmarks.scale` itself imports the fixed-latency endpoint (a test double).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tools.errors import ConfigError, InputError

# What makes each controller ask the VLM on every example (the guard is off for all of them).
CONTROLLERS: dict[str, tuple[str, ...]] = {
    "agent": (),  # a ranker call, then submit: 2 requests an example
    "ground": (),  # one box: 1 request an example
    "loop": ("--refiner", "vlm", "--max-iter", "3"),  # three rewrites: 3 requests an example
}


@dataclass(frozen=True)
class ScaleOptions:
    """``refseg bench scale``: what to run and how.

    Attributes:
        latency_s: seconds the endpoint takes to answer each request.
        controllers: ``agent``, ``ground``, ``loop`` (VLM refiner, 3 rounds).
        concurrency: ``--concurrency`` of each cell; speed-ups are against the smallest.
        engine: ``local`` or ``ray``.
        workers: Ray workers (a number or ``auto``; ``None``: the engine's default).
        waves: examples per cell are ``waves x c`` (at least ``min_examples``). A run's last
            examples finish one by one while nothing replaces them: 8 waves keep that tail to
            a small share of a cell.
        min_examples: the fewest examples of a cell.
        vlm_max_concurrency: ``--vlm-max-concurrency`` of every cell (``None``: no limit).
        out: keep the run folders here (``None``: a temporary folder, removed).
        json_path: also write the cells as JSON here.
    """

    latency_s: float = 1.0
    controllers: tuple[str, ...] = ("agent", "ground", "loop")
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    engine: Literal["local", "ray"] = "local"
    workers: int | Literal["auto"] | None = None
    waves: int = 8
    min_examples: int = 8
    vlm_max_concurrency: int | None = None
    out: Path | None = None
    json_path: Path | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.controllers if c not in CONTROLLERS]
        if unknown or not self.controllers:
            raise ConfigError(
                f"--controllers: choose among {', '.join(CONTROLLERS)}, got {', '.join(unknown)}"
            )
        if not self.concurrency or min(self.concurrency) < 1:
            raise ConfigError("--concurrency: give concurrency levels of at least 1, e.g. 1,4,16,64")
        if len(set(self.concurrency)) != len(self.concurrency):
            raise ConfigError(
                f"--concurrency: give each level once, got {','.join(map(str, self.concurrency))}"
            )
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file: give a new or empty folder")
        if self.out is not None and self.out.is_dir() and any(self.out.iterdir()):
            raise InputError(
                f"--out {self.out} is not empty: give a new or empty folder (every cell starts from "
                "a cold cache, and the endpoint's port changes from one invocation to the next)"
            )
        if not 0 <= self.latency_s <= 60:
            raise ConfigError(f"--latency must be between 0 and 60 seconds, got {self.latency_s}")
        if self.waves < 1 or self.min_examples < 1:
            raise ConfigError("--waves and --min-examples must be at least 1")
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be local or ray, got {self.engine!r}")
        if self.workers is not None and self.engine != "ray":
            raise ConfigError("--workers applies to --engine ray only")

    def examples(self, c: int) -> int:
        return max(self.min_examples, self.waves * c)
