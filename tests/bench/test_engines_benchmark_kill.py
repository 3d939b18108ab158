"""``bench engines`` notices a kill that came too late to test anything, retries with more
scenes, and says so when it never lands (the Ray run itself is stood in for here; the real one
runs in ``refseg bench engines``, and the Ray engine's fault handling in test_ray_engine.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.benchmarks.engines import KILL_TRIES, KillOutcome, kill_run


def outcome(n: int, deaths: int, lines: int | None = None) -> KillOutcome:
    expected = 18 * n
    written = expected if lines is None else lines
    return KillOutcome(n, 4242, written, min(written, expected), expected, 0, deaths, deaths)


def test_a_late_kill_is_retried_with_more_scenes_until_it_lands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tried: list[int] = []

    def attempt(out: Path, n: int, concurrency: int) -> KillOutcome:
        tried.append(n)
        return outcome(n, deaths=0 if n < 8 else 1)  # 2 and 4 scenes: the kill came too late

    ok, folder = kill_run(tmp_path / "ray2-kill", 2, 2, attempt)
    out = capsys.readouterr().out
    assert ok and tried == [2, 4, 8] and folder.name == "ray2-kill-3"
    assert out.count("the kill came after the work was done: nothing was tested") == 2
    assert "retrying with 4 scenes" in out and "retrying with 8 scenes" in out
    assert "worker deaths 1, groups redone 1" in out


def test_a_kill_that_never_lands_is_reported_as_not_tested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, _ = kill_run(tmp_path / "k", 2, 2, lambda out, n, c: outcome(n, deaths=0))
    out = capsys.readouterr().out
    assert not ok
    assert (
        f"kill a worker: not tested: in {KILL_TRIES} tries the kill always came after the work was done"
        in out
    )


def test_a_lost_example_fails_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tried: list[int] = []

    def attempt(out: Path, n: int, concurrency: int) -> KillOutcome:
        tried.append(n)
        return outcome(n, deaths=1, lines=18 * n - 1)

    ok, _ = kill_run(tmp_path / "k", 3, 2, attempt)
    assert not ok and tried == [3]
