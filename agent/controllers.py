"""The controllers, by name: the one registry that the CLI's ``--controller`` choices and
session validation read.

Add a controller by writing an async function that takes an :class:`agent.episode.Episode`
(see :class:`agent.episode.Controller`) and adding it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agent.agent_controller import run_agent
from agent.episode import Controller
from agent.ground_controller import run_ground
from agent.loop_controller import run_loop, run_oneshot
from tools.errors import ConfigError

CONTROLLERS: Mapping[str, Controller] = MappingProxyType(
    {"oneshot": run_oneshot, "loop": run_loop, "ground": run_ground, "agent": run_agent}
)


def get_controller(name: str) -> Controller:
    """The controller called ``name``.

    Raises:
        ConfigError: no such controller (one line listing the known ones).
    """
    controller = CONTROLLERS.get(name)
    if controller is None:
        raise ConfigError(f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}")
    return controller
