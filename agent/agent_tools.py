"""Which tools the ``agent`` controller offers the VLM, read from the tools' declarations (no
tool module is imported to learn a role: :mod:`tools.declaration`)."""

from __future__ import annotations

from agent.episode import EpisodeConfig
from agent.prompt_tools import prompt_tool_name
from agent.submit import SUBMIT
from tools.registry import ToolRegistry


def offered_tools(registry: ToolRegistry, cfg: EpisodeConfig) -> tuple[list[str], list[str]]:
    """The tools the model may call, and the optional ones skipped because they are broken.

    The episode's proposer, ranker and refiner come first, then the proposer's prompt tool
    (when it has one), then every other registry tool of role ``other``.
    """
    prompt = prompt_tool_name(registry, cfg.proposer)
    names = list(dict.fromkeys([cfg.proposer, cfg.ranker, cfg.refiner, *([prompt] if prompt else [])]))
    skipped: list[str] = []
    for name in registry.names():
        if name in names or name == SUBMIT:
            continue
        try:
            if registry.declaration(name).role == "other":
                names.append(name)
        except Exception:  # a broken optional plugin must not cost the episode
            skipped.append(name)
    return names, skipped


def other_tools(registry: ToolRegistry, cfg: EpisodeConfig) -> list[str]:
    """The tools the agent offers beyond the episode's proposer, ranker, refiner and prompt
    tool (the session sets them up with the others, before the first example)."""
    return offered_tools(registry, cfg)[0]
