"""Small real Tool implementations for controller tests: a fixed proposer and a word ranker."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
from pydantic import Field

from tools.base import StrictParams, Tool, ToolSettings, Workspace
from tools.errors import ToolError
from tools.registry import ToolRegistry
from tools.types import Proposals, Ranking, Refinement


class StripesPropose(Tool):
    """Three horizontal stripes; counts real computations."""

    name = "stripes_propose"
    description = "three stripes"
    role = "propose"
    Output = Proposals
    computes = 0

    async def __call__(self, ws: Workspace, params: Any) -> Proposals:
        type(self).computes += 1
        await anyio.sleep(0.01)  # lets concurrent callers overlap
        h, w = ws.image.size
        masks = np.zeros((3, h, w), bool)
        for i in range(3):
            masks[i, i * h // 3 : (i + 1) * h // 3] = True
        return Proposals.from_masks(masks, source=self.name)


class WordParams(StrictParams):
    query: str | None = Field(default=None, description="text to rank against")
    temperature: float = Field(default=0.1, gt=0)


class WordRank(Tool):
    """Stripe k scores high when the query names its word (top/middle/bottom)."""

    name = "word_rank"
    description = "rank stripes by position words"
    role = "rank"
    Params = WordParams
    Output = Ranking
    WORDS = ("top", "middle", "bottom")

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        return {
            "image": ws.image.digest,
            "proposals": ws.require_proposals().digest,
            "query": params.query or ws.query,
        }

    async def __call__(self, ws: Workspace, params: Any) -> Ranking:
        props = ws.require_proposals()
        query = params.query or ws.query
        scores = np.array([1.0 if w in query else 0.0 for w in self.WORDS], np.float32)
        return Ranking.from_scores(scores, query, params.temperature, props.digest, self.name)


class SynonymRefine(Tool):
    """Maps 'upper' to 'top' etc.; raises when told to."""

    name = "synonym_refine"
    description = "rewrite synonyms"
    role = "refine"
    Output = Refinement
    cacheable = False
    fail = False

    async def __call__(self, ws: Workspace, params: Any) -> Refinement:
        if self.fail:
            raise ToolError("refiner is down")
        q = ws.query.replace("upper", "top").replace("lower", "bottom").replace("centre", "middle")
        return Refinement(query=q, rationale="synonyms", source="test")


def make_registry(settings: ToolSettings | None = None) -> ToolRegistry:
    registry = ToolRegistry(settings, plugins=False)
    registry.register("stripes_propose", StripesPropose)
    registry.register("word_rank", WordRank)
    registry.register("synonym_refine", SynonymRefine)
    return registry
