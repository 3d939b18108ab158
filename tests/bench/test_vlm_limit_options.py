"""The VLM limit flags (``--vlm-max-concurrency``, ``--vlm-rpm``, ``--vlm-tpm``) given to a run
that calls no VLM: a one-line error, never silently ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.episode import EpisodeConfig
from bench.cli import main
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, VLMOptions
from bench.runtime import build_runtime
from bench.suite import run_suite_sync
from bench.suite_options import SuiteOptions
from tools.errors import ConfigError


def _options(controller: str, refiner: str = "rules", **limits: int) -> EpisodeOptions:
    return EpisodeOptions(
        models=ModelOptions(toolset="offline", refiner=refiner),  # type: ignore[arg-type]
        episode=EpisodeConfig(controller=controller),
        vlm=VLMOptions(base_url="http://127.0.0.1:9/v1", **limits),  # configured, never called
        cache=CacheOptions(enabled=False),
    )


@pytest.mark.parametrize(
    ("controller", "limits", "message"),
    [
        (
            "oneshot",
            {"rpm": 60},
            "--vlm-rpm applies only to runs that call a VLM, and --controller oneshot calls none; drop it",
        ),
        (
            "loop",
            {"max_concurrency": 8, "tpm": 1000},
            "--vlm-max-concurrency, --vlm-tpm apply only to runs that call a VLM, and --controller loop "
            "with the rules refiner calls none (--refiner vlm does); drop them",
        ),
    ],
)
def test_limits_for_a_run_that_calls_no_vlm_are_refused(
    controller: str, limits: dict[str, int], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_runtime(_options(controller, **limits))
    assert str(caught.value) == message


def test_limits_for_a_run_that_calls_the_vlm_are_taken() -> None:
    rt = build_runtime(_options("loop", refiner="vlm", rpm=60))
    try:
        assert rt.vlm is not None and rt.vlm.limiter is not None
        assert rt.vlm.config.limits.rpm == 60
    finally:
        rt.close()


def test_the_cli_says_it_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline", "--no-cache"]
    argv += ["--controller", "oneshot", "--vlm-rpm", "10", "--quiet", "--out", str(tmp_path / "r")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--vlm-rpm applies only to runs that call a VLM" in err


def test_a_suite_without_a_vlm_refuses_them(tmp_path: Path) -> None:
    episode = EpisodeOptions(
        models=ModelOptions(toolset="offline"), vlm=VLMOptions(rpm=10), cache=CacheOptions(enabled=False)
    )
    options = SuiteOptions(out=tmp_path / "suite", episode=episode, data=DataSpec(dataset="synthetic", n=1))
    with pytest.raises(ConfigError, match=r"--vlm-rpm applies only .* no sub-run of this suite calls one"):
        run_suite_sync(options)  # no VLM configured (no key, no base URL): the rules refiner
    assert not (tmp_path / "suite").exists()
