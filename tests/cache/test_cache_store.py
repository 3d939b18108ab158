from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cache import ToolCache, canonical_json, decode, encode, make_key
from cache.codec import CorruptEntry


def test_codec_round_trip_keeps_arrays_and_meta() -> None:
    arrays = {
        "masks": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "scores": np.array([0.5, 0.25], np.float32),
    }
    got_arrays, got_meta = decode(encode(arrays, {"source": "x", "shape": [3, 4]}))
    assert got_meta == {"source": "x", "shape": [3, 4]}
    np.testing.assert_array_equal(got_arrays["masks"], arrays["masks"])
    assert got_arrays["scores"].dtype == np.float32


def test_codec_refuses_object_arrays() -> None:
    with pytest.raises(TypeError):
        encode({"bad": np.array([{"a": 1}], dtype=object)}, {})


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_codec_detects_damage(damage: str) -> None:
    blob = encode({"a": np.ones(100)}, {"k": 1})
    if damage == "truncate":
        blob = blob[:-10]
    elif damage == "flip":
        blob = blob[:-5] + bytes([blob[-5] ^ 0xFF]) + blob[-4:]
    else:
        blob = b"not a cache value at all"
    with pytest.raises(CorruptEntry):
        decode(blob)


def test_keys_change_with_every_component_and_not_with_key_order() -> None:
    base = dict(tool="t", version="1", fingerprint="fp", inputs={"image": "abc"}, args={"a": 1, "b": 0.5})
    key = make_key(**base)
    assert make_key(**{**base, "args": {"b": 0.5, "a": 1}}) == key
    for field, value in [
        ("tool", "u"),
        ("version", "2"),
        ("fingerprint", "fp2"),
        ("inputs", {"image": "abd"}),
        ("args", {"a": 2, "b": 0.5}),
    ]:
        assert make_key(**{**base, field: value}) != key, field
    assert canonical_json({"x": 0.1 + 0.2}) == canonical_json({"x": 0.3})


def test_store_hit_miss_and_stats(tmp_path: Path) -> None:
    with ToolCache(tmp_path) as cache:
        assert cache.get("k") is None
        cache.set("k", {"a": np.arange(3)}, {"m": 1})
        arrays, _meta = cache.get("k")  # type: ignore[misc]
        np.testing.assert_array_equal(arrays["a"], np.arange(3))
        stats = cache.stats()
        assert (stats.entries, stats.hits, stats.misses) == (1, 1, 1)
        assert cache.clear() == 1
        assert cache.stats().entries == 0


def test_corrupt_entry_is_dropped_and_counted(tmp_path: Path) -> None:
    with ToolCache(tmp_path) as cache:
        good = encode({"a": np.ones(4)}, {})
        cache.set_raw("k", good[:-3])
        assert cache.get("k") is None
        assert cache.stats().corrupt == 1
        assert "k" not in cache


def test_pickled_rows_are_never_unpickled(tmp_path: Path) -> None:
    """A cache database edited to hold a pickle payload must not run it."""
    marker = tmp_path / "pwned"
    with ToolCache(tmp_path / "c") as cache:
        cache.set("k", {"a": np.ones(2)}, {})
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    db = sqlite3.connect(tmp_path / "c" / "cache.db")
    db.execute("UPDATE Cache SET mode = 4, value = ? WHERE key = 'k'", (payload,))
    db.commit()
    db.close()
    with ToolCache(tmp_path / "c") as cache:
        assert cache.get("k") is None
    assert not marker.exists()


def test_two_processes_share_one_directory(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import numpy as np, sys; from cache import ToolCache;"
        "c = ToolCache(sys.argv[1]);"
        "[c.set(f'k{i}', {'a': np.full(8, i)}, {'i': i}) for i in range(int(sys.argv[2]), int(sys.argv[3]))]"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(a), str(a + 20)]) for a in (0, 20)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    with ToolCache(tmp_path) as cache:
        for i in range(40):
            arrays, meta = cache.get(f"k{i}")  # type: ignore[misc]
            assert meta == {"i": i} and int(arrays["a"][0]) == i
