"""Limits that follow the VLM endpoint: requests in flight, requests and tokens per minute.

``--concurrency`` bounds examples, not requests: an agent asks 2-10 times per example, and a
hosted API enforces its own limits. A :class:`VLMLimiter` holds every request of a run (all
its episodes, and with Ray all its workers: one limiter actor, :mod:`bench.engines.vlm_limiter`)
to the endpoint's limits:

- ``max_concurrency``: requests in flight at once;
- ``rpm``: requests sent in any window of :attr:`VLMLimits.window_s` (60 s);
- ``tpm``: tokens (prompt + completion) of the requests sent in any such window. A request's
  tokens are not known before its reply: it reserves an estimate (:func:`estimate_tokens`),
  which is replaced by the reply's usage once it is there.

An attempt that never reached the endpoint (the connection was refused or timed out before
the request went out) gives its entries back (``release(..., reached=False)``): the endpoint
did not count it, so neither do the windows. A request that reached it counts, whatever the
HTTP status of its answer.

Why windows and not token buckets: a bucket that starts full lets a burst of a whole bucket
and then its refill through within one minute (up to twice ``rpm``); a sliding window of the
send times holds *every* minute to ``rpm``, which is what the endpoint counts.

Waiting is first in, first out. A request waits for a free slot first, then for the windows,
so its send time is the time the windows count. Time spent waiting is reported with the
permit (the client books it as wait, not compute). A slot is held at most ``lease_s``: a
holder that vanished (a killed Ray worker) cannot block the run. A server that answers 429
with ``Retry-After`` pauses every request of the run for that long (:meth:`VLMLimiter.pause`):
the endpoint has said that more requests now would only be refused. :func:`hold` pauses
before it releases the slot, so no waiting request takes the slot in between (through the
Ray actor each is a round trip).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from tools.device import book_wait
from tools.errors import ConfigError

IMAGE_TOKENS = 1_000  # an image part's estimated prompt tokens (a 768-pixel view on a 28-pixel grid: ~750)
CHARS_PER_TOKEN = 4
# Reply tokens reserved for a request that sets no max_tokens (the agent's turns: a tool call
# or a short answer, ~20-200 tokens); the reply's usage replaces the estimate.
REPLY_TOKENS = 256
_FLAGS = ("--vlm-max-concurrency", "--vlm-rpm", "--vlm-tpm")  # of VLMLimits' three limits, in order


@dataclass(frozen=True)
class VLMLimits:
    """The endpoint's limits (``None``: no such limit).

    Attributes:
        max_concurrency: requests in flight at once (``--vlm-max-concurrency``).
        rpm: requests per window (``--vlm-rpm``).
        tpm: tokens per window (``--vlm-tpm``).
        window_s: the window's length (60: per minute; tests use shorter ones).
        lease_s: longest a request may hold its slot (a request never runs longer than the
            client's timeout; this reclaims the slots of holders that died).
    """

    max_concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    lease_s: float = 300.0

    def __post_init__(self) -> None:
        for flag, value in zip(_FLAGS, (self.max_concurrency, self.rpm, self.tpm), strict=True):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if not (self.window_s > 0 and self.lease_s > 0):
            raise ConfigError("VLM limit windows and leases must be longer than 0 seconds")

    @classmethod
    def of(
        cls, max_concurrency: int | None, rpm: int | None, tpm: int | None, timeout_s: float | None
    ) -> VLMLimits:
        """The limits of ``--vlm-max-concurrency``, ``--vlm-rpm`` and ``--vlm-tpm``; a slot is held
        at most a request's ``timeout_s`` (default 60) plus 30 s (a dead holder's comes back then)."""
        lease = (timeout_s or 60.0) + 30.0
        return cls(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm, lease_s=lease)

    @property
    def enabled(self) -> bool:
        return any(v is not None for v in (self.max_concurrency, self.rpm, self.tpm))

    @property
    def flags(self) -> list[str]:
        """The flags that set these limits (``--vlm-rpm``...), as the user gave them."""
        given = zip(_FLAGS, (self.max_concurrency, self.rpm, self.tpm), strict=True)
        return [flag for flag, value in given if value is not None]

    def refuse_unused(self, why: str) -> None:
        """Refuse limits given to a run that calls no VLM (``why`` says which run and why):
        they would limit nothing.

        Raises:
            ConfigError: one line naming the flags given.
        """
        given = self.flags
        if given:
            many = len(given) > 1
            raise ConfigError(
                f"{', '.join(given)} {'apply' if many else 'applies'} only to runs that call a VLM, "
                f"and {why}; drop {'them' if many else 'it'}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_concurrency": self.max_concurrency,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "window_s": self.window_s,
        }

    def limiter(self) -> VLMLimiter | None:
        """A limiter holding requests to these limits (``None`` when there are none)."""
        return VLMLimiter(self) if self.enabled else None

    def describe(self) -> str:
        parts = [
            f"{self.max_concurrency} in flight" if self.max_concurrency else "",
            f"{self.rpm} requests" if self.rpm else "",
            f"{self.tpm} tokens" if self.tpm else "",
        ]
        per = "per minute" if self.window_s == 60 else f"per {self.window_s:g} s"
        return ", ".join(p for p in parts if p) + (f" {per}" if self.rpm or self.tpm else "")


def estimate_tokens(
    messages: list[dict[str, Any]], max_tokens: int | None = None, schemas: Any = None
) -> int:
    """A request's tokens before it is sent: the text of its messages and the JSON of
    ``schemas`` (the tools and response format sent with it) at 4 characters a token, each
    image at :data:`IMAGE_TOKENS`, plus ``max_tokens`` of reply (:data:`REPLY_TOKENS` when the
    request sets none)."""
    chars = len(json.dumps(schemas, separators=(",", ":"))) if schemas else 0
    images = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    images += 1
                elif isinstance(part, dict):
                    chars += len(str(part.get("text", "")))
    reply = REPLY_TOKENS if max_tokens is None else int(max_tokens)
    return chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS + reply


class SlidingWindow:
    """At most ``limit`` units in any ``window_s`` seconds, as the endpoint counts them.

    A request's units count from when it is sent until ``window_s`` after its reply came back
    (:meth:`settle`): the endpoint saw it arrive somewhere in between, so the next request that
    needs its room arrives at least ``window_s`` after it, whatever the network's delays. Pure
    bookkeeping on a given clock reading (tests drive it with any clock).
    """

    def __init__(self, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self._entries: deque[list[float]] = deque()  # [reply time (inf: in flight), units], in send order
        self._total = 0.0

    def _expire(self, now: float) -> None:
        while self._entries and self._entries[0][0] <= now - self.window_s:
            self._total -= self._entries.popleft()[1]

    def wait(self, now: float, units: float) -> float:
        """Seconds until ``units`` more fit (0: now; ``inf``: not before a reply comes back).
        More than ``limit`` units fit only into an empty window (a request larger than the
        limit is sent alone, never refused)."""
        self._expire(now)
        excess = self._total + min(units, self.limit) - self.limit
        if excess <= 0:
            return 0.0
        freed, latest = 0.0, 0.0
        for done, amount in self._entries:  # entries leave in send order
            freed, latest = freed + amount, max(latest, done)
            if freed >= excess:
                break
        return max(0.0, latest + self.window_s - now)

    def add(self, units: float) -> list[float]:
        """Count ``units`` of a request sent now; returns its entry (:meth:`settle` it)."""
        entry = [math.inf, float(units)]
        self._entries.append(entry)
        self._total += units
        return entry

    def settle(self, entry: list[float], now: float, units: float | None = None) -> None:
        """The request's reply came back at ``now``; ``units``: what it really used (the
        reply's usage, in place of the estimate)."""
        if units is not None:
            if any(e is entry for e in self._entries):
                self._total += units - entry[1]
            entry[1] = float(units)
        entry[0] = now

    def drop(self, entry: list[float]) -> None:
        """Take back the entry of a request that was never sent (the endpoint did not count it)."""
        for i, e in enumerate(self._entries):
            if e is entry:
                del self._entries[i]
                self._total -= entry[1]
                return


@dataclass
class Permit:
    """A request's right to go: its id (release it with that), and how long it waited."""

    id: int
    waited_s: float
    entries: tuple[list[float] | None, list[float] | None] = field(default=(None, None), repr=False)


class Limiter(Protocol):
    """What the VLM client needs from a limiter (local, or a Ray actor's proxy)."""

    async def acquire(self, tokens: int) -> Permit: ...

    async def release(self, permit: Permit, tokens: int | None, reached: bool = True) -> None: ...

    async def pause(self, seconds: float) -> None: ...


class VLMLimiter:
    """The limits of :class:`VLMLimits` for every request made through it (see module doc).

    Args:
        limits: what to hold the requests to.
        clock: monotonic seconds (tests pass their own).

    Attributes:
        requests: permits handed out; ``in_flight`` / ``max_in_flight``: slots held now / at most;
        waited_s: total seconds requests waited.
    """

    def __init__(self, limits: VLMLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self.clock = clock
        self._rpm = SlidingWindow(limits.rpm, limits.window_s) if limits.rpm else None
        self._tpm = SlidingWindow(limits.tpm, limits.window_s) if limits.tpm else None
        self._held: dict[int, tuple[float, Permit]] = {}  # permit id -> (lease deadline, permit)
        self._ids = itertools.count(1)
        self._gate: anyio.Lock | None = None  # made on first use, on the loop that uses it
        self._released: anyio.Event | None = None
        self._resume_at = 0.0
        self.requests = 0
        self.max_in_flight = 0
        self.waited_s = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def _wait(self, now: float, tokens: int) -> float:
        """Seconds until a request of ``tokens`` may go (a release may end it sooner)."""
        for permit in [p for p in self._held.values() if p[0] <= now]:  # holders that vanished
            self._free(permit, now, None)
        waits = [self._resume_at - now]
        if self.limits.max_concurrency and len(self._held) >= self.limits.max_concurrency:
            waits.append(min(deadline for deadline, _ in self._held.values()) - now)
        if self._rpm is not None:
            waits.append(self._rpm.wait(now, 1))
        if self._tpm is not None:
            waits.append(self._tpm.wait(now, tokens))
        return max(0.0, *waits)

    def _free(self, held: tuple[float, Permit], now: float, tokens: int | None, reached: bool = True) -> None:
        _, permit = held
        self._held.pop(permit.id, None)
        for window, entry in zip((self._rpm, self._tpm), permit.entries, strict=True):
            if window is None or entry is None:
                continue
            if not reached:
                window.drop(entry)
            else:
                window.settle(entry, now, tokens if window is self._tpm else None)

    async def acquire(self, tokens: int = 0) -> Permit:
        """Wait (first in, first out) until a request of about ``tokens`` may go; take its slot
        and count it in the windows."""
        if self._gate is None:
            self._gate = anyio.Lock()
        started = self.clock()
        async with self._gate:
            while True:
                self._released = anyio.Event()
                wait = self._wait(self.clock(), tokens)
                if wait <= 0:
                    break
                with anyio.move_on_after(wait):
                    await self._released.wait()  # a release may free room sooner
            now = self.clock()
            rpm = self._rpm.add(1) if self._rpm is not None else None
            tpm = self._tpm.add(min(tokens, self._tpm.limit)) if self._tpm is not None else None
            permit = Permit(next(self._ids), now - started, (rpm, tpm))
            self._held[permit.id] = (now + self.limits.lease_s, permit)
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, len(self._held))
        self.waited_s += permit.waited_s
        return permit

    async def release(self, permit: Permit, tokens: int | None = None, reached: bool = True) -> None:
        """The request is over (its reply came, or it failed).

        Args:
            permit: what :meth:`acquire` gave.
            tokens: what it really used (the reply's usage; ``None``: keep the estimate).
            reached: ``False``: it never reached the endpoint (a connect error), so it is taken
                out of the windows instead of counting for a minute.
        """
        held = self._held.get(permit.id)
        if held is not None:
            self._free(held, self.clock(), tokens, reached)
        if self._released is not None:
            self._released.set()

    async def pause(self, seconds: float) -> None:
        """Hold every request that has not gone yet for ``seconds`` (a server's Retry-After)."""
        self._resume_at = max(self._resume_at, self.clock() + max(0.0, seconds))

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "waited_s": round(self.waited_s, 4),
        }


@dataclass
class Slot:
    """What one attempt holds: how long it waited for the limits; set by the caller once the
    attempt is over: the tokens it really used, whether it reached the endpoint, and how long
    the endpoint asked every request to pause (a 429's ``Retry-After``)."""

    waited_s: float = 0.0
    used: int | None = None
    reached: bool = True
    pause_s: float | None = None


@asynccontextmanager
async def hold(
    limiter: Limiter | None, messages: list[dict[str, Any]], kw: dict[str, Any]
) -> AsyncIterator[Slot]:
    """One request's slot under ``limiter`` (none: go at once): acquired before the block,
    released after it even when the block is cancelled; the wait is booked on the running
    tool call's compute clock (:func:`tools.device.book_wait`), so a VLM-backed tool counts it
    as wait, not compute. A ``slot.pause_s`` set in the block pauses every request before the
    slot is released (else a waiting request would take it before the pause arrives)."""
    slot = Slot()
    if limiter is None:
        yield slot
        return
    schemas = [kw[k] for k in ("tools", "response_format") if kw.get(k)]
    permit = await limiter.acquire(estimate_tokens(messages, kw.get("max_tokens"), schemas))
    slot.waited_s = permit.waited_s
    book_wait(permit.waited_s)
    try:
        yield slot
    finally:
        with anyio.CancelScope(shield=True):
            if slot.pause_s is not None:
                await limiter.pause(slot.pause_s)
            await limiter.release(permit, slot.used, slot.reached)


__all__ = [
    "REPLY_TOKENS",
    "Limiter",
    "Permit",
    "SlidingWindow",
    "Slot",
    "VLMLimiter",
    "VLMLimits",
    "estimate_tokens",
    "hold",
]
