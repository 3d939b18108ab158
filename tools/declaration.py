"""What a tool is, known without importing the code that runs it.

A :class:`ToolDeclaration` holds a tool's name, role, description, version, ``Params`` (its
JSON schema is what a VLM sees), ``Options``, prompt tool and ``needs``, and names the class
that implements it (``"module:Class"``). Declarations live in light modules (pydantic models
only: no torch, no model code), so a run learns every tool's role and schema, and checks its
options, without importing segment-anything or open_clip; only the tools a run uses are
imported, once, at set-up, off the event loop (:meth:`agent.session.Session.setup`).

The implementing class points back at its declaration (``declaration = SAM_PROPOSE``) and
takes every declared attribute from it (:meth:`tools.base.Tool.__init_subclass__`), so each
fact is written once. A plugin registers its declaration in the ``refseg.tools`` entry-point
group (``my_tool = "my_pkg.declared:MY_TOOL"``); one that registers the class itself still
works, its module imported when its role is first asked for (at set-up).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from tools.errors import ConfigError
from tools.params import parse_tool_options

Role = Literal["propose", "rank", "refine", "prompt", "other"]
# The attributes a declaration gives its implementing class.
DECLARED = (
    "name", "role", "description", "version", "Params", "Options", "prompt_tool", "needs", "text_conditioned",
    "reads_settings",
)  # fmt: skip


def function_schema(name: str, description: str, params: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI function-calling description of a tool with these parameters."""
    schema = params.model_json_schema()
    schema.pop("title", None)
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


@dataclass(frozen=True, eq=False)
class ToolDeclaration:
    """A tool as the registry, the controllers and the VLM see it (see the module docstring).

    Attributes:
        name: the registry name (what the VLM calls).
        role: ``propose``, ``rank``, ``refine``, ``prompt`` or ``other``.
        description: what the VLM reads about the tool.
        implementation: ``"module:Class"`` of the :class:`tools.base.Tool` that runs it (or of a
            factory taking :class:`tools.base.ToolSettings`).
        Params: the pydantic model of its arguments.
        Options: the pydantic model of its settings (``--tool-option NAME.KEY=VALUE``), or None.
        version: bump it when outputs change (the cache invalidates).
        prompt_tool: a proposer's prompt tool (a box or points -> a mask).
        needs: tools whose instances this one uses.
        text_conditioned: a proposer that finds candidates for the query (SAM 3): the loop
            proposes again for each new query.
        reads_settings: the :class:`tools.base.ToolSettings` fields it reads (``None``: any); a
            run records only those of its tools in ``config.json``.
    """

    name: str
    role: Role
    description: str
    implementation: str
    Params: type[BaseModel]
    Options: type[BaseModel] | None = None
    version: str = "1"
    prompt_tool: str | None = None
    needs: tuple[str, ...] = ()
    text_conditioned: bool = False
    reads_settings: frozenset[str] | None = None
    _schema: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of_tool(cls, tool: Any) -> ToolDeclaration:
        """The declaration of a :class:`tools.base.Tool` class that has none of its own (a
        plugin's class). A subclass of a declared tool that does not declare itself is described
        by its own attributes (it may rename the tool or name another prompt tool)."""
        declared = vars(tool).get("declaration")
        if isinstance(declared, ToolDeclaration):
            return declared
        return cls(
            name=tool.name,
            role=tool.role,
            description=tool.description,
            implementation=f"{tool.__module__}:{tool.__qualname__}",
            Params=tool.Params,
            Options=tool.Options,
            version=tool.version,
            prompt_tool=tool.prompt_tool,
            needs=tuple(tool.needs),
            text_conditioned=bool(getattr(tool, "text_conditioned", False)),
            reads_settings=getattr(tool, "reads_settings", None),
        )

    def function_schema(self) -> dict[str, Any]:
        """The OpenAI function description (made once; a copy, so callers may change it)."""
        if not self._schema:
            self._schema.update(function_schema(self.name, self.description, self.Params))
        return copy.deepcopy(self._schema)

    def shared_schema(self) -> dict[str, Any]:
        """:meth:`function_schema` without the copy: read it, never change it (hot paths)."""
        if not self._schema:
            self._schema.update(function_schema(self.name, self.description, self.Params))
        return self._schema

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Validate this tool's options (``options[name]``; ``ToolSettings.options`` holds them
        by tool name) without importing the tool.

        Raises:
            ConfigError: a bad value or unknown key, or options for a tool that takes none.
        """
        raw = options.get(self.name)
        if self.Options is not None:
            parse_tool_options(self.name, self.Options, raw)
        elif raw:  # a typo must not pass for a setting that did nothing
            raise ConfigError(
                f"tool {self.name} takes no options, got {', '.join(sorted(raw))}; "
                f"drop --tool-option {self.name}.KEY=VALUE"
            )


__all__ = ["DECLARED", "Role", "ToolDeclaration", "function_schema"]
