"""Which engine runs a run's episodes (:class:`EngineOptions`); none of these change results.
Re-exported by :mod:`bench.options`, where the other run options are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tools.errors import ConfigError

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs the episodes; none of these change per-example results.

    Attributes:
        name: ``local`` (one process, an anyio task group) or ``ray`` (a pool of Ray actors;
            the driver still writes the run folder alone).
        ray_address: a running Ray cluster (``auto``, ``ray://host:10001``, ``host:6379``);
            ``None`` starts a local cluster for the run and shuts it down afterwards.
        workers: Ray actors (``None``: one per GPU when the cluster has GPUs and the device is
            not cpu, else one per CPU; ``"auto"``: one per core of this machine, or per free CPU
            of a running cluster: the way to use every core for VLM-bound runs; never more than
            ``--concurrency``).
        gpus_per_worker: GPUs each actor reserves (``None``: 1 when the cluster has a GPU for
            every worker and the device is not cpu, else 0 and the workers run on the CPU).
        cpus_per_worker: CPUs each actor reserves (``None``: 1).
    """

    name: str = "local"
    ray_address: str | None = None
    workers: int | Literal["auto"] | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, got {self.name!r}")
        ray_only = {
            "--ray-address": self.ray_address,
            "--workers": self.workers,
            "--gpus-per-worker": self.gpus_per_worker,
            "--cpus-per-worker": self.cpus_per_worker,
        }
        given = [flag for flag, value in ray_only.items() if value is not None]
        if self.name != "ray" and given:
            raise ConfigError(
                f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to --engine ray only; "
                "add --engine ray or drop " + ("them" if len(given) > 1 else "it")
            )
        if self.workers not in (None, "auto") and not (isinstance(self.workers, int) and self.workers >= 1):
            raise ConfigError(f"--workers must be at least 1 (a number, or auto), got {self.workers!r}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ConfigError("--gpus-per-worker must be 0 or more (fractions share a GPU)")
        if self.cpus_per_worker is not None and self.cpus_per_worker <= 0:
            raise ConfigError("--cpus-per-worker must be more than 0")


__all__ = ["ENGINES", "EngineOptions"]
