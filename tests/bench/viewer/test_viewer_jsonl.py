"""Incremental reading of a growing JSON-lines file: torn tails, bad lines, truncation, replacement."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.viewer.jsonl import JsonlTail
from bench.viewer.runs import SampleStore


def _tail(path: Path) -> tuple[JsonlTail, list[tuple[int, bytes]], list[str]]:
    seen: list[tuple[int, bytes]] = []
    resets: list[str] = []

    def on_line(offset: int, line: bytes) -> bool:
        try:
            json.loads(line)
        except ValueError:
            return False
        seen.append((offset, line))
        return True

    return JsonlTail(path, on_line, lambda: resets.append("reset")), seen, resets


def test_reads_only_new_complete_lines_and_waits_for_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    tail, seen, _ = _tail(path)
    assert tail.refresh() is False and seen == []  # no file yet
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3')  # the third line is being written
    assert tail.refresh() is True
    assert [json.loads(line)["a"] for _, line in seen] == [1, 2]
    assert tail.torn_tail_bytes == len(b'{"a": 3') and tail.offset == len(b'{"a": 1}\n{"a": 2}\n')
    assert tail.refresh() is False  # nothing changed: nothing read again
    with path.open("ab") as fh:
        fh.write(b"}\n")
    tail.refresh()
    assert [json.loads(line)["a"] for _, line in seen] == [1, 2, 3]
    assert seen[2][0] == len(b'{"a": 1}\n{"a": 2}\n')  # offsets point at each line's start
    assert tail.torn_tail_bytes == 0 and tail.skipped == 0


def test_an_undecodable_line_is_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\xfe not json\n\n{"a": 2}\n')
    tail, seen, _ = _tail(path)
    tail.refresh()
    assert [json.loads(line)["a"] for _, line in seen] == [1, 2]
    assert tail.skipped == 1  # the blank line is no record, and no error either


def test_a_truncated_or_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n')
    tail, seen, resets = _tail(path)
    tail.refresh()
    path.write_bytes(b'{"a": 9}\n')  # shorter than what was read: a new file's content
    tail.refresh()
    assert resets == ["reset", "reset"] and [json.loads(x)["a"] for _, x in seen][-1] == 9
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b'{"a": 7}\n{"a": 8}\n{"a": 9}\n')
    os.replace(replacement, path)  # another inode, longer than before
    seen.clear()
    tail.refresh()
    assert [json.loads(x)["a"] for _, x in seen] == [7, 8, 9] and len(resets) == 3


def test_sample_store_keeps_the_last_record_per_example(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    ids = {"image_id": "i", "sentence": "s"}
    lines = [
        {"index": 1, "example_id": "b", "iou": 0.5, "queries": ["x"], **ids},
        {"index": 0, "example_id": "a", "iou": 0.0, "failed": True, "queries": ["y"], **ids},
        {"index": 0, "example_id": "a", "iou": 0.9, "failed": False, "queries": ["y", "z"], **ids},  # retried
        ["not", "a", "record"],
        {"index": 2, "example_id": "c", "iou": "high", **ids},  # a field of the wrong type: not a record
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    store = SampleStore(path)
    store.refresh()
    rows = store.rows()
    assert [r.example_id for r in rows] == ["a", "b"]  # example order, not file order
    assert rows[0].iou == 0.9 and rows[0].queries == ("y", "z") and not rows[0].failed
    assert store.tail.skipped == 2 and store.version == 1
