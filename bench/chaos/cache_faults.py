"""The cache-fault rows: a cache that cannot be written, read or opened; foreign entries.

- ``cache unwritable / locked``: a cache database that is full (a real SQLite
  ``database or disk is full``: the folder's ``max_page_count`` setting leaves no room), one
  that another connection locks in the middle of a run, and folders that cannot be opened
  (read-only; locked). Mid-run failures leave every example computed and recorded, with one
  warning and ``summary.json`` saying caching was degraded; an unusable folder is a one-line
  error that suggests ``--no-cache``, and the run goes through with it.
- ``foreign cache entries``: every entry rewritten with a valid checksum but another layout
  (a renamed array), one entry an npz whose array header claims 1 GiB: all are misses,
  recomputed to the first run's results, and nothing large is allocated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import time
import tracemalloc
import zipfile
from pathlib import Path

import diskcache
import numpy as np

from bench.chaos.result import RowResult, account
from bench.chaos.runs import OfflineRun, run_offline
from cache.codec import MAGIC, CorruptEntry, decode
from cache.store import CacheUnavailable, SafeDisk

LOOP = {"controller": "loop"}
LOCK_TIMEOUT_S = 0.5  # the rows' cache lock timeout: a lock costs half a second, once
BOMB_BYTES = 2**30


def fill_up_cache(cache_dir: Path) -> None:
    """A cache whose database cannot grow by more than a couple of pages (SQLite's own
    ``max_page_count``, kept in the folder's settings and applied to every connection)."""
    diskcache.Cache(str(cache_dir), disk=SafeDisk).close()
    with sqlite3.connect(cache_dir / "cache.db") as con:
        pages = int(con.execute("PRAGMA page_count").fetchone()[0])
    diskcache.Cache(str(cache_dir), disk=SafeDisk, sqlite_max_page_count=pages + 2).close()


class _LockAt:
    """A sample-writer hook: before result line ``at``, another connection takes the cache
    database's write lock and keeps it until :meth:`release`."""

    def __init__(self, db: Path, at: int = 1):
        self.db, self.at = db, at
        self.con: sqlite3.Connection | None = None

    def __call__(self, number: int, _data: bytes, _fh: object) -> None:
        if number == self.at and self.con is None:
            self.con = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
            self.con.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.con is not None:
            self.con.close()


def _degraded_run(row: RowResult, run: OfflineRun, lock: _LockAt | None = None) -> None:
    outcome = run_offline(run, before_write=lock)
    if lock is not None:
        lock.release()
    sub = RowResult(run.run_dir.name)
    account(sub, run.run_dir, outcome.example_ids, outcome.exit_code)
    row.lost, row.duplicated = row.lost + sub.lost, row.duplicated + sub.duplicated
    row.examples, row.failed, row.exit_code = (
        row.examples + sub.examples,
        row.failed + sub.failed,
        outcome.exit_code,
    )
    row.problems += [f"{run.run_dir.name}: {p}" for p in sub.problems]
    said = outcome.summary.get("cache", {}).get("degraded_invocations") == 1 and any(
        "caching is off" in n for n in outcome.notes
    )
    row.detected += said
    row.check(said and sub.failed == 0, f"{run.run_dir.name}: {outcome.notes}, {sub.failed} failed")


def _unopenable(workdir: Path) -> list[tuple[str, Path]]:
    """A read-only folder (a read-only tmpfs as root, permissions otherwise) and a database
    that another connection holds locked."""
    ro = workdir / "read-only"
    ro.mkdir(exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        ro.chmod(0o555)
    locked = workdir / "locked-cache"
    diskcache.Cache(str(locked), disk=SafeDisk).close()
    return [("read-only", ro / "cache"), ("locked", locked)]


def _refused_then_no_cache(row: RowResult, workdir: Path, name: str, cache_dir: Path) -> None:
    run = OfflineRun(workdir / f"{name}-run", cache_dir, n=1, episode={"controller": "oneshot"})
    try:
        run_offline(dataclasses.replace(run, cache_timeout_s=LOCK_TIMEOUT_S))
        message = ""
    except CacheUnavailable as exc:
        message = str(exc)
    said = "--no-cache" in message and "\n" not in message
    row.detected += said
    row.check(said, f"{name} cache folder: {message or 'no error'}")
    no_cache = OfflineRun(run.run_dir, None, n=1, episode=run.episode)  # what the line suggests
    row.check(run_offline(no_cache).exit_code == 0, f"{name}: the run without the cache failed")


def unusable_cache_row(workdir: Path, seed: int = 0) -> RowResult:
    """A full, a locked, a read-only cache: examples never fail on the cache, never silently."""
    row = RowResult("cache unwritable / locked")
    t0 = time.perf_counter()
    full = workdir / "full-cache"
    fill_up_cache(full)
    _degraded_run(row, OfflineRun(workdir / "full-run", full, n=1, episode=LOOP))
    locked = workdir / "busy-cache"
    diskcache.Cache(str(locked), disk=SafeDisk).close()
    lock = _LockAt(locked / "cache.db")
    busy = OfflineRun(workdir / "busy-run", locked, n=1, episode=LOOP, cache_timeout_s=LOCK_TIMEOUT_S)
    _degraded_run(row, busy, lock)
    holder = None
    try:
        for name, cache_dir in _unopenable(workdir):
            if name == "locked":
                holder = sqlite3.connect(cache_dir / "cache.db", isolation_level=None)
                holder.execute("BEGIN EXCLUSIVE")
            _refused_then_no_cache(row, workdir, name, cache_dir)
    finally:
        if holder is not None:
            holder.close()
        subprocess.run(["umount", str(workdir / "read-only")], capture_output=True)
    row.injected = 4
    row.check(row.detected == row.injected, f"{row.detected} of 4 cache faults reported")
    row.run_dir = workdir / "busy-run"
    row.seconds = time.perf_counter() - t0
    return row


def _frame(payload: bytes) -> bytes:
    return MAGIC + hashlib.sha256(payload).digest() + payload


def bomb_entry(declared: int = BOMB_BYTES) -> bytes:
    """A checksummed entry of a few hundred bytes whose one array header claims ``declared``
    bytes (what ``np.load`` would allocate before reading)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (declared,)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("masks.npy", header.getvalue() + b"\0" * 64)
    return _frame(buf.getvalue())


def foreign_entry(blob: bytes) -> bytes:
    """The same entry in another layout: every array and metadata key renamed (``x`` ->
    ``x_v2``), re-checksummed."""
    arrays, meta = decode(blob)
    buf = io.BytesIO()
    renamed = {f"{k}_v2": v for k, v in meta.items()}
    meta_bytes = np.frombuffer(json.dumps(renamed, sort_keys=True).encode(), dtype=np.uint8)
    members = {"__meta__": meta_bytes, **{f"{k}_v2": v for k, v in arrays.items()}}
    np.savez(buf, **members)  # type: ignore[arg-type]
    return _frame(buf.getvalue())


def _rewrite(cache_dir: Path) -> int:
    """Every entry foreign, one of them a bomb; returns the number rewritten."""
    cache = diskcache.Cache(str(cache_dir), disk=SafeDisk)
    try:
        keys = list(cache.iterkeys())
        for i, key in enumerate(keys):
            cache.set(key, bomb_entry() if i == 0 else foreign_entry(cache.get(key)))
    finally:
        cache.close()
    return len(keys)


def bomb_peak_bytes() -> tuple[int, str]:
    """Peak bytes allocated while decoding :func:`bomb_entry`, and what decoding said."""
    blob = bomb_entry()
    tracemalloc.start()
    try:
        decode(blob)
        said = "decoded"
    except CorruptEntry as exc:
        said = str(exc)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, said


def foreign_entries_row(workdir: Path, seed: int = 0) -> RowResult:
    """Valid checksums, foreign layouts, an inflating entry: misses, recomputed to the same results."""
    row = RowResult("foreign cache entries")
    t0 = time.perf_counter()
    cache = workdir / "foreign-cache"
    first_dir, second_dir = workdir / "foreign-first", workdir / "foreign-second"
    ids = run_offline(OfflineRun(first_dir, cache, n=1, episode=LOOP)).example_ids
    row.injected = _rewrite(cache)
    second = run_offline(OfflineRun(second_dir, cache, n=1, episode=LOOP))
    recs = account(row, second_dir, ids, second.exit_code)
    row.detected = second.corrupt_entries
    first = {r["example_id"]: r for r in account(RowResult("first"), first_dir, ids, 0)}
    same = all(first[r["example_id"]]["mask"] == r["mask"] for r in recs)
    row.check(same, "results after the rewrite differ from the first run's")
    row.check(row.injected > 0 and row.detected == row.injected, f"{row.detected} of {row.injected} missed")
    peak, said = bomb_peak_bytes()
    row.check(peak < 64 * 2**20, f"decoding the 1 GiB claim allocated {peak} bytes ({said})")
    row.details.update(bomb_peak_bytes=peak, bomb=said)
    row.seconds = time.perf_counter() - t0
    return row
