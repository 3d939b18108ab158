"""Tools are known by their declarations: roles, schemas and options without model code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.agent_tools import offered_tools
from agent.episode import EpisodeConfig
from tools.base import StrictParams, ToolSettings
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


IMPLEMENTATION = """
from tools.base import Tool

class Zoom(Tool):
    name = "zoom"
    role = "other"
    description = "zoom into a region"

    async def __call__(self, ws, params):
        raise NotImplementedError
"""


class ZoomOptions(StrictParams):
    factor: float = 2.0


def zoom_declaration(module: str) -> ToolDeclaration:
    return ToolDeclaration(
        name="zoom",
        role="other",
        description="zoom into a region",
        implementation=f"{module}:Zoom",
        Params=StrictParams,
        Options=ZoomOptions,
    )


def test_a_declared_tool_is_offered_and_checked_without_being_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"zoom_impl_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(IMPLEMENTATION)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ToolRegistry(ToolSettings(options={"zoom": {"factor": 3}}), plugins=False)
    registry.register("zoom", zoom_declaration(module))
    names, skipped = offered_tools(registry, EpisodeConfig(controller="agent"))
    assert "zoom" in names and skipped == []
    registry.check_options(["zoom"])
    bad = ToolRegistry(ToolSettings(options={"zoom": {"factor": "big"}}), plugins=False)
    bad.register("zoom", zoom_declaration(module))
    with pytest.raises(ConfigError, match="tool zoom: option factor"):
        bad.check_options(["zoom"])
    assert module not in sys.modules  # role, schema and options came from the declaration
    assert type(registry.get("zoom")).__name__ == "Zoom"
    assert module in sys.modules


def test_a_declaration_under_another_name_is_refused() -> None:
    registry = ToolRegistry(plugins=False)
    with pytest.raises(ConfigError, match="declares itself 'zoom'"):
        registry.register("zoomer", zoom_declaration("anywhere"))


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
