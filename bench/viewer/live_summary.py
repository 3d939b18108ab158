"""A run's summary for the run page: ``summary.json`` when current, else computed live.

A finished run has an up-to-date ``summary.json`` (the bench wrote it after its last
line) and the page shows exactly that. A run still being written (or killed) has none, or
an older one: the summary is then computed from the records read so far by the bench's own
:func:`bench.summary.build_summary`, with the bench's 2,000 bootstrap resamples, so it is
the ``summary.json`` the bench would write now. On 5,000 examples that takes about half a
second, so it runs in a background thread: the page never waits for it, and shows the
newest finished summary (saying how many examples it covers) or "computing".
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import DEFAULT_BOOTSTRAP
from bench.records import RunConfig, SampleRecord, Summary
from bench.run_folder import read_invocations, run_protocol
from bench.summary import build_summary, trace_faults
from bench.viewer.runs import RunFolder
from tools.errors import RefsegError


@dataclass(frozen=True)
class SummaryView:
    """What the run page shows as the summary.

    Attributes:
        data: the summary (``None`` while the first is computed, or when it cannot be).
        source: ``"summary.json"`` or ``"live"``.
        examples: how many examples it covers.
        pending: a newer live summary is being computed (``data`` is older, or absent).
        error: why no summary can be computed (e.g. the run's protocol is not installed).
    """

    data: Summary | None
    source: str
    examples: int
    pending: bool = False
    error: str | None = None


@dataclass
class _Job:
    version: int
    examples: int
    future: Future[Summary | str]


class Summaries:
    """Live summaries of the served runs, one background computation at a time."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refseg-view-summary")
        self._lock = threading.Lock()
        self._latest: dict[str, _Job] = {}  # the job for the newest records
        self._done: dict[str, _Job] = {}  # the newest job that finished

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def get(self, run: RunFolder, *, wait: bool = False) -> SummaryView:
        """The summary of ``run`` as of the records read now (the caller refreshed it).

        Args:
            run: the run.
            wait: block until the live summary of the current records is computed.
        """
        stored = run.stored_summary()
        if stored is not None:
            return SummaryView(stored, "summary.json", len(run.samples.records))
        key = str(run.path)
        with self._lock:
            job = self._latest.get(key)
            if job is None or job.version != run.samples.version:
                if job is not None:
                    job.future.cancel()  # not started yet: the newer records supersede it
                job = self._submit(run)
                self._latest[key] = job
        if wait:
            job.future.result()
        if job.future.done():
            self._done[key] = job
            return _view(job, pending=False)
        older = self._done.get(key)
        if older is not None:
            return _view(older, pending=True)
        return SummaryView(None, "live", 0, pending=True)

    def _submit(self, run: RunFolder) -> _Job:
        records = dict(run.samples.records)  # records are never changed once read: a copy of the dict will do
        order = [r.example_id for r in run.samples.rows()]
        future = self._pool.submit(
            _summarise,
            records,
            order,
            run.path,
            run.config() or RunConfig(),
            run.expected() or len(order),
            run.trace.path,
        )
        return _Job(run.samples.version, len(records), future)


def _view(job: _Job, *, pending: bool) -> SummaryView:
    result = job.future.result()
    if isinstance(result, str):
        return SummaryView(None, "live", job.examples, pending=pending, error=result)
    return SummaryView(result, "live", job.examples, pending=pending)


def _summarise(
    records: dict[str, SampleRecord],
    order: list[str],
    folder: Path,
    config: RunConfig,
    expected: int,
    trace: Path,
) -> Summary | str:
    """The summary, or why it cannot be computed."""
    try:
        return build_summary(
            records,
            order,
            read_invocations(folder),
            config,
            run_protocol(config),
            expected=expected,
            bootstrap=DEFAULT_BOOTSTRAP,  # the bench's default
            traced_faults=trace_faults(trace),
        )
    except RefsegError as exc:  # the run's protocol is not installed here
        return f"cannot summarise {folder}: {exc}"
