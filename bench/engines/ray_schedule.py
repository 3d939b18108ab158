"""Which example the Ray engine sends to which worker next, under one limit for the cluster.

The driver grants example slots: ``--concurrency`` is one count for the whole cluster, not a
fixed share per worker, so an idle worker's share never sits unused while another worker has
examples waiting (a fixed split ran a lone image group at half its concurrency, and every run
ended with one worker idle while the other finished its share). Each slot goes to the worker
with the fewest examples in flight that has work, which keeps the workers' loads (their
CPUs) even.

Image groups keep their affinity: a group is homed on the first worker that takes it, and all
its examples run there (one image decode, one proposal per image and worker). A worker whose
groups have nothing left to send takes the next unhomed group. When an invocation has fewer
image groups than workers, each group is split into parts (one per worker it needs) so every
worker gets work; such an image is then decoded and proposed on each worker that runs a part
(``groups_split`` in ``invocations.jsonl`` counts them).

A worker that dies sends its unfinished examples back to their groups (their first examples
to send again); the groups stay homed on the worker's position, whose replacement gets
nothing until it has started. A group counts one death per dead worker process it had
examples on; after :data:`MAX_ATTEMPTS` its unfinished examples are recorded as failed.
This module does not import Ray; :mod:`bench.engines.ray_engine` drives it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bench.data.examples import Example

MAX_ATTEMPTS = 3  # a group whose worker dies this many times is recorded as failed
Item = tuple[int, Example]  # (index in the data set's example order, example)


@dataclass(eq=False)
class Group:
    """An image group (or one part of a split one) and where its examples stand.

    Attributes:
        image: the image group's number in the invocation (the parts of a split group share it).
        items: the group's examples.
        pending: examples not sent yet, or sent to a worker that died.
        unfinished: examples whose record has not come back yet.
        home: the worker position that runs this group (``None``: not taken yet).
        deaths: worker processes that died with examples of this group in flight.
        last_death: what the last of them said.
        given_up: died :data:`MAX_ATTEMPTS` times: its unfinished examples are recorded as failed.
    """

    image: int
    items: list[Item]
    pending: deque[Item] = field(init=False)
    unfinished: int = field(init=False)
    home: int | None = None
    deaths: int = 0
    last_death: str = ""
    given_up: bool = False
    _death_events: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pending = deque(self.items)
        self.unfinished = len(self.items)


def split_groups(groups: list[list[Item]], workers: int) -> tuple[list[Group], int]:
    """The invocation's groups; with fewer groups than ``workers``, each split into up to
    ``ceil(workers / groups)`` near-equal parts. Also returns how many groups were split."""
    parts = math.ceil(workers / len(groups)) if 0 < len(groups) < workers else 1
    out: list[Group] = []
    split = 0
    for image, items in enumerate(groups):
        n = min(parts, len(items)) or 1
        split += n > 1
        size, extra = divmod(len(items), n)
        start = 0
        for k in range(n):
            end = start + size + (1 if k < extra else 0)
            out.append(Group(image, items[start:end]))
            start = end
    return out, split


class Schedule:
    """The driver's bookkeeping of slots, workers and groups (see the module docstring).

    Args:
        groups: the invocation's groups (from :func:`split_groups`).
        workers: worker positions.
        concurrency: examples in flight at once over the cluster.
    """

    def __init__(self, groups: list[Group], workers: int, concurrency: int):
        if workers < 1 or concurrency < 1:
            raise ValueError("a schedule needs a worker and a slot")
        self.concurrency = concurrency
        self.queue: deque[Group] = deque(groups)  # not homed yet, in data set order
        self.in_flight = 0
        self.worker_in_flight = [0] * workers
        self.peak_in_flight = 0
        self._homed: list[deque[Group]] = [deque() for _ in range(workers)]
        self._paused = [False] * workers

    def grant(self) -> tuple[int, Group, Item] | None:
        """The next example to send and its worker, its slot taken; ``None`` while every slot
        is taken or no worker that may take work has any."""
        if self.in_flight >= self.concurrency:
            return None
        ready = [w for w in range(len(self._homed)) if not self._paused[w] and self._has_work(w)]
        if not ready:
            return None
        worker = min(ready, key=lambda w: self.worker_in_flight[w])  # ties: the lowest position
        group = self._next_group(worker)
        item = group.pending.popleft()
        self.in_flight += 1
        self.worker_in_flight[worker] += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return worker, group, item

    def add(self, group: Group) -> None:
        """A group read after the schedule started: it waits behind the groups not taken yet."""
        self.queue.append(group)

    def returned(self, worker: int) -> None:
        """A call to ``worker`` came back (done or failed): its slot is free."""
        self.in_flight -= 1
        self.worker_in_flight[worker] -= 1

    def finished(self, group: Group, count: int = 1) -> bool:
        """``count`` of ``group``'s examples have their records; True when it has no more."""
        group.unfinished -= count
        if group.unfinished or group.home is None:
            return not group.unfinished
        self._homed[group.home].remove(group)  # done: its worker forgets it
        return True

    def died(
        self, worker: int, generation: int, group: Group, item: Item, reason: str
    ) -> tuple[bool, list[Item]]:
        """``item`` was in flight on ``worker``'s process ``generation`` when it died.

        Returns whether this death is new for the group and sent it back to be redone, and
        the examples to record as failed now (``item``, and the group's unsent examples, once
        the group has died :data:`MAX_ATTEMPTS` times).
        """
        event = (worker, generation)
        new = event not in group._death_events
        if new:
            group._death_events.add(event)
            group.deaths += 1
            group.last_death = reason
        if group.given_up or group.deaths >= MAX_ATTEMPTS:
            failed = [item] if group.given_up else [item, *group.pending]
            group.given_up = True
            group.pending.clear()
            return False, failed
        group.pending.appendleft(item)
        return new, []

    def pause(self, worker: int) -> None:
        """``worker`` is being replaced: grant it nothing until :meth:`resume`."""
        self._paused[worker] = True

    def resume(self, worker: int) -> None:
        self._paused[worker] = False

    def _has_work(self, worker: int) -> bool:
        return bool(self.queue) or any(g.pending for g in self._homed[worker])

    def _next_group(self, worker: int) -> Group:
        homed = self._homed[worker]
        for group in homed:
            if group.pending:
                return group
        group = self.queue.popleft()
        group.home = worker
        homed.append(group)
        return group
