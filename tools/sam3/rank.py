"""``sam3_rank``: SAM 3's own scores as the ranking, with guards that read them as probabilities.

Each candidate's score is what SAM 3 says about it for the query: the best
``score x mask IoU`` over SAM 3's instances of the query (so an instance scores exactly its
own detection x presence score; a candidate from an earlier query, or one a prompt tool drew,
scores through the instance it coincides with, and 0 when it matches none).

**The conversion to probabilities** (what ``tau_conf`` / ``tau_gap`` read, as they read CLIP's
softmax): SAM 3's scores are independent per instance (each says "this is an instance of the
phrase"), while a referring expression names one object. So ``p_i = s_i / max(1, sum_j s_j)``:
while the scores sum to at most 1 they are the probabilities as they are (the rest is "none
of these"; one instance at 0.35 gives conf 0.35, an unsure ranking); when they sum to more,
they share 1 in proportion (two instances at 0.9, say two dogs for "the dog on the left",
give 0.5 each: conf 0.5, gap 0, unsure). One instance at 0.9 and nothing else gives conf
0.9 and gap 0.9: sure. ``Ranking.scores`` keeps the raw scores; there is no temperature
(``Ranking.temperature`` is 1.0 and unused). No candidates is an empty ranking (conf 0):
"nothing found", which no guard passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tools.base import Tool, Workspace, run_on_device
from tools.errors import ToolError
from tools.prompting import held_proposals
from tools.sam3.declarations import SAM3_RANK, Sam3RankParams
from tools.sam3.overlap import match_scores
from tools.sam3.shared_model import UsesSam3Model
from tools.types import Image, Proposals, Ranking, boxes_from_masks

ALL_INSTANCES = 200  # SAM 3's query slots: rank against every instance above the threshold


def scores_to_probs(scores: np.ndarray) -> np.ndarray:
    """``s / max(1, sum(s))`` (see the module docstring)."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    return (s / max(1.0, float(s.sum()))).astype(np.float32)


def scores_ranking(scores: np.ndarray, query: str, proposals_digest: str, source: str) -> Ranking:
    """A :class:`Ranking` of SAM 3 scores with the documented conversion."""
    s = np.asarray(scores, dtype=np.float32)
    return Ranking(s, scores_to_probs(s), query, 1.0, proposals_digest, source)


class Sam3Rank(UsesSam3Model, Tool):
    """Rank the candidates by SAM 3's score for the query (see the module docstring).

    Args:
        settings: the run's tool settings (the model is ``sam3_propose``'s).
        proposer: the ``sam3_propose`` instance whose model to use; the registry hands it over.
    """

    declaration = SAM3_RANK
    Output = Ranking

    def resolve_query(self, ws: Workspace, params: Any) -> str:
        return self.proposer.resolve_query(ws, params)

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        inputs = {"image": ws.image.digest, "query": self.resolve_query(ws, params)}
        if ws.proposals is not None:
            inputs["proposals"] = ws.proposals.digest
        return inputs

    def key_args(self, params: Any) -> dict[str, Any]:
        # The query is in key_inputs, resolved; sam3_propose's options (its threshold) are in
        # every key of a tool that needs it.
        return {"threshold": params.threshold}

    def score_sync(self, image: Image, proposals: Proposals, query: str, threshold: float) -> np.ndarray:
        """Each candidate's SAM 3 score for ``query`` (blocking)."""
        found = self.proposer.engine().instances(image, query, threshold, ALL_INSTANCES)
        found_boxes = boxes_from_masks(found.masks)
        return match_scores(proposals.masks, proposals.boxes, found.masks, found_boxes, found.scores)

    async def __call__(self, ws: Workspace, params: Any) -> Ranking:
        proposals = held_proposals(ws)
        query = self.resolve_query(ws, params)
        if len(proposals) == 0:  # nothing found: an answer, which no guard passes
            return scores_ranking(np.zeros(0, dtype=np.float32), query, proposals.digest, self.name)
        if proposals.masks.shape[1:] != ws.image.size:
            raise ToolError("the candidates are not of this image's size; propose again on this image")
        scores = await run_on_device(
            self.settings.device,
            self.score_sync,
            ws.image,
            proposals,
            query,
            self.proposer.threshold(params.threshold),
        )
        return scores_ranking(scores, query, proposals.digest, self.name)


# The parameters are declared in tools.sam3.declarations; importable here too.
__all__ = ["Sam3Rank", "Sam3RankParams", "scores_ranking", "scores_to_probs"]
