"""Controllers as specs: each is declared once, and everything else is derived from that.

A :class:`ControllerSpec` says what a controller is and needs: its name, its run function
(``async def run(ep: Episode) -> None``, see :class:`agent.episode.Controller`), whether it
calls the VLM itself and whether it uses the proposer's prompt tool (each ``required``,
``optional`` or ``none``), whether it calls the episode's refiner, a pydantic ``Options``
model for its own settings (defaults and help text per field) and a one-line description.
From the spec come: the VLM client a run builds (:mod:`bench.runtime`), the session's checks
(:mod:`agent.session`), the report's method label (:mod:`bench.report.run_reader`), the CLI's
``--controller`` choices and help, ``--controller-option NAME.KEY=VALUE`` and the shortcut
flags such as ``--max-turns``.

The registry holds the built-ins (``oneshot``, ``loop``, ``ground``, ``agent``) and every
spec a package registers in the ``refseg.controllers`` entry-point group, the way tools are
found (:mod:`tools.registry`)::

    [project.entry-points."refseg.controllers"]
    mine = "my_pkg.my_module:MINE"      # a ControllerSpec named "mine"

Specs are imported when first asked for, so listing names never imports a plugin.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel

from agent.episode import Controller
from tools.base import StrictParams, parse_tool_options
from tools.errors import ConfigError

ENTRY_POINT_GROUP = "refseg.controllers"
Need = Literal["none", "optional", "required"]
NEEDS: tuple[Need, ...] = ("none", "optional", "required")

# The built-in specs, in the order the CLI lists them (each declared beside its run function).
BUILTIN_CONTROLLERS: dict[str, str] = {
    "oneshot": "agent.loop_controller:ONESHOT",
    "loop": "agent.loop_controller:LOOP",
    "ground": "agent.ground_controller:GROUND",
    "agent": "agent.agent_controller:AGENT",
}


class NoOptions(StrictParams):
    """The settings of a controller that has none (any key given is an error)."""


def name_label(spec: ControllerSpec, label: Mapping[str, Any]) -> str:
    """The default report label of a run: the controller's name."""
    return spec.name


@dataclass(frozen=True)
class ControllerSpec:
    """What a controller is and needs, declared once.

    Attributes:
        name: what ``--controller`` takes (and what ``EpisodeConfig.controller`` holds).
        run: ``async def run(ep: Episode) -> None``: drives the episode through ``ep.call``
            and sets ``ep.stop_reason``; its settings are ``ep.options_as(Options)``.
        description: one line for ``--help`` and ``refseg controllers``.
        vlm: whether the controller asks the VLM itself: ``required`` (a run without a VLM is
            refused before any example), ``optional`` (the client is built when one is
            configured, else the run says it goes without) or ``none``.
        prompt_tool: whether it draws masks with the proposer's prompt tool: ``required`` (a
            proposer without one is refused before any example), ``optional`` (used when the
            proposer has one) or ``none``.
        refines: it calls the episode's refiner (its tool is set up, and ``--refiner vlm``
            then needs a VLM); a controller that never refines leaves the refiner unbuilt.
        Options: a pydantic model of its settings, defaults and a description per field
            (``--controller-option NAME.KEY=VALUE``; unknown keys are an error).
        label: the method label of its runs in reports, from a run's label (``controller``,
            ``refiner``, ``max_iter``, ...); default: the name.
        more_tools: the tools it may call beyond the episode's proposer, ranker, refiner and
            prompt tool, from the registry and the episode config (the agent offers every tool
            of role ``other``): the session builds them at set-up, off the event loop.
    """

    name: str
    run: Controller
    description: str
    vlm: Need = "none"
    prompt_tool: Need = "none"
    refines: bool = False
    Options: type[BaseModel] = NoOptions
    label: Callable[[ControllerSpec, Mapping[str, Any]], str] = name_label
    more_tools: Callable[[Any, Any], Sequence[str]] | None = None

    def __post_init__(self) -> None:
        for what in ("vlm", "prompt_tool"):
            if getattr(self, what) not in NEEDS:
                raise ConfigError(f"controller {self.name}: {what} must be one of {', '.join(NEEDS)}")
        if not (isinstance(self.Options, type) and issubclass(self.Options, BaseModel)):
            raise ConfigError(f"controller {self.name}: Options must be a pydantic model class")

    def options(self, raw: Mapping[str, Any] | None = None) -> BaseModel:
        """``raw`` validated against :attr:`Options` (defaults filled in).

        Raises:
            ConfigError: one line naming the controller and each bad key, e.g.
                ``controller agent: option max_turns: Input should be greater than or equal to 1``.
        """
        return parse_tool_options(self.name, self.Options, raw, kind="controller")

    def option_fields(self) -> dict[str, tuple[Any, str]]:
        """``{key: (default, description)}`` of its options, for help texts."""
        return {
            key: (info.get_default(call_default_factory=True), info.description or "")
            for key, info in self.Options.model_fields.items()
        }

    def method_label(self, label: Mapping[str, Any]) -> str:
        """How reports name a run of this controller (see :attr:`label`)."""
        return self.label(self, label)


@functools.lru_cache(maxsize=8)
def _plugin_targets(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The group's entry points as ``(name, target)``, by name, for the distributions on
    ``path`` (scanning them takes milliseconds per call: the CLI asks many times)."""
    return tuple(sorted((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)))


def _targets() -> dict[str, tuple[str, str]]:
    """``{name: (target, origin)}``: the built-ins, then the plugins (a plugin never replaces
    a built-in)."""
    found = {name: (target, "builtin") for name, target in BUILTIN_CONTROLLERS.items()}
    for name, target in _plugin_targets(tuple(sys.path)):
        found.setdefault(name, (target, "plugin"))
    return found


def controller_names() -> list[str]:
    """Every controller's name: the built-ins in their order, then the plugins by name."""
    return list(_targets())


_RESOLVED: dict[tuple[str, str], ControllerSpec] = {}


def _resolve(name: str, target: str) -> ControllerSpec:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # a broken plugin must not take the others down
        raise ConfigError(f"controller {name!r} ({target}) failed to import: {exc}") from exc
    if not isinstance(obj, ControllerSpec):
        raise ConfigError(f"controller {name!r} ({target}) is a {type(obj).__name__}, not a ControllerSpec")
    if obj.name != name:
        raise ConfigError(f"controller registered as {name!r} calls itself {obj.name!r}")
    return obj


def get_controller(name: str) -> ControllerSpec:
    """The spec of controller ``name``.

    Raises:
        ConfigError: no such controller (one line listing the known ones), or a plugin that
            does not import or is not a :class:`ControllerSpec` of that name.
    """
    targets = _targets()
    if name not in targets:
        raise ConfigError(
            f"unknown controller {name!r}; choose one of {', '.join(targets)} "
            f"(plugins register through the {ENTRY_POINT_GROUP!r} entry-point group)"
        )
    target = targets[name][0]
    if (name, target) not in _RESOLVED:
        _RESOLVED[(name, target)] = _resolve(name, target)
    return _RESOLVED[(name, target)]


def controller_origin(name: str) -> str:
    """``builtin`` or ``plugin``."""
    return _targets().get(name, ("", "unknown"))[1]


def available_controllers() -> tuple[list[ControllerSpec], dict[str, str]]:
    """The specs that load, and why each other one does not (``{name: one line}``)."""
    specs, broken = [], {}
    for name in controller_names():
        try:
            specs.append(get_controller(name))
        except ConfigError as exc:
            broken[name] = str(exc)
    return specs, broken


def check_controller_options(options: Mapping[str, Mapping[str, Any]]) -> None:
    """Validate ``{controller: {key: value}}`` (``--controller-option``) against each spec.

    Raises:
        ConfigError: an unknown controller, or a bad value or unknown key (one line).
    """
    for name, raw in options.items():
        get_controller(name).options(raw)


def no_vlm_message(controller: str) -> str:
    """Why a controller that requires the VLM cannot run, and what to do (one line)."""
    return (
        f"--controller {controller} needs a VLM: set SILICONFLOW_API_KEY (or REFSEG_VLM_API_KEY) "
        "or pass --vlm-base-url for a local OpenAI-compatible server; or use --controller loop"
    )


def method_label(label: Mapping[str, Any]) -> str:
    """A run's method label from its ``label`` (``controller`` and the fields its spec reads);
    a run of a controller that is not installed here is named by its controller."""
    name = str(label.get("controller"))
    try:
        spec = get_controller(name)
    except ConfigError:
        return name
    return spec.method_label(label)


__all__ = [
    "BUILTIN_CONTROLLERS",
    "ENTRY_POINT_GROUP",
    "ControllerSpec",
    "Need",
    "NoOptions",
    "available_controllers",
    "check_controller_options",
    "controller_names",
    "controller_origin",
    "get_controller",
    "method_label",
    "no_vlm_message",
]
