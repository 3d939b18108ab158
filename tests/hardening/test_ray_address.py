"""Item 3: a --ray-address where something other than Ray listens is one line, within a
minute (``ray.init`` retries such an address forever)."""

from __future__ import annotations

import pytest
from helpers_chaos import chaos_row

from bench.chaos.ray_address import closed_port, silent_listener, web_server
from bench.engines.ray_cluster import check_reachable
from tools.errors import ConfigError


@pytest.mark.slow  # three CLI runs, one of them waits out the probe's 10 s deadline
def test_non_ray_services_at_ray_address_are_one_line_within_a_minute() -> None:
    row = chaos_row("Ray address")
    assert row.survived, row.problems
    assert row.injected == row.detected == 3
    assert max(row.details["seconds_to_error"].values()) < 60


def test_a_web_server_is_told_apart_from_a_ray_cluster() -> None:
    with web_server() as port, pytest.raises(ConfigError, match="not a Ray cluster") as info:
        check_reachable(f"127.0.0.1:{port}", timeout_s=5.0)
    assert "\n" not in str(info.value) and "--ray-address" in str(info.value)


def test_a_listener_that_never_answers_meets_the_deadline() -> None:
    with silent_listener() as port, pytest.raises(ConfigError, match=r"answered nothing within 0\.5 s"):
        check_reachable(f"ray://127.0.0.1:{port}", timeout_s=0.5)


def test_nothing_listening_is_still_its_own_message() -> None:
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        check_reachable(f"127.0.0.1:{closed_port()}", timeout_s=2.0)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_real_ray_cluster_passes_the_check() -> None:
    import ray

    check_reachable(ray.get_runtime_context().gcs_address, timeout_s=10.0)  # no error
