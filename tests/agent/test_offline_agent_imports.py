"""The agent on the offline toolset imports no model code: nothing is charged to its first
episode, and the tools it may call are built at set-up (issue 19 item 11, issue 25 item 1)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    import numpy as np
    from agent.episode import EpisodeConfig
    from agent.session import Session
    from bench.doubles.fixed_latency import LatencyEndpoint
    from bench.options import EpisodeOptions, ModelOptions, VLMOptions, CacheOptions
    from bench.runtime import build_runtime
    from tools.offline.scenes import generate_scene
    from tools.types import Image

    async def main(url):
        options = EpisodeOptions(
            models=ModelOptions(toolset="offline"),
            episode=EpisodeConfig(controller="agent", tau_conf=1.0, tau_gap=1.0),
            vlm=VLMOptions(base_url=url),
            cache=CacheOptions(enabled=False),
        )
        rt = build_runtime(options)
        session = Session(rt.registry, rt.config, rt.cache)
        setup_s = await session.setup()
        built = sorted(rt.registry._tools)
        scene = generate_scene(3)
        image = Image.from_array(np.asarray(scene.image, dtype=np.uint8))
        result = await session.run(image, scene.objects[0].expressions[0])
        await rt.aclose_vlm()
        loaded = [m for m in ("torch", "segment_anything", "open_clip", "torchvision") if m in sys.modules]
        print(json.dumps({"loaded": loaded, "built": built, "stop": str(result.stop_reason),
                          "turns": result.turns, "error": result.error}))

    with LatencyEndpoint(0.0, in_process=True) as endpoint:
        anyio.run(main, endpoint.base_url)
    """
)


@pytest.mark.slow
def test_offline_agent_imports_no_model_code_and_builds_its_tools_at_setup() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["error"] is None
    assert seen["stop"] == "agent_submit" and seen["turns"] == 2  # ranker, then submit
    assert seen["loaded"] == []
    assert seen["built"] == ["attribute_rank", "refine_query", "region_prompt", "region_propose"]
