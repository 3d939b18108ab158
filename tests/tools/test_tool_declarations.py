"""Tools are known by their declarations: roles, schemas and options without model code."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import tools.registry
from agent.agent_tools import offered_tools
from agent.episode import EpisodeConfig
from tools.base import StrictParams, Tool, ToolSettings
from tools.declaration import DECLARED, ToolDeclaration
from tools.errors import ConfigError
from tools.registry import ToolRegistry

ROOT = Path(__file__).resolve().parents[2]
MODEL_MODULES = ("torch", "segment_anything", "open_clip", "torchvision")


def test_every_declared_tool_is_what_its_class_runs() -> None:
    registry = ToolRegistry()
    for name in registry.names():
        declared = registry.declaration(name)
        cls = registry.tool_class(name)
        assert cls.declaration is declared, name  # one source: the class points at its declaration
        for attr in DECLARED:
            assert getattr(cls, attr) == getattr(declared, attr), (name, attr)
        assert declared.function_schema() == cls.function_schema()


def test_roles_schemas_and_options_import_no_model_code() -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from tools.base import ToolSettings
        from tools.registry import ToolRegistry
        from agent.agent_tools import offered_tools
        from agent.episode import EpisodeConfig
        registry = ToolRegistry(ToolSettings(options={{"clip_rank": {{"cache_dir": "x"}}}}))
        rows = registry.describe()
        schemas = [registry.declaration(n).function_schema() for n in registry.names()]
        registry.check_options(registry.names())
        offered = offered_tools(registry, EpisodeConfig(controller="agent"))
        print(json.dumps({{"roles": {{r["name"]: r["role"] for r in rows}}, "offered": offered[0],
                          "loaded": [m for m in {MODEL_MODULES!r} if m in sys.modules]}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    seen = json.loads(out.stdout)
    assert seen["loaded"] == []
    assert seen["roles"]["sam_propose"] == "propose" and seen["roles"]["sam_prompt"] == "prompt"
    assert seen["roles"]["clip_rank"] == "rank" and seen["roles"]["region_prompt"] == "prompt"
    assert seen["offered"] == ["sam_propose", "clip_rank", "refine_query", "sam_prompt"]


# A plugin as documented: the declaration in a light module, the class in another that points
# back at it (``declaration = ZOOM``), so the two cannot disagree.
DECLARATION = """
from tools.base import StrictParams
from tools.declaration import ToolDeclaration

class ZoomOptions(StrictParams):
    factor: float = 2.0

ZOOM = ToolDeclaration(
    name="zoom",
    role="other",
    description="zoom into a region",
    implementation="{impl}:Zoom",
    Params=StrictParams,
    Options=ZoomOptions,
)
"""

IMPLEMENTATION = """
from tools.base import Tool
from {decl} import ZOOM

class Zoom(Tool):
    declaration = ZOOM

    async def __call__(self, ws, params):
        raise NotImplementedError
"""


def zoom_declaration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ToolDeclaration, str]:
    """The plugin's declaration (its module imported) and the name of its implementation module."""
    suffix = tmp_path.name.replace("-", "_")
    decl, impl = f"zoom_decl_{suffix}", f"zoom_impl_{suffix}"
    (tmp_path / f"{decl}.py").write_text(DECLARATION.format(impl=impl))
    (tmp_path / f"{impl}.py").write_text(IMPLEMENTATION.format(decl=decl))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(decl).ZOOM, impl


def test_a_declared_tool_is_offered_and_checked_without_being_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared, module = zoom_declaration(tmp_path, monkeypatch)
    registry = ToolRegistry(ToolSettings(options={"zoom": {"factor": 3}}), plugins=False)
    registry.register("zoom", declared)
    names, skipped = offered_tools(registry, EpisodeConfig(controller="agent"))
    assert "zoom" in names and skipped == []
    registry.check_options(["zoom"])
    bad = ToolRegistry(ToolSettings(options={"zoom": {"factor": "big"}}), plugins=False)
    bad.register("zoom", declared)
    with pytest.raises(ConfigError, match="tool zoom: option factor"):
        bad.check_options(["zoom"])
    assert module not in sys.modules  # role, schema and options came from the declaration
    zoom = registry.get("zoom")
    assert type(zoom).__name__ == "Zoom" and module in sys.modules
    assert zoom.validated_options() == declared.Options(factor=3)  # the cache key's options


def test_a_declaration_under_another_name_is_refused() -> None:
    registry = ToolRegistry(plugins=False)
    with pytest.raises(ConfigError, match="declares itself 'zoom'"):
        registry.register("zoomer", ToolDeclaration("zoom", "other", "zoom", "anywhere:Zoom", StrictParams))


def test_a_broken_plugin_is_tried_once_and_skipped_by_the_agent() -> None:
    registry = ToolRegistry(plugins=False)
    ghost = ToolDeclaration("ghost", "other", "x", "no_such_module_xyz:Ghost", StrictParams)
    registry.register("ghost", ghost)
    registry._specs["ghost2"] = registry._specs["ghost"].__class__("ghost2", "no_such_module_xyz:G", "plugin")
    names, skipped = offered_tools(registry, EpisodeConfig(controller="agent"))
    assert "ghost" in names  # declared: its role is known without importing it
    assert skipped == ["ghost2"]
    with pytest.raises(ConfigError, match="failed to import"):
        registry.get("ghost")
    first = registry._broken["ghost2"]
    with pytest.raises(ConfigError) as again:
        registry.declaration("ghost2")
    assert again.value is first  # remembered, not imported again per episode


def test_a_subclass_of_a_declared_tool_is_described_by_its_own_attributes() -> None:
    """A plugin that subclasses a built-in tool under another name (the prompt-tool recipe)
    keeps its own name and prompt tool: the parent's declaration is not inherited."""
    from tools.offline.region_propose import RegionPropose

    class Renamed(RegionPropose):
        name = "renamed_regions"
        prompt_tool = "my_prompt"

    registry = ToolRegistry(ToolSettings())
    registry.register(Renamed.name, Renamed)
    declared = registry.declaration(Renamed.name)
    assert (declared.name, declared.prompt_tool, declared.role) == ("renamed_regions", "my_prompt", "propose")
    assert (
        declared.implementation.endswith("Renamed")
        and ToolDeclaration.of_tool(RegionPropose).prompt_tool != "my_prompt"
    )


class _Query(StrictParams):
    query: str


class _Other(StrictParams):
    other: int = 0


class Drifted(Tool):
    """A plugin class that does not point back at its declaration, and disagrees with it."""

    name, role, version, description = "drifted", "propose", "1", "a tool"
    Params = _Other

    async def __call__(self, ws: Any, params: Any) -> Any:
        raise NotImplementedError


DRIFTED = ToolDeclaration(
    name="drifted",
    role="rank",
    description="a tool",
    implementation=f"{__name__}:Drifted",
    Params=_Query,
    version="7",
)


def test_a_class_that_disagrees_with_its_declaration_is_refused_when_built() -> None:
    """The VLM is shown the declaration's role and schema while the class validates and keys
    its cache by its own: a plugin whose two disagree is one line, not a silent mismatch."""
    registry = ToolRegistry(ToolSettings())
    registry.register("drifted", DRIFTED)
    assert registry.declaration("drifted").role == "rank"  # read without building
    with pytest.raises(ConfigError, match="disagree on role, version, Params"):
        registry.get("drifted")


def test_an_entry_points_drifted_class_is_refused_even_when_built_before_it_is_described(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = [EntryPoint("drifted", f"{__name__}:DRIFTED", "refseg.tools")]
    monkeypatch.setattr(
        tools.registry, "entry_points", lambda group: found if group == "refseg.tools" else []
    )
    registry = ToolRegistry(ToolSettings())
    with pytest.raises(ConfigError, match="disagree on role, version, Params"):
        registry.get("drifted")  # first: nothing had read the declaration yet
    assert registry.declaration("drifted").role == "rank"  # and it still describes the declaration
