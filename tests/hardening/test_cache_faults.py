"""A cache that cannot be written, read or opened never fails an example (and
never silently); a foreign or inflating cache entry is a miss, recomputed, bounded in memory."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from helpers_chaos import chaos_row

from bench.chaos.cache_faults import bomb_entry, bomb_peak_bytes, fill_up_cache, foreign_entry
from bench.cli import main
from cache.codec import CorruptEntry, decode, encode
from cache.store import CacheUnavailable, ToolCache

RUN = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--controller"]
RUN += ["oneshot", "--quiet", "--bootstrap", "0", "--device", "cpu"]


@pytest.mark.slow
def test_full_locked_and_unopenable_caches_fail_no_example() -> None:
    row = chaos_row("cache unwritable / locked")
    assert row.survived, row.problems
    assert row.injected == row.detected == 4 and row.failed == 0 and row.lost == 0


def test_a_full_cache_database_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fill_up_cache(tmp_path)  # SQLite's own "database or disk is full" after a couple of pages
    cache = ToolCache(tmp_path)
    for i in range(20):  # on the old store the second write raised sqlite3.OperationalError
        cache.set(f"k{i}", {"a": np.zeros(2000)}, {"i": i})
    assert cache.get("k19") is None and cache.errors == 1
    assert "database or disk is full" in (cache.degraded or "")
    assert [r.message for r in caplog.records].count(cache.degraded) == 1  # one warning
    cache.close()


def test_a_locked_cache_is_a_bounded_one_line_error(tmp_path: Path) -> None:
    ToolCache(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "cache.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.perf_counter()
        with pytest.raises(CacheUnavailable) as info:
            ToolCache(tmp_path, timeout_s=0.3)
        assert time.perf_counter() - t0 < 5.0  # not diskcache's 60 s of retries
    finally:
        holder.close()
    assert "locked" in str(info.value) and "--no-cache" in str(info.value)


def test_an_unusable_cache_folder_is_one_line_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("x", encoding="utf-8")
    code = main([*RUN, "--cache-dir", str(not_a_folder), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--no-cache" in err


def test_foreign_entries_are_misses_recomputed_to_the_same_results() -> None:
    row = chaos_row("foreign cache entries")
    assert row.survived, row.problems
    assert row.injected > 0 and row.detected == row.injected
    assert row.details["bomb_peak_bytes"] < 64 * 2**20


def test_an_entry_claiming_a_gigabyte_is_refused_before_allocation() -> None:
    peak, said = bomb_peak_bytes()
    assert peak < 64 * 2**20, said  # the old decoder allocated the claimed 1 GiB first
    with pytest.raises(CorruptEntry, match="declares"):
        decode(bomb_entry())


def test_a_renamed_layout_decodes_but_is_no_tool_output() -> None:
    from agent.invoke import decode_output
    from tools.offline.region_propose import RegionPropose
    from tools.types import Proposals

    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4], masks[1, 4:] = True, True
    blob = encode(*Proposals.from_masks(masks).to_record())
    arrays, meta = decode(foreign_entry(blob))  # checksum fine, layout not
    assert set(arrays) == {"masks_v2", "boxes_v2", "scores_v2", "stability_v2", "areas_v2"}
    assert decode_output(RegionPropose, (arrays, meta)) is None
    assert isinstance(decode_output(RegionPropose, decode(blob)), Proposals)
