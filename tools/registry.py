"""Tool registry: built-in tools plus plugins from the ``refseg.tools`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."refseg.tools"]
    my_tool = "my_pkg.declared:MY_TOOL"

where ``MY_TOOL`` is a :class:`tools.declaration.ToolDeclaration` (in a light module: what the
tool is, and the ``"module:Class"`` that runs it), or the :class:`tools.base.Tool` subclass
itself (or any callable taking :class:`tools.base.ToolSettings` and returning a tool). Roles,
schemas and options come from declarations, so listing tools, offering them to a VLM and
checking options import no model code; a tool's implementation is imported when it is built.
A class or factory entry is imported when its declaration is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from tools.base import Tool, ToolFactory, ToolSettings, validation_problems
from tools.declaration import ToolDeclaration
from tools.errors import ConfigError

ENTRY_POINT_GROUP = "refseg.tools"
PROJECT_DISTRIBUTION = "refseg-loop"

BUILTIN_TOOLS: dict[str, str] = {
    "sam_propose": "tools.sam_declaration:SAM_PROPOSE",
    "sam_prompt": "tools.sam_declaration:SAM_PROMPT",
    "clip_rank": "tools.clip_declaration:CLIP_RANK",
    "refine_query": "tools.refine:REFINE_QUERY",
}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    target: str
    # "builtin" (in the code), "bundled" (an entry point of refseg-loop itself: the offline
    # and SAM 3 toolsets, registered the way a plugin is), "plugin" (another package's entry
    # point) or "registered" (ToolRegistry.register)
    origin: str


def _entry_point_origin(ep: EntryPoint) -> str:
    """``bundled`` for refseg-loop's own entry points, ``plugin`` for any other package's."""
    dist = getattr(ep, "dist", None)
    return "bundled" if dist is not None and dist.name == PROJECT_DISTRIBUTION else "plugin"


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# What the VLM and the cache keys read from a declaration, and the built class must match.
_CHECKED = ("role", "version", "Params", "Options", "prompt_tool", "needs", "text_conditioned")


class ToolRegistry:
    """Names to tool factories; builds each tool once per registry."""

    def __init__(self, settings: ToolSettings | None = None, *, plugins: bool = True):
        self.settings = settings or ToolSettings()
        self._specs: dict[str, ToolSpec] = {
            name: ToolSpec(name, target, "builtin") for name, target in BUILTIN_TOOLS.items()
        }
        self._factories: dict[str, ToolFactory] = {}
        self._declarations: dict[str, ToolDeclaration] = {}
        self._broken: dict[str, ConfigError] = {}  # a plugin that failed to import stays failed
        self._tools: dict[str, Tool] = {}
        self._building: set[str] = set()
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in self._specs:
                    self._specs[ep.name] = ToolSpec(ep.name, ep.value, _entry_point_origin(ep))

    def register(self, name: str, factory: ToolFactory | ToolDeclaration) -> None:
        """Add (or replace) a tool programmatically: its class or factory, or its declaration
        (whose implementation is imported when the tool is built)."""
        self._declarations.pop(name, None)
        self._factories.pop(name, None)
        self._broken.pop(name, None)
        self._tools.pop(name, None)
        if isinstance(factory, ToolDeclaration):
            if factory.name != name:
                raise ConfigError(f"tool registered as {name!r} declares itself {factory.name!r}")
            self._specs[name] = ToolSpec(name, factory.implementation, "registered")
            self._declarations[name] = factory
            return
        self._specs[name] = ToolSpec(name, f"<{getattr(factory, '__name__', factory)!s}>", "registered")
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._specs)

    def spec(self, name: str) -> ToolSpec:
        if name not in self._specs:
            raise ConfigError(
                f"unknown tool {name!r}; known tools: {', '.join(self.names())} "
                f"(plugins register through the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        return self._specs[name]

    def _target(self, name: str, target: str) -> Any:
        """The object ``target`` names; a failure is remembered (one import try per run)."""
        if name in self._broken:
            raise self._broken[name]
        try:
            return _resolve(target)
        except Exception as exc:  # a broken plugin must not take the others down
            error = ConfigError(f"tool {name!r} ({target}) failed to import: {exc}")
            self._broken[name] = error
            raise error from exc

    def declaration(self, name: str) -> ToolDeclaration:
        """What the tool is (role, description, schema, options), without importing the code
        that runs it when it is registered by its declaration (see the module docstring).

        Raises:
            ConfigError: an unknown tool, or one that cannot be imported.
        """
        if name in self._declarations:
            return self._declarations[name]
        spec = self.spec(name)
        found = None if name in self._factories else self._target(name, spec.target)
        if isinstance(found, ToolDeclaration):
            if found.name != name:
                raise ConfigError(f"tool registered as {name!r} declares itself {found.name!r}")
            declaration = found
        else:
            declaration = ToolDeclaration.of_tool(self.tool_class(name))
        self._declarations[name] = declaration
        return declaration

    def factory(self, name: str) -> ToolFactory:
        """What builds the tool (its class, for a declared or class-registered tool).

        Raises:
            ConfigError: an unknown tool, or one that cannot be imported.
        """
        spec = self.spec(name)
        if name in self._factories:
            return self._factories[name]
        found = self._target(name, spec.target)
        if isinstance(found, ToolDeclaration):
            found = self._target(name, found.implementation)
        if not callable(found):
            raise ConfigError(f"tool {name!r} ({spec.target}) is not a Tool class or factory")
        self._factories[name] = found
        return found

    def tool_class(self, name: str) -> type[Tool]:
        """The tool's class without building it (imports its implementation: prefer
        :meth:`declaration` for roles and schemas)."""
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
            if not self._declared_without_building(name):
                return None  # a plain factory: it may read any
            declared = self.declaration(name)  # no tool module imported for a declared tool
            if declared.reads_settings is None:
                return None  # a tool that declares nothing: it may read any
            read |= declared.reads_settings
            pending += [*declared.needs, *([declared.prompt_tool] if declared.prompt_tool else [])]
        return frozenset(read)

    def get(self, name: str) -> Tool:
        """The tool instance (built on first use, with the tools it ``needs``)."""
        if name not in self._tools:
            if name in self._building:
                raise ConfigError(f"tool {name!r} needs itself (through its 'needs' chain)")
            if self._declared_without_building(name):
                self.declaration(name)  # read first, so the class is checked against it below
            self._building.add(name)
            try:
                tool = self.factory(name)(self.settings)
                if not isinstance(tool, Tool):
                    raise ConfigError(f"tool {name!r} factory returned {type(tool).__name__}, not a Tool")
                if tool.name != name:
                    raise ConfigError(f"tool registered as {name!r} calls itself {tool.name!r}")
                self._check_against_declaration(name, tool)
                if tool.needs:
                    tool.use_tools({needed: self.get(needed) for needed in tool.needs})
            finally:
                self._building.discard(name)
            self._tools[name] = tool
        return self._tools[name]

    def _check_against_declaration(self, name: str, tool: Tool) -> None:
        """The VLM is shown the declaration while the class runs: they must agree (a plugin's
        class that does not point back at its declaration may not)."""
        declared = self._declarations.get(name)
        built = ToolDeclaration.of_tool(type(tool))
        if declared is None or built is declared:
            return
        differ = [a for a in _CHECKED if getattr(built, a) != getattr(declared, a)]
        if differ:
            raise ConfigError(
                f"tool {name!r}: its declaration and the class it names disagree on {', '.join(differ)}; "
                "set `declaration = <the declaration>` on the class so each fact is written once"
            )

    def check_options(self, names: Iterable[str]) -> None:
        """Validate the options of the named tools against their ``Options`` models, without
        building them (a tool made by a plain factory checks its own when it is built).

        Raises:
            ConfigError: an unknown tool name, or a bad option value or key.
        """
        for name in names:
            if self._declared_without_building(name):
                self.declaration(name).check_options(self.settings.options)

    def _declared_without_building(self, name: str) -> bool:
        """Whether the tool's declaration is known without building it (a plain factory's is not)."""
        spec = self.spec(name)
        if name in self._declarations:
            return True
        found = self._factories[name] if name in self._factories else self._target(name, spec.target)
        return isinstance(found, ToolDeclaration) or (isinstance(found, type) and issubclass(found, Tool))

    def check_arguments(self, name: str, args: dict[str, Any]) -> None:
        """Validate fixed call arguments (``EpisodeConfig.propose_args`` / ``rank_args``, set by
        flags such as ``--points-per-side``) against the tool's ``Params``, without building it:
        a value every call would refuse fails the run's set-up, not each example.

        Raises:
            ConfigError: one line naming the tool and each bad argument.
        """
        if not self._declared_without_building(name):
            return  # a plain factory's tool checks its arguments when it is called
        try:
            self.declaration(name).Params.model_validate(dict(args))
        except ValidationError as exc:
            problems = "; ".join(f"argument {where}: {what}" for where, what in validation_problems(exc))
            raise ConfigError(f"tool {name}: {problems}") from None

    def describe(self) -> list[dict[str, str]]:
        rows = []
        for name in self.names():
            spec = self._specs[name]
            try:
                declared = self.declaration(name)
                rows.append(
                    {
                        "name": name,
                        "role": declared.role,
                        "version": declared.version,
                        "origin": spec.origin,
                        "description": declared.description,
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
