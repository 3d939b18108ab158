"""The ``Options`` of the built-in controllers that have settings of their own.

Each field's default and description are the only copy: ``--controller-option
agent.max_turns=4``, the shortcut flags (``--max-turns 4``, which set the key of every
controller that has it) and their ``--help`` lines all read them from here.

Which settings are a controller's and which are shared: what the session or the episode
enforces for every controller stays in :class:`agent.episode.EpisodeConfig` (tools, the
guard, ``pick``, ``max_iter``, the episode deadline); what only a controller reads is its own
option: the agent's turns, warm start and tool-call limits, and the VLM budgets of the two
controllers that ask the VLM themselves (``agent`` and ``ground``). A ``loop`` run then no
longer records, or is refused a resume over, agent settings it never reads. How the VLM
gives coordinates is a property of the model, not of a controller: it is the VLM profile's
(:class:`agent.vlm_profile.VLMProfile`, ``--vlm-coords``/``--vlm-profile``).
"""

from __future__ import annotations

from pydantic import Field

from tools.base import StrictParams


class VLMAskOptions(StrictParams):
    """Settings of a controller that asks the VLM itself (``ground``, and the base of ``agent``'s)."""

    budget_tokens: int = Field(
        default=60_000, ge=0, description="VLM tokens per episode (VLM turns and VLM-backed tools together)"
    )
    budget_usd: float = Field(default=0.05, ge=0, description="VLM USD per episode")


class AgentOptions(VLMAskOptions):
    """Settings of the ``agent`` controller."""

    max_turns: int = Field(default=8, ge=1, description="most VLM turns per episode")
    warm_start: bool = Field(
        default=True,
        description="propose and rank before the first VLM turn (a sure ranking needs no VLM)",
    )
    max_tool_calls: int = Field(
        default=24,
        ge=1,
        description="most tool calls the VLM may have run per episode (submit is always run)",
    )
    max_calls_per_reply: int = Field(default=6, ge=1, description="most tool calls run from one VLM reply")


class GroundOptions(VLMAskOptions):
    """Settings of the ``ground`` controller."""
