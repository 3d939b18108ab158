"""Every flag of every ``refseg`` command and subcommand has a help line that shows its default.

The walk below covers whatever commands are registered when it runs, so a flag another branch
adds is held too: declare it in a flag table bound to its option class (``flags(...,
owner=...)`` in :mod:`bench.cli.args`), which shows the field's default, or say the default in
its help text (the word "default"; switches show "(default: off)", required flags
"(required)").
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.episode import EpisodeConfig
from bench.cli import build_parser, main
from bench.cli.args import add_flags, flags
from bench.cli.help import RefsegParser, VersionAction
from bench.options import ModelOptions


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command path, parser)`` for the parser and every subparser below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, f"{path} {name}")


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as ``--help`` prints it (defaults expanded), on one line."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def problems(parser: argparse.ArgumentParser, path: str = "refseg") -> list[str]:
    """Each flag (and command) with no help line, or an optional one whose help shows no default."""
    found = []
    for where, p in walk(parser, path):
        for action in p._actions:
            if isinstance(action, argparse._HelpAction | VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                helped = {c.dest for c in action._choices_actions if c.help}
                found += [f"{where} {name}: no help line" for name in action.choices if name not in helped]
                continue
            name = "/".join(action.option_strings) or action.dest
            if action.help == argparse.SUPPRESS:
                continue  # not shown (bench suite's per-sub-run flags, refused with a hint)
            if not action.help:
                found.append(f"{where} {name}: no help line")
            elif not (action.required or "default" in shown_help(p, action).lower()):
                found.append(f"{where} {name}: no default shown ({shown_help(p, action)!r})")
    return found


def flag_help(command: list[str], flag: str) -> str:
    parser = build_parser()
    for where, p in walk(parser, "refseg"):
        if where == " ".join(["refseg", *command]):
            action = next(a for a in p._actions if flag in a.option_strings)
            return shown_help(p, action)
    raise AssertionError(f"no command {command}")


def test_every_flag_of_every_command_has_a_help_line_showing_its_default() -> None:
    assert problems(build_parser()) == []


def test_the_walk_catches_a_flag_without_help_or_default_and_accepts_a_bound_one() -> None:
    parser = RefsegParser(prog="refseg")
    sub = parser.add_subparsers(dest="command")
    new = sub.add_parser("new", help="a command another branch adds")
    new.add_argument("--bare")
    new.add_argument("--vague", help="a number")
    new.add_argument("--switch", action="store_true", help="turn it on")
    new.add_argument("--must", required=True, help="a required flag")
    add_flags(
        new,
        "bound",
        flags(("--max-side", "max_side", {"type": int, "help": "longest side"}), owner=ModelOptions),
    )
    found = problems(parser)
    assert found == [
        "refseg new --bare: no help line",
        "refseg new --vague: no default shown ('a number')",
    ]
    assert flag_help_of(new, "--max-side") == f"longest side (default: {ModelOptions().max_side})"
    assert flag_help_of(new, "--switch") == "turn it on (default: off)"
    assert flag_help_of(new, "--must") == "a required flag (required)"
    sub.add_parser("silent")
    assert "refseg silent: no help line" in problems(parser)


def flag_help_of(parser: argparse.ArgumentParser, flag: str) -> str:
    return shown_help(parser, next(a for a in parser._actions if flag in a.option_strings))


def _sam_points_default() -> int:
    from tools.sam_propose import SamProposeParams

    return int(SamProposeParams.model_fields["points_per_side"].default)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--controller", f"default {EpisodeConfig().controller}"),
        ("--max-iter", f"default: {EpisodeConfig().max_iter}"),
        ("--tau-conf", f"default: {EpisodeConfig().tau_conf:g}"),
        ("--tau-gap", f"default: {EpisodeConfig().tau_gap:g}"),
        ("--pick", f"default: {EpisodeConfig().pick}"),
        ("--episode-timeout", f"default: {EpisodeConfig().episode_timeout_s:g}"),
        ("--max-turns", "default 8"),
        ("--budget-tokens", "default"),
        ("--budget-usd", "default"),
        ("--max-tool-calls", "default 24"),
        ("--sam-model", f"default: {ModelOptions().sam_model}"),
        ("--points-per-side", "sam_propose {points}"),
        ("--clip-model", f"default: {ModelOptions().clip_model}"),
        ("--max-side", f"default: {ModelOptions().max_side}"),
        ("--vlm-timeout", "default: 60"),
        ("--vlm-max-retries", "default: 4"),
        ("--no-cache", "default: off"),
    ],
)
def test_the_flags_the_issue_named_show_their_true_defaults(flag: str, expected: str) -> None:
    text = flag_help(["segment"], flag)
    assert expected.format(points=_sam_points_default()) in text, text


def test_agent_option_shortcuts_show_the_controllers_defaults() -> None:
    from agent.controllers import get_controller

    agent = get_controller("agent").option_fields()
    assert f"default {agent['max_turns'][0]}" in flag_help(["bench", "run"], "--max-turns")
    assert f"default {agent['max_tool_calls'][0]}" in flag_help(["bench", "run"], "--max-tool-calls")


def test_suite_lists_neither_controller_nor_max_iter_and_refuses_them_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "suite", "--help"])
    text = capsys.readouterr().out
    assert not re.search(r"--controller[ \]]", text) and not re.search(r"--max-iter[ \]]", text)
    assert "--max-iters N,..." in text and "--controller-option" in text
    assert "1,2,3" in flag_help(["bench", "suite"], "--max-iters")
    assert "noise10,noise20,blur5,blur9" in flag_help(["bench", "suite"], "--perturbations")
    code = main(["bench", "suite", "--dataset", "synthetic", "--out", str(tmp_path), "--controller", "agent"])
    assert code == 2
    assert "bench suite sets --controller per sub-run" in capsys.readouterr().err


def test_segment_usage_reads_images_then_one_expression(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"usage: refseg segment \[-h\] \[options\] IMAGE \[IMAGE \.\.\.\] EXPRESSION\n", out)
    assert "EXPRESSION [" not in out  # no repeated IMAGE... EXPRESSION pairs
    args = build_parser().parse_args(["segment", "a.jpg", "b/", "the red car", "--max-iter", "1"])
    assert args.images == ["a.jpg", "b/"] and args.expression == "the red car"
    with pytest.raises(SystemExit) as exc:
        main(["segment", "a.jpg"])
    assert exc.value.code == 2 and "required: EXPRESSION" in capsys.readouterr().err


def test_version_prints_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"refseg {importlib.metadata.version('refseg-loop')} (refseg-loop, Python ")


def test_tools_name_lists_arguments_and_options_with_types_defaults_and_allowed_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["tools", "refine_query"]) == 0
    out = capsys.readouterr().out
    assert "options (--tool-option refine_query.KEY=VALUE" in out
    assert '  refiner: string; rules | vlm (default "rules")' in out
    assert "  hint: string or null; at most 500 characters (default null)" in out
    assert main(["tools", "clip_rank"]) == 0
    out = capsys.readouterr().out
    assert '  style: object (default {"margin": 0.1, "grey": 128,' in out and "outline_color" in out
    assert '  mode: string; crop | blur | grey | outline (default "crop")' in out
    assert main(["tools", "nope"]) == 2
    assert "unknown tool 'nope'" in capsys.readouterr().err


def test_a_bad_tool_option_names_the_type_it_takes_and_where_options_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(b"")  # never read: the option is refused first
    code = main(["segment", str(image), "the dog", "--tool-option", "clip_rank.style=banana"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "option style: Input should be a valid dictionary" in err and "(style takes object)" in err
    assert "`refseg tools clip_rank` lists the options" in err
