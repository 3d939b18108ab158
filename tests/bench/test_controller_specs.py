"""What is derived from a controller's spec: the VLM a run builds, the shortcut flags, the
report label, what config.json records (and so what a resume compares)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import anyio
import pytest
from helpers_plugins import install_in_process

from agent.controller_options import AgentOptions
from agent.controllers import get_controller, method_label
from agent.episode import EpisodeConfig
from bench.cli import build_parser
from bench.cli.args import episode_options
from bench.data.stream import index_examples
from bench.options import CacheOptions, DataSpec, EpisodeOptions, ModelOptions, VLMOptions
from bench.records import RunConfig
from bench.report.figures import _on_max_iter_axis, _round_free
from bench.run_folder import result_config
from bench.runtime import Runtime, build_runtime, describe_config
from bench.summary import run_label
from tools.errors import ConfigError

LOCAL_VLM = VLMOptions(base_url="http://127.0.0.1:9/v1")  # a local server needs no key; never called


def _options(controller: str, vlm: VLMOptions | None = None, **episode: object) -> EpisodeOptions:
    return EpisodeOptions(
        models=ModelOptions(toolset="offline"),
        episode=EpisodeConfig(controller=controller, **episode),  # type: ignore[arg-type]
        vlm=vlm or VLMOptions(),
        cache=CacheOptions(enabled=False),
    )


def _close(rt: Runtime) -> None:
    anyio.run(rt.aclose_vlm)
    rt.close()


@pytest.mark.parametrize(
    ("controller", "refiner", "needs"),
    [
        ("oneshot", "vlm", False),  # it never refines
        ("loop", "rules", False),
        ("loop", "vlm", True),  # it refines, with the VLM's refiner
        ("ground", "rules", True),  # it asks the VLM itself
        ("agent", "rules", True),
    ],
)
def test_whether_a_run_needs_the_vlm_comes_from_the_spec(controller: str, refiner: str, needs: bool) -> None:
    options = _options(controller)
    options = EpisodeOptions(models=ModelOptions(toolset="offline", refiner=refiner), episode=options.episode)  # type: ignore[arg-type]
    assert options.needs_vlm is needs


OPTIONAL_MODULE = """
from agent.controllers import ControllerSpec
from agent.loop_controller import run_oneshot

MAYBE = ControllerSpec(name="maybe_vlm", run=run_oneshot, description="one-shot", vlm="optional")
"""


def test_an_optional_vlm_is_built_when_configured_and_its_absence_said(tmp_path: Path) -> None:
    package = tmp_path / "optional_package"
    (package / "maybe_pkg").mkdir(parents=True)
    (package / "maybe_pkg" / "__init__.py").write_text(OPTIONAL_MODULE)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "maybe"\nversion = "0.1"\n'
        '[project.entry-points."refseg.controllers"]\nmaybe_vlm = "maybe_pkg:MAYBE"\n'
    )
    with install_in_process(tmp_path / "site", package):
        without = build_runtime(_options("maybe_vlm"))
        with_vlm = build_runtime(_options("maybe_vlm", LOCAL_VLM))
        limited = build_runtime(_options("maybe_vlm", VLMOptions(rpm=5)))  # limits, but no VLM
    try:
        assert without.vlm is None
        assert any(n.startswith("--controller maybe_vlm runs without a VLM: ") for n in without.notes)
        assert with_vlm.vlm is not None and with_vlm.settings.vlm is with_vlm.vlm
        assert limited.vlm is None and any(n.endswith("(--vlm-rpm limits nothing)") for n in limited.notes)
    finally:
        _close(without)
        _close(with_vlm)
        _close(limited)


def test_shortcut_flags_set_their_key_for_every_controller_that_has_it() -> None:
    parser = build_parser()

    def parsed(*args: str) -> EpisodeOptions:
        return episode_options(
            parser.parse_args(["bench", "run", "--out", "x", "--controller", "agent", *args])
        )

    got = parsed("--max-turns", "3", "--budget-tokens", "5", "--no-agent-warm-start")
    assert got.episode.controller_options == {
        "agent": {"max_turns": 3, "budget_tokens": 5, "warm_start": False},
        "ground": {"budget_tokens": 5},
    }
    same = parsed("--max-turns", "3", "--controller-option", "agent.max_turns=3")
    assert same.episode.controller_options == {"agent": {"max_turns": 3}}
    with pytest.raises(ConfigError, match=r"agent.max_turns=4 contradicts --max-turns 3"):
        parsed("--max-turns", "3", "--controller-option", "agent.max_turns=4")
    with pytest.raises(ConfigError, match=r"^controller agent: option max_turns: Input should be greater"):
        parsed("--max-turns", "0")  # checked when the options are built, before any example


@pytest.mark.parametrize("command", [["bench", "run", "--out", "x"], ["segment", "a.png", "the dog"]])
def test_options_of_a_controller_that_does_not_run_are_refused(command: list[str]) -> None:
    parser = build_parser()

    def parsed(*args: str) -> EpisodeOptions:
        return episode_options(parser.parse_args([*command, *args]))

    with pytest.raises(
        ConfigError, match=r"^--max-turns sets max_turns of agent, but the controller that runs is loop"
    ):
        parsed("--controller", "loop", "--max-turns", "3")
    with pytest.raises(
        ConfigError, match=r"^--controller-option agent.max_turns is an option of agent, .* is loop; "
    ):
        parsed("--controller-option", "agent.max_turns=3")  # loop: the default controller
    with pytest.raises(
        ConfigError, match=r"^--budget-usd sets budget_usd of ground and agent, .* is oneshot"
    ):
        parsed("--controller", "oneshot", "--budget-usd", "1")
    assert parsed("--controller", "ground", "--budget-usd", "1").episode.controller_options["ground"] == {
        "budget_usd": 1.0
    }


def test_the_suite_still_hands_options_to_every_controller_that_has_them() -> None:
    from bench.cli.suite import suite_options

    ns = build_parser().parse_args(["bench", "suite", "--out", "x", "--max-turns", "3", "--budget-usd", "1"])
    got = suite_options(ns)
    assert got.episode.episode.controller_options == {
        "agent": {"max_turns": 3, "budget_usd": 1.0},
        "ground": {"budget_usd": 1.0},
    }


def test_flags_feed_the_spec_options_and_defaults_live_there_once() -> None:
    rt = build_runtime(_options("agent", LOCAL_VLM, controller_options={"agent": {"max_turns": 3}}))
    try:
        recorded = describe_config(rt)["episode"]["controller_options"]
    finally:
        _close(rt)
    assert recorded == {"agent": {**AgentOptions().model_dump(mode="json"), "max_turns": 3}}
    assert not set(AgentOptions.model_fields) & set(EpisodeConfig.__dataclass_fields__)  # one copy


def test_config_records_only_the_running_controllers_options() -> None:
    spec = DataSpec("synthetic", n=1)
    source = spec.open()
    examples = (source.record(), index_examples(source))
    built = [
        build_runtime(_options("loop")),
        build_runtime(_options("loop", controller_options={"agent": {"max_turns": 3}})),
        build_runtime(_options("agent", LOCAL_VLM)),
        build_runtime(_options("agent", LOCAL_VLM, controller_options={"agent": {"max_turns": 3}})),
    ]
    try:
        loop, loop_other, agent, agent_other = (result_config(rt, spec, *examples) for rt in built)
    finally:
        for rt in built:
            _close(rt)
    assert loop["episode"]["controller_options"] == {"loop": {}}
    assert loop == loop_other  # an agent setting cannot refuse a loop run's resume
    assert agent != agent_other  # but refuses the agent's


@pytest.mark.parametrize(
    ("label", "method"),
    [
        ({"controller": "oneshot", "refiner": None, "max_iter": 0}, "oneshot"),
        ({"controller": "loop", "refiner": "rules", "max_iter": 3}, "loop(rules) x3"),
        ({"controller": "agent", "refiner": "vlm", "max_iter": 3}, "agent"),
        ({"controller": "ground", "refiner": "vlm", "max_iter": 1}, "ground"),
        ({"controller": "uninstalled_plugin", "max_iter": 3}, "uninstalled_plugin"),
    ],
)
def test_report_labels_come_from_the_spec(label: dict[str, object], method: str) -> None:
    assert method_label(label) == method
    assert get_controller("loop").method_label({"refiner": "vlm", "max_iter": 2}) == "loop(vlm) x2"


def _config(controller: str, refiner: str = "rules", max_iter: int = 3) -> RunConfig:
    return RunConfig.model_validate(
        {
            "results": {
                "episode": {"controller": controller, "max_iter": max_iter},
                "settings": {"options": {"refine_query": {"refiner": refiner}}},
            }
        }
    )


@pytest.mark.parametrize(
    ("controller", "refiner", "max_iter"),
    [
        ("oneshot", None, 0),  # proposes and ranks only: no refiner, no rounds
        ("loop", "rules", 3),
        ("agent", "rules", 3),  # it refines (the refine tool is the VLM's)
        ("ground", None, 3),  # never refines, but grounds when max_iter >= 1
        ("uninstalled_plugin", "rules", 3),  # not installed here: as recorded
    ],
)
def test_run_labels_say_no_refiner_from_the_spec(controller: str, refiner: str | None, max_iter: int) -> None:
    label = run_label(_config(controller))
    assert (label.refiner, label.max_iter) == (refiner, max_iter)


def test_the_max_iter_figure_places_runs_by_their_spec(tmp_path: Path) -> None:
    def placed(controller: str) -> tuple[bool, bool]:
        run = SimpleNamespace(label=run_label(_config(controller)))
        return _on_max_iter_axis(run), _round_free(run)  # type: ignore[arg-type]

    assert placed("loop") == (True, False)  # its label says x3: a series along max_iter
    assert placed("oneshot") == (False, True)  # the 0 point
    assert placed("agent") == placed("ground") == (False, False)  # max_iter is not their axis
    assert placed("uninstalled_plugin") == (False, False)  # what it does cannot be told here
    with install_in_process(tmp_path / "site"):
        assert placed("last_words") == (False, True)  # a plugin that proposes and ranks only
