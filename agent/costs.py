"""Per-tool cost accounting: calls, seconds, cache hits, errors, tokens and USD."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class ToolCost:
    calls: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0

    def add(self, other: ToolCost) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(d["seconds"], 6)
        d["usd"] = round(d["usd"], 8)
        return d


@dataclass
class CostBook:
    """Costs by tool name (the VLM's own turns are booked under ``vlm``)."""

    tools: dict[str, ToolCost] = field(default_factory=dict)

    def record(
        self,
        tool: str,
        *,
        seconds: float = 0.0,
        cache_hit: bool = False,
        error: bool = False,
        tokens_in: int = 0,
        tokens_out: int = 0,
        usd: float = 0.0,
    ) -> None:
        self.tools.setdefault(tool, ToolCost()).add(
            ToolCost(1, seconds, int(cache_hit), int(error), tokens_in, tokens_out, usd)
        )

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

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: cost.as_dict() for name, cost in sorted(self.tools.items())}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> CostBook:
        return cls({name: ToolCost(**values) for name, values in data.items()})
