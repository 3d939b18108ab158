"""Tool registry: built-in tools plus plugins from the ``refseg.tools`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."refseg.tools"]
    my_tool = "my_pkg.my_module:MyTool"

where ``MyTool`` is a :class:`tools.base.Tool` subclass (or any callable taking
:class:`tools.base.ToolSettings` and returning a tool). Tools are imported and built lazily,
so listing tools never loads a model.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from tools.base import Tool, ToolFactory, ToolSettings, validation_problems
from tools.errors import ConfigError

ENTRY_POINT_GROUP = "refseg.tools"

BUILTIN_TOOLS: dict[str, str] = {
    "sam_propose": "tools.sam_propose:SamPropose",
    "sam_prompt": "tools.sam_prompt:SamPrompt",
    "clip_rank": "tools.clip_rank:ClipRank",
    "refine_query": "tools.refine:RefineQuery",
}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    target: str
    origin: str  # "builtin", "plugin" or "registered"


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class ToolRegistry:
    """Names to tool factories; builds each tool once per registry."""

    def __init__(self, settings: ToolSettings | None = None, *, plugins: bool = True):
        self.settings = settings or ToolSettings()
        self._specs: dict[str, ToolSpec] = {
            name: ToolSpec(name, target, "builtin") for name, target in BUILTIN_TOOLS.items()
        }
        self._factories: dict[str, ToolFactory] = {}
        self._tools: dict[str, Tool] = {}
        self._building: set[str] = set()
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in self._specs:
                    self._specs[ep.name] = ToolSpec(ep.name, ep.value, "plugin")

    def register(self, name: str, factory: ToolFactory) -> None:
        """Add (or replace) a tool programmatically."""
        self._specs[name] = ToolSpec(name, f"<{getattr(factory, '__name__', factory)!s}>", "registered")
        self._factories[name] = factory
        self._tools.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> ToolSpec:
        if name not in self._specs:
            raise ConfigError(
                f"unknown tool {name!r}; known tools: {', '.join(self.names())} "
                f"(plugins register through the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        return self._specs[name]

    def factory(self, name: str) -> ToolFactory:
        spec = self.spec(name)
        if name in self._factories:
            return self._factories[name]
        try:
            factory = _resolve(spec.target)
        except Exception as exc:  # a broken plugin must not take the others down
            raise ConfigError(f"tool {name!r} ({spec.target}) failed to import: {exc}") from exc
        if not callable(factory):
            raise ConfigError(f"tool {name!r} ({spec.target}) is not a Tool class or factory")
        self._factories[name] = factory
        return factory

    def tool_class(self, name: str) -> type[Tool]:
        """The tool's class without building it (for schemas and roles)."""
        factory = self.factory(name)
        if isinstance(factory, type) and issubclass(factory, Tool):
            return factory
        return type(self.get(name))

    def settings_read(self, names: Iterable[str]) -> frozenset[str] | None:
        """The :class:`ToolSettings` fields the named tools (and the tools they need) read;
        ``None`` when one of them may read any (it declares no ``reads_settings``)."""
        read: set[str] = set()
        pending, seen = list(names), set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            factory = self.factory(name)
            if not (isinstance(factory, type) and issubclass(factory, Tool)):
                return None  # a plain factory: it may read any
            if factory.reads_settings is None:
                return None  # a tool that declares nothing: it may read any
            read |= factory.reads_settings
            pending += [*factory.needs, *([factory.prompt_tool] if factory.prompt_tool else [])]
        return frozenset(read)

    def get(self, name: str) -> Tool:
        """The tool instance (built on first use, with the tools it ``needs``)."""
        if name not in self._tools:
            if name in self._building:
                raise ConfigError(f"tool {name!r} needs itself (through its 'needs' chain)")
            self._building.add(name)
            try:
                tool = self.factory(name)(self.settings)
                if not isinstance(tool, Tool):
                    raise ConfigError(f"tool {name!r} factory returned {type(tool).__name__}, not a Tool")
                if tool.name != name:
                    raise ConfigError(f"tool registered as {name!r} calls itself {tool.name!r}")
                if tool.needs:
                    tool.use_tools({needed: self.get(needed) for needed in tool.needs})
            finally:
                self._building.discard(name)
            self._tools[name] = tool
        return self._tools[name]

    def check_options(self, names: Iterable[str]) -> None:
        """Validate the options of the named tools against their ``Options`` models, without
        building them (a tool made by a plain factory checks its own when it is built).

        Raises:
            ConfigError: an unknown tool name, or a bad option value or key.
        """
        for name in names:
            factory = self.factory(name)
            if isinstance(factory, type) and issubclass(factory, Tool):
                factory.check_options(self.settings)

    def check_arguments(self, name: str, args: dict[str, Any]) -> None:
        """Validate fixed call arguments (``EpisodeConfig.propose_args`` / ``rank_args``, set by
        flags such as ``--points-per-side``) against the tool's ``Params``, without building it:
        a value every call would refuse fails the run's set-up, not each example.

        Raises:
            ConfigError: one line naming the tool and each bad argument.
        """
        factory = self.factory(name)
        if not (isinstance(factory, type) and issubclass(factory, Tool)):
            return
        try:
            factory.Params.model_validate(dict(args))
        except ValidationError as exc:
            problems = "; ".join(f"argument {where}: {what}" for where, what in validation_problems(exc))
            raise ConfigError(f"tool {name}: {problems}") from None

    def describe(self) -> list[dict[str, str]]:
        rows = []
        for name in self.names():
            spec = self._specs[name]
            try:
                cls = self.tool_class(name)
                rows.append(
                    {
                        "name": name,
                        "role": cls.role,
                        "version": cls.version,
                        "origin": spec.origin,
                        "description": cls.description,
                    }
                )
            except ConfigError as exc:
                rows.append(
                    {
                        "name": name,
                        "role": "?",
                        "version": "?",
                        "origin": spec.origin,
                        "description": f"unavailable: {exc}",
                    }
                )
        return rows

    def close(self) -> None:
        for tool in self._tools.values():
            tool.close()
        self._tools.clear()
