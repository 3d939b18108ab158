"""What README.md and docs/architecture.md say about controller options is what the CLI takes:
each ``agent.KEY`` and each key listed "of `agent` and `ground`" is a field of those
controllers' ``Options``, and each flag listed as a ``--controller-option`` shortcut is one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.controller_options import AgentOptions, GroundOptions
from bench.cli.args import CONTROLLER_OPTION_FLAGS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "architecture.md"]
SHORTCUTS = {flag.flag for flag in CONTROLLER_OPTION_FLAGS}


def flat(path: Path) -> str:
    return " ".join(path.read_text(encoding="utf-8").split())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_controller_option_keys_a_doc_names_are_options(doc: Path) -> None:
    text = flat(doc)
    agent_keys = re.findall(r"`agent\.(\w+)(?:=[^`]*)?`", text)
    shared = re.findall(r"((?:`\w+`(?:,? and |, )?)+)\)? of `agent` and `ground`", text)
    shared_keys = [key for group in shared for key in re.findall(r"`(\w+)`", group)]
    assert shared_keys, "the doc no longer lists the options of agent and ground"
    assert set(agent_keys) <= set(AgentOptions.model_fields), agent_keys
    for key in shared_keys:
        assert key in AgentOptions.model_fields and key in GroundOptions.model_fields, key


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_flags_a_doc_calls_controller_option_shortcuts_are_shortcuts(doc: Path) -> None:
    text = flat(doc)
    lists = re.findall(r"[Tt]he flags ((?:`--[\w-]+`,? (?:and )?)+)(?:set them|are shortcuts)", text)
    named = {flag for group in lists for flag in re.findall(r"`(--[\w-]+)`", group)}
    assert named, "the docs no longer list the shortcut flags"
    assert named <= SHORTCUTS, named - SHORTCUTS
