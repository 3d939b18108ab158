"""The agent's ``submit`` function: its parameters, its schema, and the ranking it produces."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pydantic import Field

from tools.base import StrictParams
from tools.declaration import function_schema
from tools.types import Ranking

SUBMIT = "submit"
SUBMIT_DESCRIPTION = (
    "Finish: choose the candidate mask that matches the referring expression, by the index "
    "the ranker reported. Ends the episode."
)


class SubmitParams(StrictParams):
    """Arguments of the ``submit`` function."""

    index: int = Field(ge=0, description="Index of the chosen candidate, as the ranker reported it.")
    reason: str | None = Field(default=None, max_length=500, description="One short sentence why.")


@functools.cache
def _submit_schema() -> dict[str, Any]:
    return function_schema(SUBMIT, SUBMIT_DESCRIPTION, SubmitParams)


def submit_schema() -> dict[str, Any]:
    """The OpenAI function schema of ``submit`` (made once; shared: read it, never change it)."""
    return _submit_schema()


class SubmittedRanking(Ranking):
    """A ranking with the agent's choice on top.

    ``probs`` and ``scores`` stay the ranker's; ``conf`` is the ranker's probability of the
    chosen candidate and ``gap`` its margin over the best other one (negative when the agent
    overrode the ranker), so results stay honest about what CLIP thought.
    """

    chosen: int = -1

    @classmethod
    def of(cls, base: Ranking, chosen: int, by: str = SUBMIT) -> SubmittedRanking:
        """``base`` with candidate ``chosen`` on top; ``by`` names who chose (the source prefix)."""
        out = cls(
            base.scores,
            base.probs,
            base.query,
            base.temperature,
            base.proposals_digest,
            source=f"{by}:{base.source}",
        )
        out.chosen = chosen
        return out

    @property
    def order(self) -> np.ndarray:
        rest = [int(i) for i in np.argsort(-self.probs, kind="stable") if int(i) != self.chosen]
        return np.array([self.chosen, *rest], dtype=np.int64)

    @property
    def conf(self) -> float:
        return float(self.probs[self.chosen])

    @property
    def gap(self) -> float:
        others = np.delete(self.probs, self.chosen)
        return float(self.probs[self.chosen] - (others.max() if others.size else 0.0))
