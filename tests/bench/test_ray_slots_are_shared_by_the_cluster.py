"""The Ray engine's driver-side schedule: one ``--concurrency`` for the cluster, granted per
example, image groups kept on one worker, a dead worker's unfinished examples redone.

These drive :class:`bench.engines.ray_schedule.Schedule` as the engine does, without Ray; the
tests that start a cluster are in test_ray_scheduling.py, the worker's image cache is tested in
test_ray_worker_decodes_each_image_once.py.
"""

from __future__ import annotations

import random

import pytest

from bench.engines.ray_schedule import MAX_ATTEMPTS, Group, Item, Schedule, split_groups


def groups_of(*sizes: int) -> list[list[Item]]:
    """Image groups of the given sizes; an example is ``(index, image number)``."""
    out, index = [], 0
    for image, size in enumerate(sizes):
        out.append([(index + k, image) for k in range(size)])  # type: ignore[misc]
        index += size
    return out


def drain(schedule: Schedule) -> list[tuple[int, Group, Item]]:
    """Every grant the schedule makes now."""
    granted = []
    while (g := schedule.grant()) is not None:
        granted.append(g)
    return granted


def test_one_image_group_is_split_so_both_workers_run_at_the_full_concurrency() -> None:
    parts, split = split_groups(groups_of(16), workers=2)
    assert split == 1 and [len(p.items) for p in parts] == [8, 8] and {p.image for p in parts} == {0}
    schedule = Schedule(parts, workers=2, concurrency=4)
    granted = drain(schedule)
    assert len(granted) == 4  # a fixed split of 2 per worker ran this image at 2
    assert schedule.worker_in_flight == [2, 2]
    assert {g.home for _, g, _ in granted} == {0, 1} and {w for w, _, _ in granted} == {0, 1}


@pytest.mark.parametrize(
    ("sizes", "workers", "parts_sizes", "split"),
    [
        ((3, 5, 1), 2, [3, 5, 1], 0),  # more groups than workers: never split
        ((3, 5), 2, [3, 5], 0),  # as many: each worker gets one
        ((7,), 3, [3, 2, 2], 1),  # one group, three workers: a part each
        ((5, 1), 3, [3, 2, 1], 1),  # a one-example group cannot be split
    ],
)
def test_groups_are_split_only_when_fewer_than_workers(
    sizes: tuple[int, ...], workers: int, parts_sizes: list[int], split: int
) -> None:
    parts, n_split = split_groups(groups_of(*sizes), workers)
    assert n_split == split and [len(p.items) for p in parts] == parts_sizes
    assert [item for p in parts for item in p.items] == [item for g in groups_of(*sizes) for item in g]


def test_one_example_in_flight_at_a_time_for_concurrency_one() -> None:
    schedule = Schedule(split_groups(groups_of(5), workers=1)[0], workers=1, concurrency=1)
    assert len(drain(schedule)) == 1 and schedule.grant() is None


@pytest.mark.parametrize("concurrency", [4, 16, 64])
def test_slots_never_exceed_concurrency_never_idle_while_work_waits_and_groups_stay_home(
    concurrency: int,
) -> None:
    rng = random.Random(concurrency)
    groups = groups_of(*(rng.randint(1, 20) for _ in range(40)))
    total = sum(map(len, groups))
    schedule = Schedule(split_groups(groups, 2)[0], workers=2, concurrency=concurrency)
    running: list[tuple[int, Group, Item]] = []
    done: list[Item] = []
    ran_on: dict[int, set[int]] = {}
    opened: list[Group] = []
    while len(done) < total:
        for worker, group, item in drain(schedule):
            running.append((worker, group, item))
            ran_on.setdefault(group.image, set()).add(worker)
            if group not in opened:
                opened.append(group)
        waiting = total - len(done) - len(running)
        assert schedule.in_flight == len(running) <= concurrency
        assert schedule.worker_in_flight == [sum(w == k for w, _, _ in running) for k in (0, 1)]
        for k in (0, 1):  # a worker sends all of a group before it opens the next: one image at a time
            assert sum(g.home == k and bool(g.pending) for g in opened) <= 1
        assert len(running) == min(concurrency, total - len(done))  # no slot idles while work waits
        if schedule.queue and waiting:  # both workers can take work: their loads stay even
            assert abs(schedule.worker_in_flight[0] - schedule.worker_in_flight[1]) <= 1
        worker, group, item = running.pop(rng.randrange(len(running)))  # calls return in any order
        schedule.returned(worker)
        schedule.finished(group)
        done.append(item)
    assert sorted(i for i, _ in done) == list(range(total)) and schedule.peak_in_flight == concurrency
    assert all(len(workers) == 1 for workers in ran_on.values())  # one image decode per group


def test_a_dead_worker_s_unfinished_examples_and_only_those_are_redone_on_its_replacement() -> None:
    schedule = Schedule(split_groups(groups_of(6, 6), 2)[0], workers=2, concurrency=10)
    granted = drain(schedule)
    on_0 = [(g, item) for w, g, item in granted if w == 0]
    group = on_0[0][0]
    finished = on_0.pop()  # one example of worker 0 came back before it died
    schedule.returned(0)
    schedule.finished(*finished[:1])
    redone = []
    for g, item in on_0:
        schedule.returned(0)
        redo, failed = schedule.died(0, 0, g, item, "killed")
        redone.append(redo)
        assert not failed
        if len(redone) == 1:
            schedule.pause(0)
    assert redone == [True] + [False] * (len(on_0) - 1)  # one death of one process, counted once
    assert group.deaths == 1 and group.home == 0
    assert all(w == 1 for w, _, _ in drain(schedule))  # the replacement gets nothing meanwhile
    schedule.resume(0)
    again = [(g, item) for w, g, item in drain(schedule) if w == 0]
    assert {item for _, item in on_0} <= {item for _, item in again}
    assert finished[1] not in {item for _, item in again}  # a finished example is never redone


def test_a_group_that_kills_its_worker_every_time_is_failed_after_max_attempts() -> None:
    schedule = Schedule(split_groups(groups_of(5), 1)[0], workers=1, concurrency=2)
    failed: list[Item] = []
    for generation in range(MAX_ATTEMPTS):
        for _, group, item in drain(schedule):
            schedule.returned(0)
            failed += schedule.died(0, generation, group, item, "poison")[1]
    assert group.given_up and group.deaths == MAX_ATTEMPTS
    assert sorted(i for i, _ in failed) == list(range(5)) and schedule.grant() is None
