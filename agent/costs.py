"""Per-tool cost accounting: what each call spent now, and what it costs from an empty cache.

Every call is booked once, as exactly one of:

- ``computed``: it ran the tool; ``seconds`` is its compute time (time spent queueing for a
  device or waiting on the event loop is not compute, so the same work books the same
  seconds at any concurrency);
- ``joined``: it waited on an identical call already in flight and shared its output; the
  wait goes to ``wait_seconds``, never to ``seconds``;
- a cache hit (``cache_hits``, of which ``disk_hits`` came from the disk cache, the rest from
  the in-memory cache);
- or none of these: a call refused before it reached the tool (bad arguments), counted in
  ``errors`` only.

``wait_seconds`` is all the time a call waited rather than computed, whatever it waited on;
``vlm_wait_seconds`` is the part of it that VLM requests were held back: by the run's VLM
limits (``--vlm-max-concurrency``, ``--vlm-rpm``, ``--vlm-tpm``, and a 429's ``Retry-After``,
which pauses every request; :mod:`agent.vlm_limits`) or pausing between retries. The rest,
``wait_seconds - vlm_wait_seconds``, is time spent waiting on an identical call in flight.

``errors`` counts failed calls (refused or raised). ``tokens_in``, ``tokens_out`` and
``usd`` are what this call spent now (a hit spends none); ``reasoning_tokens`` are the part of
``tokens_out`` a reasoning model spent thinking (priced with them, as output).

The ``cold_*`` fields say what the same calls cost from an empty cache. From an empty cache a
run produces each distinct output once and reuses it, so: a computed call books its own cost;
the first hit or join on an output in a run books what producing it cost (stored with the
cache record), and later ones book nothing (the invoker tracks which outputs it booked). A run's
cold cost thus does not depend on what earlier runs left in the cache, nor on the order runs
ran in. A first hit on a record written before cold costs were stored has no such figure: it
is counted in ``cold_unknown`` and adds nothing, so a table can say "at least".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Outcome = Literal["computed", "joined", "memory", "disk", "refused"]


@dataclass(frozen=True)
class ColdCost:
    """What producing one output cost: compute seconds, tokens and USD."""

    seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 6),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "usd": round(self.usd, 8),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ColdCost | None:
        """The cost stored with a cache record; ``None`` when absent or unreadable."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                float(data.get("seconds", 0.0)),
                int(data.get("tokens_in", 0)),
                int(data.get("tokens_out", 0)),
                float(data.get("usd", 0.0)),
            )
        except (TypeError, ValueError):
            return None


@dataclass
class ToolCost:
    """The calls of one tool (see the module docstring for what each field means)."""

    calls: int = 0
    computed: int = 0
    joined: int = 0
    cache_hits: int = 0
    disk_hits: int = 0
    errors: int = 0
    seconds: float = 0.0
    wait_seconds: float = 0.0
    vlm_wait_seconds: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    reasoning_tokens: int = 0
    cold_seconds: float = 0.0
    cold_tokens_in: int = 0
    cold_tokens_out: int = 0
    cold_usd: float = 0.0
    cold_unknown: int = 0

    def add(self, other: ToolCost) -> None:
        for name in _COST_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        # Every field is a number: a plain dict, not dataclasses.asdict's deep copy (per record).
        d = {name: getattr(self, name) for name in _COST_FIELDS}
        for name in ("seconds", "wait_seconds", "vlm_wait_seconds", "cold_seconds"):
            d[name] = round(d[name], 6)
        for name in ("usd", "cold_usd"):
            d[name] = round(d[name], 8)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCost:
        """A record as written by :meth:`as_dict`; fields it lacks (older runs) are 0."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_COST_FIELDS = tuple(f.name for f in fields(ToolCost))


def _one(
    outcome: Outcome,
    *,
    seconds: float,
    wait_seconds: float,
    vlm_wait_seconds: float,
    error: bool,
    spent: ColdCost,
    cold: ColdCost | None,
    carries_cold: bool,
    reasoning_tokens: int = 0,
) -> ToolCost:
    """The cost record of one call."""
    books: bool  # this call books a cold cost (its own, or the output's first use in the run)
    if outcome == "computed":
        cold, books = spent, True
    else:
        books = outcome != "refused" and carries_cold
    cold_known = (cold or ColdCost()) if books else ColdCost()
    return ToolCost(
        calls=1,
        computed=int(outcome == "computed"),
        joined=int(outcome == "joined"),
        cache_hits=int(outcome in ("memory", "disk")),
        disk_hits=int(outcome == "disk"),
        errors=int(error),
        seconds=seconds if outcome == "computed" else 0.0,
        wait_seconds=wait_seconds,
        vlm_wait_seconds=vlm_wait_seconds,
        tokens_in=spent.tokens_in,
        tokens_out=spent.tokens_out,
        usd=spent.usd,
        reasoning_tokens=reasoning_tokens,
        cold_seconds=cold_known.seconds,
        cold_tokens_in=cold_known.tokens_in,
        cold_tokens_out=cold_known.tokens_out,
        cold_usd=cold_known.usd,
        cold_unknown=int(books and cold is None),
    )


@dataclass(frozen=True)
class Spend:
    """What an episode had spent asking for help, at some point of it (a ranking step, its end).

    ``vlm_calls`` counts the calls that asked the VLM: calls of VLM-backed tools (``refine_query``
    with the VLM refiner) and the controller's own VLM calls (booked under ``vlm``), whether the
    cache served them or not (a call is a request for an answer; what it cost is the tokens and
    USD). ``asks`` counts the calls past the ranking that asked for help, VLM or not: the
    refiner's (rules or VLM) and the VLM's own; for the VLM refiner they equal ``vlm_calls``.
    Tokens and USD are spent now and ``cold_*`` from an empty cache (see the module docstring).
    """

    vlm_calls: int = 0
    asks: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    cold_tokens_in: int = 0
    cold_tokens_out: int = 0
    cold_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The fields that are not 0 (a record reads the others back as 0)."""
        d = asdict(self)
        d["usd"], d["cold_usd"] = round(self.usd, 10), round(self.cold_usd, 10)
        return {k: v for k, v in d.items() if v}


@dataclass
class CostBook:
    """Costs by tool name (the VLM's own turns are booked under ``vlm``)."""

    tools: dict[str, ToolCost] = field(default_factory=dict)

    def record(
        self,
        tool: str,
        *,
        outcome: Outcome = "computed",
        seconds: float = 0.0,
        wait_seconds: float = 0.0,
        vlm_wait_seconds: float = 0.0,
        error: bool = False,
        tokens_in: int = 0,
        tokens_out: int = 0,
        usd: float = 0.0,
        cold: ColdCost | None = None,
        carries_cold: bool = True,
        reasoning_tokens: int = 0,
    ) -> None:
        """Book one call.

        Args:
            tool: the tool's name (``vlm`` for the agent's own turns).
            outcome: how the call was served (see the module docstring).
            seconds: compute seconds (booked only for a computed call).
            wait_seconds: seconds spent waiting rather than computing (on an identical call in
                flight, on the VLM).
            vlm_wait_seconds: of ``wait_seconds``, those VLM requests were held back by the
                VLM limits or pausing between retries.
            error: the call failed.
            tokens_in, tokens_out, usd: spent by this call now.
            cold: what producing the output cost, for a hit or a join (``None``: unknown).
            carries_cold: the hit or join is the run's first use of the output, so it books
                ``cold``; later uses book no cold cost.
            reasoning_tokens: of ``tokens_out``, those a reasoning model spent thinking.
        """
        spent = ColdCost(seconds, tokens_in, tokens_out, usd)
        one = _one(
            outcome,
            seconds=seconds,
            wait_seconds=wait_seconds,
            vlm_wait_seconds=vlm_wait_seconds,
            error=error,
            spent=spent,
            cold=cold,
            carries_cold=carries_cold,
            reasoning_tokens=reasoning_tokens,
        )
        self.tools.setdefault(tool, ToolCost()).add(one)

    def merge(self, other: CostBook) -> None:
        for name, cost in other.tools.items():
            self.tools.setdefault(name, ToolCost()).add(cost)

    def total(self) -> ToolCost:
        out = ToolCost()
        for cost in self.tools.values():
            out.add(cost)
        return out

    def calls(self, tool: str) -> int:
        return self.tools[tool].calls if tool in self.tools else 0

    def spend(self, vlm_tools: Collection[str], ask_tools: Collection[str]) -> Spend:
        """What the calls booked so far spent asking for help (see :class:`Spend`).

        Args:
            vlm_tools: the tools whose calls ask the VLM (``vlm`` always does).
            ask_tools: the tools whose calls ask for help past the ranking (the refiner).
        """
        total = self.total()
        return Spend(
            vlm_calls=sum(c.calls for n, c in self.tools.items() if n == "vlm" or n in vlm_tools),
            asks=sum(c.calls for n, c in self.tools.items() if n == "vlm" or n in ask_tools),
            tokens_in=total.tokens_in,
            tokens_out=total.tokens_out,
            usd=total.usd,
            cold_tokens_in=total.cold_tokens_in,
            cold_tokens_out=total.cold_tokens_out,
            cold_usd=total.cold_usd,
        )

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: cost.as_dict() for name, cost in sorted(self.tools.items())}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> CostBook:
        return cls({name: ToolCost.from_dict(values) for name, values in data.items()})
