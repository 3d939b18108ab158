"""Item 3: a --ray-address where something other than Ray listens is one line, within a
minute (``ray.init`` retries such an address forever)."""

from __future__ import annotations

import pytest
from helpers_chaos import chaos_row

from bench.chaos.ray_address import (
    closed_port,
    grpc_unimplemented_server,
    h2_silent_listener,
    silent_listener,
    web_server,
)
from bench.engines.ray_cluster import check_reachable
from tools.errors import ConfigError


@pytest.mark.slow  # five CLI runs, two of them wait out the probe's 10 s deadlines
def test_non_ray_services_at_ray_address_are_one_line_within_a_minute() -> None:
    row = chaos_row("Ray address")
    assert row.survived, row.problems
    assert row.injected == row.detected == 5
    assert max(row.details["seconds_to_error"].values()) < 60


def test_a_web_server_is_told_apart_from_a_ray_cluster() -> None:
    with web_server() as port, pytest.raises(ConfigError, match="not a Ray cluster") as info:
        check_reachable(f"127.0.0.1:{port}", timeout_s=5.0)
    assert "\n" not in str(info.value) and "--ray-address" in str(info.value)


def test_a_listener_that_never_answers_meets_the_deadline() -> None:
    with silent_listener() as port, pytest.raises(ConfigError, match=r"answered nothing within 0\.5 s"):
        check_reachable(f"ray://127.0.0.1:{port}", timeout_s=0.5)


@pytest.mark.slow
def test_an_http2_listener_that_then_stays_silent_meets_the_deadline(
    capfd: pytest.CaptureFixture[str],
) -> None:
    expected = r"no Ray GCS replied within 1 s"
    with h2_silent_listener() as port, pytest.raises(ConfigError, match=expected) as info:
        check_reachable(f"127.0.0.1:{port}", timeout_s=1.0)
    assert "\n" not in str(info.value)
    assert capfd.readouterr().err == ""  # Ray's C++ client's warnings stay off stderr


def test_a_grpc_service_that_is_not_the_gcs_is_told_apart(capfd: pytest.CaptureFixture[str]) -> None:
    expected = "not a Ray head node's GCS"
    with grpc_unimplemented_server() as port, pytest.raises(ConfigError, match=expected) as info:
        check_reachable(f"127.0.0.1:{port}", timeout_s=10.0)
    assert "ray://" in str(info.value) and "\n" not in str(info.value)
    assert capfd.readouterr().err == ""


def test_nothing_listening_is_still_its_own_message() -> None:
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        check_reachable(f"127.0.0.1:{closed_port()}", timeout_s=2.0)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_real_ray_cluster_passes_the_check() -> None:
    import ray

    check_reachable(ray.get_runtime_context().gcs_address, timeout_s=10.0)  # no error


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_a_real_raylet_port_is_not_taken_for_the_gcs() -> None:
    """A real gRPC service of a Ray cluster that is not its GCS (ray.init there printed 21
    warnings and failed after 23 s)."""
    import ray

    node = ray.nodes()[0]
    with pytest.raises(ConfigError, match="not a Ray head node's GCS"):
        check_reachable(f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}", timeout_s=10.0)
