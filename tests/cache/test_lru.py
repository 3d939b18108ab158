"""The shared in-memory LRU: eviction order, recency, pop/clear, thread safety."""

from __future__ import annotations

import threading

import pytest

from cache.lru import LRU


def test_evicts_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "a" is now the most recent
    lru.put("c", 3)
    assert "b" not in lru and "a" in lru and "c" in lru and len(lru) == 2


def test_put_refreshes_and_replaces() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("a", 10)
    lru.put("c", 3)
    assert lru.get("a") == 10 and lru.get("b") is None


def test_contains_does_not_count_as_a_use() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert "a" in lru
    lru.put("c", 3)
    assert "a" not in lru


def test_get_pop_clear_and_misses() -> None:
    lru: LRU[tuple[str, int], str] = LRU(3)
    assert lru.get(("x", 1)) is None
    lru.put(("x", 1), "v")
    assert lru.pop(("x", 1)) == "v" and lru.pop(("x", 1)) is None
    lru.put(("y", 2), "w")
    lru.clear()
    assert len(lru) == 0 and ("y", 2) not in lru


def test_falsy_values_are_hits() -> None:
    lru: LRU[str, int] = LRU(1)
    lru.put("zero", 0)
    assert lru.get("zero") == 0


def test_maxsize_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        LRU(0)


def test_concurrent_use_keeps_the_bound() -> None:
    lru: LRU[int, int] = LRU(16)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(2000):
                lru.put((offset + i) % 64, i)
                lru.get((offset + 2 * i) % 64)
                if i % 7 == 0:
                    lru.pop((offset + i) % 64)
        except BaseException as exc:  # pragma: no cover - only on a failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 5,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(lru) <= 16
