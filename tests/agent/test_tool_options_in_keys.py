"""A tool's options are in every cache and in-flight key by construction (issue 18, item 1).

The invoker derives each key from the tool's name, version, model fingerprint, inputs,
arguments and *every field of its validated options*; no tool adds them itself. The plugin
ranker of ``tests/plugin_package`` (``my_ranker``, a ``temperature`` option) says nothing about
its options in any key method, yet two temperatures on one cache dir give two answers.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from helpers_plugins import PLUGIN_PACKAGE, install_in_process, plugin_env

from agent.costs import CostBook
from agent.invoke import CallContext, Invoker, cache_key
from agent.tracing import Tracer
from cache.store import ToolCache
from tools.base import ToolSettings, Workspace
from tools.clip_rank import ClipRank
from tools.errors import ConfigError
from tools.offline.scenes import generate_scene
from tools.refine import RefineQuery
from tools.registry import ToolRegistry
from tools.sam_prompt import SamPrompt
from tools.sam_propose import SamPropose
from tools.types import Image

REPO = Path(__file__).resolve().parents[2]
KEY_METHODS = ("fingerprint", "key_inputs", "key_args")


def _workspace(*, proposed: bool = False) -> Workspace:
    scene = generate_scene(3)
    ws = Workspace(Image.from_array(scene.image), scene.objects[0].expressions[0])
    if proposed:
        proposer = ToolRegistry(plugins=True).get("region_propose")
        ws.set_proposals(anyio.run(proposer, ws, proposer.Params()))
    return ws


def _rank(cache_dir: Path, temperature: float) -> tuple[float, str]:
    """Propose and rank one scene with ``my_ranker`` at ``temperature`` through the real invoker
    and a disk cache at ``cache_dir`` (a fresh process's view: new registry, new cache handle)."""
    settings = ToolSettings(options={"my_ranker": {"temperature": temperature}})
    cache = ToolCache(cache_dir)
    invoker = Invoker(ToolRegistry(settings), cache)
    ctx = CallContext(costs=CostBook(), log=Tracer(None).bind(sample_id="0"))
    ws = _workspace()

    async def go() -> Any:
        await invoker.call("region_propose", ws, {}, ctx)
        return await invoker.call("my_ranker", ws, {}, ctx)

    try:
        ranking = anyio.run(go)
    finally:
        cache.close()
    return ranking.conf, "cached" if ctx.costs.tools["my_ranker"].cache_hits else "computed"


def test_two_temperatures_on_one_cache_dir_give_two_answers(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with install_in_process(tmp_path / "site"):
        sharp, how_sharp = _rank(cache, 0.05)
        flat, how_flat = _rank(cache, 5.0)
        again, how_again = _rank(cache, 0.05)
    assert (how_sharp, how_flat, how_again) == ("computed", "computed", "cached")
    assert sharp > 0.9 and flat < 0.5  # the option changes the answer: it must change the key
    assert again == sharp  # the same options hit the same entry


def test_keys_of_two_option_values_differ_with_no_key_code_in_the_tool(tmp_path: Path) -> None:
    with install_in_process(tmp_path / "site"):
        from refseg_example_plugins.ranker import MyRanker  # defines no key_args, no fingerprint

        ws = _workspace(proposed=True)
        params = MyRanker.Params()
        low = MyRanker(ToolSettings(options={"my_ranker": {"temperature": 0.05}}))
        high = MyRanker(ToolSettings(options={"my_ranker": {"temperature": 5.0}}))
        default = MyRanker(ToolSettings())
        explicit = MyRanker(ToolSettings(options={"my_ranker": {"temperature": 1.0}}))
        assert low.key_args(params) == high.key_args(params) and low.fingerprint() == high.fingerprint()
        assert cache_key(low, ws, params) != cache_key(high, ws, params)
        # Every field of the *validated* options: a default given or left out is one key.
        assert cache_key(default, ws, params) == cache_key(explicit, ws, params)


def test_built_in_tools_options_reach_their_keys_through_the_invoker() -> None:
    ws = _workspace(proposed=True)
    params = SamPropose.Params()
    tiny = {"config": "tiny"}
    sam_a = SamPropose(ToolSettings(weights="random", options={"sam_propose": tiny}))
    sam_b = SamPropose(
        ToolSettings(weights="random", options={"sam_propose": {**tiny, "embedding_cache": 3}})
    )
    assert cache_key(sam_a, ws, params) != cache_key(sam_b, ws, params)
    # sam_prompt draws on sam_propose's model: the options of the tool it uses are in its key.
    prompt = SamPrompt.Params(box=[1, 1, 20, 20])
    pa, pb = SamPrompt(sam_a.settings), SamPrompt(sam_b.settings)
    pa.use_tools({"sam_propose": sam_a})
    pb.use_tools({"sam_propose": sam_b})
    assert cache_key(pa, ws, prompt, [sam_a]) != cache_key(pb, ws, prompt, [sam_b])
    rules = RefineQuery(ToolSettings(vlm=_NamedClient(), options={"refine_query": {"refiner": "rules"}}))
    vlm = RefineQuery(ToolSettings(vlm=_NamedClient(), options={"refine_query": {"refiner": "vlm"}}))
    assert rules.fingerprint() == vlm.fingerprint()  # the models behind it, not the choice
    assert cache_key(rules, ws, RefineQuery.Params()) != cache_key(vlm, ws, RefineQuery.Params())


def test_a_bad_option_value_is_a_one_line_error_before_any_key() -> None:
    tool = ClipRank.__new__(ClipRank)  # no model needed: the options fail first
    tool.settings = ToolSettings(options={"clip_rank": {"style": "wide"}})
    with pytest.raises(ConfigError, match=r"^tool clip_rank: option style: .*dictionary") as info:
        tool.validated_options()
    assert "\n" not in str(info.value)


class _NamedClient:
    model = "some-vlm"

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        raise AssertionError("not called")


def _models(module: ast.Module) -> dict[str, set[str]]:
    return {
        node.name: {
            s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
        }
        for node in module.body
        if isinstance(node, ast.ClassDef)
    }


def _declared_options(modules: list[ast.Module]) -> dict[str, set[str]]:
    """``{DECLARATION: its Options model's field names}`` for every ``NAME = ToolDeclaration(...,
    Options=Model)`` in ``modules`` (declarations live in light modules, apart from the tools)."""
    found = {}
    for module in modules:
        models = _models(module)
        for node in module.body:
            call = node.value if isinstance(node, ast.Assign) else None
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "ToolDeclaration"):
                continue
            options = next((k.value for k in call.keywords if k.arg == "Options"), None)
            if isinstance(options, ast.Name):
                for target in node.targets:  # type: ignore[union-attr]
                    if isinstance(target, ast.Name):
                        found[target.id] = models.get(options.id, set())
    return found


def _option_fields(module: ast.Module, declared: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """``{tool class: its Options model's field names}`` for the tools a module defines (an
    ``Options = Model`` attribute, or a ``declaration = NAME`` whose declaration has one)."""
    models = _models(module)
    tools = {}
    for node in module.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name)):
                continue
            names = {t.id for t in stmt.targets if isinstance(t, ast.Name)}
            if "Options" in names:
                tools[node.name] = models.get(stmt.value.id, set())
            elif "declaration" in names and stmt.value.id in (declared or {}):
                tools[node.name] = (declared or {})[stmt.value.id]
    return tools


def _mentions(method: ast.FunctionDef, fields: set[str]) -> list[str]:
    """What a key method mentions of the options: the options mapping, their model, a field."""
    found = []
    for node in ast.walk(method):
        if isinstance(node, ast.Attribute) and (
            node.attr in ("options", "read_options", "validated_options", "Options") or node.attr in fields
        ):
            found.append(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in fields:
            found.append(repr(node.value))
    return found


def test_no_tool_module_mentions_its_options_when_building_a_key() -> None:
    sources = [*sorted((REPO / "tools").rglob("*.py")), *sorted(PLUGIN_PACKAGE.rglob("*.py"))]
    offenders, tools_seen = [], 0
    parsed = {path: ast.parse(path.read_text()) for path in sources}
    declared = _declared_options(list(parsed.values()))
    for path, module in parsed.items():
        option_fields = _option_fields(module, declared)
        for node in module.body:
            if not isinstance(node, ast.ClassDef):
                continue
            tools_seen += node.name in option_fields
            fields = option_fields.get(node.name, set())
            for method in node.body:
                if isinstance(method, ast.FunctionDef) and method.name in KEY_METHODS:
                    for what in _mentions(method, fields):
                        offenders.append(
                            f"{path.relative_to(REPO)}:{method.lineno} {node.name}.{method.name}: {what}"
                        )
    assert tools_seen >= 4  # sam_propose, clip_rank, refine_query and the plugin ranker were read
    assert offenders == []


def test_the_scan_finds_a_tool_that_adds_its_options_by_hand() -> None:
    planted = ast.parse(
        "class O(StrictParams):\n    style: int = 1\n"
        "class T(Tool):\n    Options = O\n"
        "    def key_args(self, params):\n        return {**params.model_dump(), 'style': self.style}\n"
    )
    fields = _option_fields(planted)["T"]
    key_args = planted.body[1].body[1]
    assert isinstance(key_args, ast.FunctionDef)
    assert sorted(_mentions(key_args, fields)) == ["'style'", "style"]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _confs(run_dir: Path) -> list[float]:
    return [json.loads(line)["conf"] for line in (run_dir / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow  # three refseg subprocesses
def test_cli_tool_option_on_one_cache_dir_and_a_resume_with_other_options(tmp_path: Path) -> None:
    env = plugin_env(tmp_path / "site")
    common = ["bench", "run", "--dataset", "synthetic", "--n", "1", "--toolset", "offline"]
    common += ["--ranker", "my_ranker", "--controller", "oneshot", "--quiet", "--bootstrap", "0"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    runs = {}
    for t in ("0.05", "5.0"):
        out = tmp_path / f"run_{t}"
        done = _cli([*common, "--out", str(out), "--tool-option", f"my_ranker.temperature={t}"], env)
        assert done.returncode == 0, done.stderr
        runs[t] = out
    sharp, flat = np.mean(_confs(runs["0.05"])), np.mean(_confs(runs["5.0"]))
    assert sharp > 0.7 and flat < 0.2, (sharp, flat)
    costs = json.loads((runs["5.0"] / "summary.json").read_text())["costs"]["tools"]
    assert costs["region_propose"]["cache_hit_rate"] == 1.0  # the cache was shared...
    assert costs["my_ranker"]["cache_hit_rate"] == 0.0  # ... but not across temperatures
    resumed = _cli([*common, "--out", str(runs["0.05"]), "--tool-option", "my_ranker.temperature=5.0"], env)
    assert resumed.returncode != 0
    error = resumed.stderr.strip().splitlines()[-1]
    assert "different configuration" in error and "my_ranker" in error and "temperature" in error


def test_a_third_party_tool_is_a_plugin_and_refseg_loops_own_entry_points_are_bundled(tmp_path: Path) -> None:
    with install_in_process(tmp_path / "site"):
        registry = ToolRegistry()
        origins = {name: registry.spec(name).origin for name in ("my_ranker", "sam3_propose", "clip_rank")}
    assert origins == {"my_ranker": "plugin", "sam3_propose": "bundled", "clip_rank": "builtin"}
