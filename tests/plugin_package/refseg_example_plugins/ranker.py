"""``my_ranker``: the attribute ranker's scores under a softmax temperature set as an option.

Its ``temperature`` option changes every output (a low temperature makes the top candidate's
probability near 1, a high one flattens it), yet the tool never mentions its options when a
cache key is built: the invoker puts the validated options into every key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from tools.base import StrictParams, Tool, ToolSettings, Workspace, run_on_device
from tools.errors import ToolError
from tools.offline.attribute_rank import measure, parse_query, score
from tools.types import Ranking


class MyRankerOptions(StrictParams):
    """Settings of ``my_ranker`` (``--tool-option my_ranker.temperature=0.05``)."""

    temperature: float = Field(default=1.0, gt=0, description="softmax temperature of the scores")


class MyRankerParams(StrictParams):
    query: str | None = Field(default=None, max_length=1000, description="text to rank against")


class MyRanker(Tool):
    """Rank candidates by colour, shape and position words, at the configured temperature."""

    name = "my_ranker"
    description = "Rank the candidate masks by the query's colour, shape and position words."
    version = "1"
    role = "rank"
    Params = MyRankerParams
    Output = Ranking
    Options = MyRankerOptions

    def __init__(self, settings: ToolSettings | None = None):
        super().__init__(settings)
        self.temperature = self.read_options(MyRankerOptions).temperature

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        if ws.proposals is None:
            raise ToolError("no proposals yet: call the propose tool first")
        query = params.query or ws.query
        return {
            "image": ws.image.digest,
            "proposals": ws.proposals.digest,
            "query": hashlib.sha256(query.encode()).hexdigest(),
        }

    async def __call__(self, ws: Workspace, params: MyRankerParams) -> Ranking:
        proposals = ws.require_proposals()
        query = params.query or ws.query
        features = await run_on_device(self.settings.device, measure, ws.image.pixels, proposals)
        scores = score(features, parse_query(query))
        return Ranking.from_scores(scores, query, self.temperature, proposals.digest, self.name)
