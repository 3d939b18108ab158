"""The agent's ``submit`` function: its parameters, its schema, and the ranking it produces."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from tools.base import StrictParams
from tools.declaration import function_schema
from tools.types import Ranking

SUBMIT = "submit"
SUBMIT_DESCRIPTION = (
    "Finish: choose the candidate mask that matches the referring expression, by the index "
    "the ranker reported. Ends the episode."
)
NO_MATCH_DESCRIPTION = (
    " Or, when nothing in the image matches the expression, no_match: true (an empty mask)."
)


class SubmitParams(StrictParams):
    """Arguments of the ``submit`` function."""

    index: int = Field(ge=0, description="Index of the chosen candidate, as the ranker reported it.")
    reason: str | None = Field(default=None, max_length=500, description="One short sentence why.")


class SubmitOrNoneParams(StrictParams):
    """Arguments of ``submit`` when "no such object" is an answer the episode takes
    (``EpisodeConfig.not_found`` is ``empty``): a candidate's index, or ``no_match``."""

    index: int | None = Field(
        default=None, ge=0, description="Index of the chosen candidate, as the ranker reported it."
    )
    no_match: bool = Field(
        default=False,
        description="True when no object in the image matches the expression (it refers to "
        "nothing); give no index then.",
    )
    reason: str | None = Field(default=None, max_length=500, description="One short sentence why.")

    @model_validator(mode="after")
    def _one_answer(self) -> SubmitOrNoneParams:
        if (self.index is None) == (not self.no_match):
            raise ValueError("give either index (a candidate) or no_match: true (nothing matches), not both")
        return self


def submit_params(allow_none: bool) -> type[SubmitParams] | type[SubmitOrNoneParams]:
    """The parameters of ``submit``: with ``allow_none``, an index or ``no_match``."""
    return SubmitOrNoneParams if allow_none else SubmitParams


@functools.cache
def submit_schema(allow_none: bool = False) -> dict[str, Any]:
    """The OpenAI function schema of ``submit`` (with ``allow_none``: ``no_match`` too); made
    once per form and shared: read it, never change it."""
    description = SUBMIT_DESCRIPTION + (NO_MATCH_DESCRIPTION if allow_none else "")
    return function_schema(SUBMIT, description, submit_params(allow_none))


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
