"""The cache rows: every entry damaged between two runs; two processes sharing one cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.chaos.kill import KILL_TIMEOUT_S
from bench.chaos.result import RowResult, account, read_json
from bench.chaos.runs import OfflineRun, run_offline, spawn_offline


def damage_cache(cache_dir: Path, marker: Path) -> int:
    """Truncate every stored value (in the database and in value files) and plant one pickle.

    Returns the number of entries damaged.
    """
    db = sqlite3.connect(cache_dir / "cache.db")
    try:
        rows = db.execute("SELECT rowid, filename FROM Cache").fetchall()
        db.execute("UPDATE Cache SET value = substr(value, 1, length(value) / 2) WHERE value IS NOT NULL")
        payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
        if rows:  # mode 4 = pickle: diskcache would unpickle it (and run the command)
            db.execute(
                "UPDATE Cache SET mode = 4, value = ?, filename = NULL WHERE rowid = ?", (payload, rows[0][0])
            )
        db.commit()
    finally:
        db.close()
    for _, filename in rows:
        if filename:
            f = cache_dir / filename
            if f.exists():
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return len(rows)


def cache_row(workdir: Path, seed: int = 0) -> RowResult:
    """Every cache entry truncated (and one replaced by a pickle) between two runs: same results."""
    row = RowResult("corrupt cache entries")
    t0 = time.perf_counter()
    cache = workdir / "damaged-cache"
    first_dir, second_dir = workdir / "cache-first", workdir / "cache-second"
    episode = {"controller": "loop"}
    run_offline(OfflineRun(first_dir, cache, n=2, episode=episode))
    marker = workdir / "pickle-ran"
    row.injected = damage_cache(cache, marker)
    second = run_offline(OfflineRun(second_dir, cache, n=2, episode=episode))
    ids = second.example_ids
    recs = account(row, second_dir, ids, second.exit_code)
    row.detected = second.corrupt_entries  # entries the checksum (or the pickle refusal) caught
    first = {r["example_id"]: r for r in account(RowResult("first"), first_dir, ids, 0)}
    same = all(
        first[r["example_id"]]["iou"] == r["iou"] and first[r["example_id"]]["mask"] == r["mask"]
        for r in recs
    )
    row.check(same, "results after the damage differ from the first run's")
    row.check(not marker.exists(), "a pickled cache row was executed")
    row.check(row.injected > 0, "the cache was empty: nothing damaged")
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} damaged entries detected")
    row.seconds = time.perf_counter() - t0
    return row


def shared_cache_row(workdir: Path, seed: int = 0) -> RowResult:
    """Two bench processes at once on one cache folder: the results of one alone."""
    row = RowResult("shared cache, 2 processes")
    t0 = time.perf_counter()
    cache = workdir / "shared-cache"
    episode = {"controller": "loop"}
    ids = run_offline(OfflineRun(workdir / "shared-alone", None, n=3, episode=episode)).example_ids
    want = read_json(workdir / "shared-alone" / "summary.json")["metrics"]
    dirs = [workdir / f"shared-{i}" for i in (1, 2)]
    procs = [spawn_offline(OfflineRun(d, cache, n=3, episode=episode)) for d in dirs]
    for p in procs:
        p.communicate(timeout=KILL_TIMEOUT_S)
    codes = [int(p.returncode) for p in procs]
    row.injected = len(procs)
    for d, code in zip(dirs, codes, strict=True):
        sub = RowResult(d.name)
        account(sub, d, ids, code)
        row.lost += sub.lost
        row.duplicated += sub.duplicated
        row.failed += sub.failed
        row.problems += [f"{d.name}: {p}" for p in sub.problems]
        same = read_json(d / "summary.json")["metrics"] == want
        row.detected += same
        row.check(same, f"{d.name}: metrics differ from a single process's")
    row.examples, row.exit_code, row.run_dir = len(ids), max(codes), dirs[0]
    row.seconds = time.perf_counter() - t0
    return row
