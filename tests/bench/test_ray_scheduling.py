"""The Ray engine on a real cluster: ``--concurrency`` is one limit for the cluster, counted at
the endpoint: never exceeded, and reached even when one image group is all there is.

The schedule's own rules are tested without Ray in test_ray_slots_are_shared_by_the_cluster.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_ray import last_invocation, run_on
from helpers_runner import id_counts, offline_options, synthetic

from bench.doubles.fixed_latency import LatencyEndpoint
from bench.engines.compare import answers
from bench.engines.ray_engine import RayEngine
from bench.options import EpisodeOptions, VLMOptions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

LATENCY_S = 0.2  # every ground request takes this long: examples overlap at the endpoint


def _ground(endpoint: LatencyEndpoint) -> EpisodeOptions:
    vlm = VLMOptions(base_url=endpoint.base_url)
    return offline_options(None, {"controller": "ground", "tau_conf": 1.0, "tau_gap": 1.0}, vlm=vlm)


def test_one_image_group_runs_at_the_full_concurrency_on_both_workers(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    examples = synthetic(1)  # one image: ~18 examples
    with LatencyEndpoint(LATENCY_S) as endpoint:  # a child process: it counts what arrives
        options = _ground(endpoint)
        run_on(tmp_path / "local", examples, options=options, concurrency=4)
        endpoint.stats(reset=True)
        result = run_on(tmp_path / "ray", examples, options=options, engine=ray_pool, concurrency=4)
        seen = endpoint.stats()
    assert result.summary.counts.ok == len(examples) == seen["requests"]
    assert seen["max_in_flight"] == 4  # a fixed split of 2 per worker reached 2
    inv = last_invocation(tmp_path / "ray")
    assert inv["groups_split"] == 1 and inv["images_run"] == 1
    assert inv["computed"]["region_propose"] == 2  # a part on each worker: proposed on both
    assert answers(tmp_path / "ray") == answers(tmp_path / "local")
    assert set(id_counts(tmp_path / "ray").values()) == {1}


def test_the_cluster_never_has_more_than_concurrency_examples_and_keeps_it_full(
    tmp_path: Path, ray_pool: RayEngine
) -> None:
    examples = synthetic(3)  # three images, ~54 examples: more groups than workers
    with LatencyEndpoint(LATENCY_S) as endpoint:
        result = run_on(tmp_path / "ray", examples, options=_ground(endpoint), engine=ray_pool, concurrency=8)
        seen = endpoint.stats()
    assert result.summary.counts.ok == len(examples) == seen["requests"]
    assert seen["max_in_flight"] == 8
    inv = last_invocation(tmp_path / "ray")
    assert inv["groups_split"] == 0 and inv["images_run"] == 3
    assert inv["computed"]["region_propose"] == 3  # each image on one worker only
