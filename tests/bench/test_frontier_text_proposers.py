"""The replay with a text-conditioned proposer (SAM 3's kind): the loop proposes again for each
rewrite, the candidates change (the workspace's best ranking starts again) and finding nothing
is a guard check of an empty ranking. A proposer of that kind built on the offline regions
(no weights) shows the replay still equals real runs."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers_frontier import compare_with_replay
from helpers_runner import offline_options, synthetic

from bench.options import DataSpec, RunOptions
from bench.runner import run_examples_sync
from bench.runtime import build_runtime
from bench.samples import read_samples
from tools.base import Workspace
from tools.offline.region_propose import RegionParams, RegionPropose
from tools.types import Proposals


class QueryRegions(RegionPropose):
    """The offline regions, filtered by the query: none for a ``photo`` template (nothing
    found), otherwise all but a query-dependent few (other candidates for another query)."""

    name = "query_regions"
    text_conditioned: ClassVar[bool] = True

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        return {**super().key_inputs(ws, params), "query": ws.query}

    async def __call__(self, ws: Workspace, params: RegionParams) -> Proposals:
        props = await super().__call__(ws, params)
        if "photo" in ws.query:
            return Proposals.empty(ws.image.size, source=self.name)
        drop = int(hashlib.sha256(ws.query.encode()).hexdigest(), 16) % 3
        keep = [i for i in range(len(props)) if i % 4 != drop]
        return Proposals.from_masks(props.masks[keep], scores=props.scores[keep], source=self.name)


def _run(folder: Path, tau: tuple[float, float], examples: list[Any]) -> Path:
    rt = build_runtime(offline_options(None, {"tau_conf": tau[0], "tau_gap": tau[1]}))
    rt.registry.register("query_regions", QueryRegions)
    rt = dataclasses.replace(rt, config=dataclasses.replace(rt.config, proposer="query_regions"))
    try:
        run_examples_sync(
            rt, examples, folder, DataSpec("synthetic", n=2), RunOptions(quiet=True, bootstrap=0)
        )
    finally:
        rt.close()
    return folder


@pytest.mark.slow
def test_the_replay_follows_a_text_conditioned_proposer(tmp_path: Path) -> None:
    examples = synthetic(2)
    pairs = [(0.5, 0.2), (0.3, 0.1), (0.0, 0.0)]
    ask = _run(tmp_path / "ask", (1.0, 1.0), examples)
    records, _ = read_samples(ask, rank_steps=True)
    steps = [s for r in records.values() for s in r.rank_steps]
    assert any(not s.candidates for s in steps)  # nothing found, kept as a guard check
    assert any(s.proposal_set > 0 for s in steps)  # the candidates changed with the query
    for tau in pairs:
        compare_with_replay(ask, _run(tmp_path / f"{tau}", tau, examples), tau)
