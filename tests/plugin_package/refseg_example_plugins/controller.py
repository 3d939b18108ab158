"""``last_words``: rank the expression, then only its last words; keep the surer ranking.

Referring expressions often end with the object ("the ball left of the red square" is a
counter-example, "the big red square" is not); ranking the last ``words`` words alone is a
cheap second opinion. It asks no VLM and uses no refiner: its one setting is the number of
words (``--controller-option last_words.words=1``).
"""

from __future__ import annotations

from pydantic import Field

from agent.controllers import ControllerSpec
from agent.episode import Episode, StopReason
from agent.loop_controller import propose_and_rank
from tools.base import StrictParams


class LastWordsOptions(StrictParams):
    """Settings of ``last_words``."""

    words: int = Field(default=2, ge=1, description="how many of the expression's last words to rank alone")


async def run_last_words(ep: Episode) -> None:
    """Propose and rank; unless the ranking is sure, rank the last ``words`` words too."""
    opts = ep.options_as(LastWordsOptions)
    ranking = await propose_and_rank(ep)
    if ep.guard(ranking):
        ep.stop_reason = StopReason.GUARD
        return
    short = " ".join(ep.ws.expression.split()[-opts.words :])
    if not ep.ws.set_query(short):  # the expression is no longer than that
        ep.stop_reason = StopReason.MAX_ITER
        return
    ep.iterations = 1
    second = await ep.call(ep.config.ranker, dict(ep.config.rank_args))
    ep.notes.append(f"last_words: also ranked {short!r} (words={opts.words})")
    ep.stop_reason = StopReason.GUARD if ep.guard(second) else StopReason.MAX_ITER


LAST_WORDS = ControllerSpec(
    name="last_words",
    run=run_last_words,
    description="rank the expression, then only its last words; keep the surer ranking",
    Options=LastWordsOptions,
)
