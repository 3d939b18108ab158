"""The ``forged cache contents`` row: checksummed entries of the right type, wrong contents.

A first run fills the cache; then its entries are rewritten, each with a valid checksum and
the layout the tool writes, but contents that lie: a ``Proposals`` record whose stored shape
claims 20000x20000 behind a few bytes (what ``np.unpackbits(..., count=w)`` would inflate to
381 MiB per mask), masks of another size than the image, a ranking with a NaN probability, a
ranking of more candidates than there are, a rewrite whose query is not text. A second run,
in a child process (its own peak RSS), must treat each as a miss: drop
it, count it, recompute, and give the first run's answers, at the first run's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from bench.chaos.result import RowResult, account, read_json
from bench.chaos.runs import OfflineRun, spawn_offline
from cache.codec import decode, encode
from cache.store import SafeDisk
from tools.types import digest_array

CLAIMED_SIDE = 20_000  # the audit's claim: one mask of 20000x20000 (381 MiB as bool)
RSS_SLACK_BYTES = 150 * 2**20  # recomputing a few outputs may cost a little more than hits
Record = tuple[dict[str, np.ndarray], dict[str, Any]]


def inflating_proposals(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
    """One mask claimed at 20000x20000, backed by a packed array of zero bytes."""
    one = {k: arrays[k][:1] for k in ("boxes", "scores", "stability", "areas")}
    packed = np.zeros((1, CLAIMED_SIDE, 0), dtype=np.uint8)
    return {**one, "masks": packed}, {**meta, "shape": [1, CLAIMED_SIDE, CLAIMED_SIDE]}


def resized_proposals(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
    """The same masks on a canvas 8 pixels larger each way: consistent in itself, but not the
    image's size."""
    n, h, w = meta["shape"]
    masks = np.unpackbits(arrays["masks"], axis=-1, count=w).astype(bool)
    bigger = np.zeros((n, h + 8, w + 8), dtype=bool)
    bigger[:, :h, :w] = masks
    packed = np.packbits(bigger, axis=-1)
    return {**arrays, "masks": packed}, {**meta, "shape": [n, h + 8, w + 8], "digest": digest_array(packed)}


def nan_ranking(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
    probs = arrays["probs"].astype(np.float32).copy()
    probs[0] = np.nan
    return {**arrays, "probs": probs}, meta


def longer_ranking(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
    """One candidate more than the proposals hold, still a distribution."""
    scores = np.append(arrays["scores"], np.float32(0.0)).astype(np.float32)
    probs = np.append(arrays["probs"], np.float32(0.0)).astype(np.float32)
    return {"scores": scores, "probs": probs}, meta


def untyped_rewrite(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Record:
    return arrays, {**meta, "query": ["not", "text"]}


Forgery = Callable[[dict[str, np.ndarray], dict[str, Any]], Record]


def _kind(meta: dict[str, Any]) -> str:
    if "shape" in meta:
        return "proposals"
    if "temperature" in meta:
        return "ranking"
    return "refinement" if "rationale" in meta else "other"


FORGERIES: dict[str, list[Forgery]] = {
    "proposals": [inflating_proposals, resized_proposals],
    "ranking": [nan_ranking, longer_ranking],
    "refinement": [untyped_rewrite],
}


def forge(cache_dir: Path) -> list[str]:
    """Rewrite one entry per forgery (checksums valid); returns the forgeries' names."""
    cache = diskcache.Cache(str(cache_dir), disk=SafeDisk)
    done: list[str] = []
    try:
        todo = {kind: list(fs) for kind, fs in FORGERIES.items()}
        for key in list(cache.iterkeys()):
            arrays, meta = decode(cache.get(key))
            pending = todo.get(_kind(meta))
            if pending:
                forgery = pending.pop(0)
                cache.set(key, encode(*forgery(arrays, meta)))
                done.append(forgery.__name__)
    finally:
        cache.close()
    return done


def _child_run(run: OfflineRun) -> tuple[int, int]:
    """``run`` in a child process: its exit code and its own peak RSS in bytes."""
    stats = run.run_dir.with_name(run.run_dir.name + "-stats.json")
    proc = spawn_offline(run, stats=stats)
    proc.communicate(timeout=600)
    return proc.returncode, int(read_json(stats).get("peak_rss_bytes", 0)) if stats.exists() else 0


def forged_contents_row(workdir: Path, seed: int = 0) -> RowResult:
    """Forged but checksummed entries: misses, counted, recomputed to the same answers at the
    same memory."""
    row = RowResult("forged cache contents")
    t0 = time.perf_counter()
    cache = workdir / "forged-cache"
    first = OfflineRun(workdir / "forged-first", cache, n=2, episode={"controller": "loop"})
    second = OfflineRun(workdir / "forged-second", cache, n=2, episode=first.episode)
    first_exit, first_rss = _child_run(first)
    forged = forge(cache)
    second_exit, second_rss = _child_run(second)
    ids = [ex.example_id for ex in first.options().data.load()]
    recs = account(row, second.run_dir, ids, second_exit)
    firsts = account(RowResult("first"), first.run_dir, ids, first_exit)
    answers = {r["example_id"]: (r["mask"], r["iou"]) for r in firsts}
    row.injected = len(forged)
    cache_health = read_json(second.run_dir / "summary.json").get("cache", {})
    row.detected = int(cache_health.get("corrupt_entries") or 0)
    row.check(len(forged) == sum(map(len, FORGERIES.values())), f"only {forged} could be forged")
    row.check(row.detected == row.injected, f"{row.detected} of {row.injected} forged entries dropped")
    same = all(answers[r["example_id"]] == (r["mask"], r["iou"]) for r in recs)
    row.check(same and row.failed == 0, "answers after the forgery differ from the first run's")
    row.check(
        second_rss <= first_rss + RSS_SLACK_BYTES,
        f"peak RSS {second_rss / 2**20:.0f} MiB with forged entries vs {first_rss / 2**20:.0f} MiB",
    )
    row.details.update(forged=forged, first_rss_bytes=first_rss, second_rss_bytes=second_rss)
    row.seconds = time.perf_counter() - t0
    return row
