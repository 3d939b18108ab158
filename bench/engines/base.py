"""What an engine is: it runs one invocation's examples and sends their records to the runner.

An engine never writes the run folder. The runner (:mod:`bench.runner`) plans the invocation,
opens ``samples.jsonl`` and ``trace.jsonl``, and hands the engine an :class:`EngineJob` and the
sending end of a stream: every record sent becomes one ``samples.jsonl`` line, written by one
task on the driver in the order the examples finish, and the summary is written the same way
afterwards. Resume, reports and the viewer therefore do not care which engine ran.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from agent.session import Session
from agent.tracing import Tracer
from bench.data.examples import Example
from bench.data.protocol import EvalProtocol
from bench.loop_lag import LoopLag
from bench.records import SampleRecord
from bench.runtime import Runtime
from tools.errors import RefsegError

RecordStream = MemoryObjectSendStream[SampleRecord]


@dataclass
class EngineJob:
    """One invocation's work.

    Attributes:
        rt: the runtime the driver built (its ``options`` rebuild it on a Ray worker).
        groups: the image groups to run, streamed from the data set (read them once, in
            order): each a list of ``(index in the data set's example order, example)``.
        count: how many examples ``groups`` holds.
        perturb: the image perturbation.
        run_id: this invocation's id (in every trace event).
        tracer: the run's ``trace.jsonl``; the driver process is its only writer.
        concurrency: examples in flight at once, over all workers.
        protocol: how each example's mask is scored.
        on_start: called when the first example is about to start (set-up, a Ray cluster's
            start and its workers' tools are behind): the run's measures of its examples
            (event-loop lag) start there.
    """

    rt: Runtime
    groups: Iterator[list[tuple[int, Example]]]
    count: int
    perturb: str
    run_id: str
    tracer: Tracer
    concurrency: int
    protocol: EvalProtocol
    on_start: Callable[[], object] = field(default=lambda: None)


@dataclass
class EngineStats:
    """What an engine reports for ``invocations.jsonl``.

    Attributes:
        engine: ``local`` or ``ray``.
        workers: processes that ran episodes.
        images: image groups finished.
        computed: tool computations (not cache hits) by tool name, all workers together.
        image_encodes: images the proposer's model ran its image encoder on in this
            invocation, all workers together (see :func:`image_encodes`); ``None``: the
            proposer does not count them.
        peak_cuda_memory_bytes: the largest per-process CUDA peak (``None`` off CUDA).
        worker_deaths: workers that died and were replaced.
        groups_redone: image groups whose unfinished examples were sent again, to the
            replacement of the worker that died with them (once per group and death).
        groups_split: image groups run in parts on several Ray workers (a run with fewer
            groups than workers splits them so every worker gets work: such an image is
            decoded and proposed on each worker that runs a part).
        start_s: seconds spent starting the engine in this invocation (a Ray cluster, its
            actors and their runtimes, the workers' models); booked as set-up, not as part of
            the invocation's wall time (``engine_start_s`` in ``invocations.jsonl``).
        setup_s: seconds spent building the tools and loading their models before the first
            example (the driver's session; Ray workers count theirs in ``start_s``); not part
            of the invocation's wall time.
        lag: event-loop lag of every loop that ran episodes or wrote records (the driver's,
            and each Ray worker's), merged.
        cpu_s: CPU seconds (all threads) the run's processes spent while the examples ran
            (the driver's, plus each Ray worker's from its first call on).
        worker_peak_rss_bytes: the largest peak resident set of a Ray worker process (``None``
            with the local engine, whose one process is the driver).
    """

    engine: str
    workers: int
    images: int = 0
    computed: dict[str, int] = field(default_factory=dict)
    image_encodes: int | None = None
    peak_cuda_memory_bytes: int | None = None
    worker_deaths: int = 0
    groups_redone: int = 0
    groups_split: int = 0
    start_s: float = 0.0
    setup_s: float = 0.0
    lag: LoopLag = field(default_factory=LoopLag)
    cpu_s: float = 0.0
    worker_peak_rss_bytes: int | None = None

    def invocation_fields(self) -> dict[str, Any]:
        """The fields of the ``invocations.jsonl`` line this engine fills in."""
        return {
            "engine": self.engine,
            "workers": self.workers,
            "images_run": self.images,
            "computed": dict(self.computed),
            "image_encodes": self.image_encodes,
            "peak_cuda_memory_bytes": self.peak_cuda_memory_bytes,
            "worker_deaths": self.worker_deaths,
            "groups_redone": self.groups_redone,
            "groups_split": self.groups_split,
            "engine_start_s": round(self.start_s, 4),
            "setup_s": round(self.setup_s, 4),
            "event_loop": self.lag.as_record(),
            "cpu_s": round(self.cpu_s, 3),
            "worker_peak_rss_bytes": self.worker_peak_rss_bytes,
        }


def image_encodes(session: Session) -> int | None:
    """The proposer's image encodes so far: its ``encodes`` counter, the images its model ran
    the image encoder on (for its prompt tool's calls too), SAM 1's and SAM 3's alike. Cache
    hits encode nothing; a SAM 3 query on an image already encoded neither. ``None`` for a
    proposer without the counter. The counter lives as long as the tool (a suite's sub-runs
    share it): an invocation reports the difference."""
    count = getattr(session.registry.get(session.config.proposer), "encodes", None)
    return count if isinstance(count, int) else None


def encodes_since(session: Session, before: int | None) -> int | None:
    """The image encodes since ``before`` (an earlier :func:`image_encodes`)."""
    now = image_encodes(session)
    return None if now is None or before is None else now - before


class Engine(Protocol):
    """Runs episodes; :meth:`run` may be called once per run folder (the suite runs several)."""

    name: str

    async def run(self, job: EngineJob, send: RecordStream) -> EngineStats:
        """Run ``job.groups``, sending one record per example to ``send`` (do not close it).

        Raises:
            RefsegError: a run-level problem (missing checkpoint, ...) stops the run.
        """
        ...

    async def aclose(self) -> None:
        """Release workers and clusters this engine started."""
        ...


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaf_errors(sub)]
    return [exc]


def first_error(group_exc: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    """The error to report for a failed task group: a RefsegError first (e.g. a result line
    that could not be written), then Ctrl-C, then a file-system error, else the only one."""
    # A stream closed under a task is a consequence (the writer died), never the cause.
    consequences = (anyio.BrokenResourceError, anyio.ClosedResourceError)
    leaves = [e for e in leaf_errors(group_exc) if not isinstance(e, consequences)] or [group_exc]
    for kind in (RefsegError, KeyboardInterrupt, OSError):
        first = next((e for e in leaves if isinstance(e, kind)), None)
        if first is not None:
            return first
    return leaves[0] if len(leaves) == 1 else group_exc


def reset_peak_cuda_memory(device: str) -> None:
    """Start this invocation's peak from zero (a suite runs several in one process)."""
    if device.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats(device)
        except Exception:  # no CUDA runtime: nothing to reset
            pass


def peak_rss_bytes() -> int | None:
    """This process's peak resident set in bytes (``None`` where the platform does not say)."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):  # pragma: no cover - not a Unix
        return None
    return int(peak) * (1 if sys.platform == "darwin" else 1024)  # macOS: bytes; Linux: KiB


def peak_cuda_memory(device: str) -> int | None:
    """``torch.cuda.max_memory_allocated(device)`` on a CUDA device, else ``None``."""
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        return int(torch.cuda.max_memory_allocated(device)) if torch.cuda.is_available() else None
    except Exception:  # no CUDA runtime: nothing to report
        return None
