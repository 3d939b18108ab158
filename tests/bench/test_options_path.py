"""One options path: typed options from the CLI, defaults in one place, --tool-option, config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.episode import EpisodeConfig
from bench.cli import build_parser, main
from bench.cli.args import episode_options
from bench.doubles.scripted_server import ScriptedServer, Text
from bench.option_pairs import parse_tool_option, tool_options_from
from bench.options import EpisodeOptions, ModelOptions
from bench.runtime import build_runtime, describe_config
from tools.base import ToolSettings
from tools.errors import ConfigError

RUN = [
    "bench",
    "run",
    "--dataset",
    "synthetic",
    "--n",
    "1",
    "--toolset",
    "offline",
    "--quiet",
    "--bootstrap",
    "0",
]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("refine_query.refiner=vlm", ("refine_query", "refiner", "vlm")),
        ("my_ranker.temperature=0.25", ("my_ranker", "temperature", 0.25)),
        ('my_ranker.words=["red", "blue"]', ("my_ranker", "words", ["red", "blue"])),
        ("my_ranker.flag=true", ("my_ranker", "flag", True)),
        ("my_ranker.note=a=b", ("my_ranker", "note", "a=b")),
    ],
)
def test_tool_option_values_are_json_or_strings(text: str, parsed: tuple[str, str, object]) -> None:
    assert parse_tool_option(text) == parsed


@pytest.mark.parametrize("text", ["refiner=vlm", "refine_query.=x", ".k=1", "refine_query.refiner"])
def test_malformed_tool_option_says_the_form(text: str) -> None:
    with pytest.raises(ConfigError, match=r"NAME\.KEY=VALUE"):
        parse_tool_option(text)


def test_repeated_tool_options_collect_per_tool() -> None:
    got = tool_options_from(["a.x=1", "b.y=2", 'a.z="s"'])
    assert got == {"a": {"x": 1, "z": "s"}, "b": {"y": 2}}


def test_cli_defaults_come_from_the_option_classes() -> None:
    args = build_parser().parse_args(["segment", "img.png", "the dog"])
    options = episode_options(args)
    assert options == EpisodeOptions()  # nothing given: every default is the dataclass's
    assert options.episode.tau_gap == EpisodeConfig().tau_gap
    given = episode_options(
        build_parser().parse_args(["segment", "i.png", "d", "--tau-gap", "0.3", "--no-cache"])
    )
    assert given.episode.tau_gap == 0.3 and given.cache.enabled is False
    assert dataclasses.replace(given.episode, tau_gap=EpisodeConfig().tau_gap) == EpisodeConfig()


def test_every_tool_setting_reaches_config_json() -> None:
    described = {}
    for toolset in ("models", "offline"):  # SAM + CLIP read every setting; offline tools none
        rt = build_runtime(EpisodeOptions(models=ModelOptions(toolset=toolset)))
        try:
            described[toolset] = describe_config(rt)["settings"]
        finally:
            rt.close()
    # Derived from the dataclass: a new ToolSettings field is covered without editing a list.
    assert set(described["models"]) == {f.name for f in dataclasses.fields(ToolSettings)} - {"vlm"}
    # A run records only the settings its tools read (and the session's own).
    assert set(described["offline"]) == {"max_side", "device", "options"}


@pytest.mark.slow
def test_tool_option_reaches_the_tool_and_the_resume_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    with ScriptedServer(policy=lambda _r: Text('{"query": "the red circle", "rationale": "x"}')) as srv:
        args = [
            *RUN,
            "--out",
            str(out),
            "--controller",
            "loop",
            "--tau-conf",
            "1",
            "--vlm-base-url",
            srv.base_url,
        ]
        assert main([*args, "--tool-option", "refine_query.refiner=vlm"]) in (0, 1)
        assert srv.requests, "refine_query did not see refiner=vlm"
    config = json.loads((out / "config.json").read_text())
    assert config["results"]["settings"]["options"]["refine_query"] == {"refiner": "vlm"}
    # Another value of the option is another configuration: resuming with it is refused.
    capsys.readouterr()
    assert main([*args, "--tool-option", "refine_query.refiner=rules"]) == 2
    assert "refine_query.refiner" in capsys.readouterr().err


def test_unknown_tool_in_tool_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*RUN, "--out", str(tmp_path / "r"), "--tool-option", "no_such_tool.k=1"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown tool 'no_such_tool'" in err and "Traceback" not in err


def test_bad_tool_option_value_is_one_line_before_any_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*RUN, "--out", str(tmp_path / "r"), "--tool-option", "refine_query.refiner=magic"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "refine_query" in err and "refiner" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r" / "samples.jsonl").exists()


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("attribute_rank.temprature=0.05", ("attribute_rank takes no options", "temprature")),
        ("sam_propose.points_per_side=64", ("sam_propose", "points_per_side")),
        ("clip_rank.stlye={}", ("clip_rank", "stlye")),
    ],
)
def test_a_key_no_tool_reads_is_refused_not_ignored(
    option: str, words: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt or unknown key is refused, never ignored in silence."""
    code = main([*RUN, "--out", str(tmp_path / "r"), "--tool-option", option])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "r" / "samples.jsonl").exists()
