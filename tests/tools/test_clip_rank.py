"""clip_rank with a tiny real open_clip model: rankings, caches, checkpoints, errors."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch
from helpers_clip import tiny_clip_settings, workspace
from pydantic import ValidationError

import tools.clip_rank as clip_rank_module
from agent.invoke import cache_key
from tools.base import ToolSettings, Workspace
from tools.clip_declaration import ClipRankParams
from tools.clip_loading import (
    cached_checkpoint,
    clip_fingerprint,
    load_clip,
    prepare_clip,
    register_tiny_clip,
)
from tools.clip_rank import ClipRank
from tools.errors import CheckpointError, ConfigError, DownloadError, ToolError
from tools.registry import ToolRegistry
from tools.types import Image, Proposals, Ranking
from tools.visual_prompts import prompt_batch


def rank(tool: ClipRank, ws, **params) -> Ranking:
    return anyio.run(tool.__call__, ws, ClipRankParams(**params))


def key(tool: ClipRank, ws, params: ClipRankParams) -> str | None:
    return cache_key(tool, ws, params)  # the invoker's key: options included


@pytest.fixture(scope="module")
def tool() -> ClipRank:
    return ClipRank(tiny_clip_settings())


def test_ranking_is_a_consistent_distribution(tool):
    ws = workspace("the red box", empty=True)
    ranking = rank(tool, ws, temperature=0.05)
    assert len(ranking) == 4 and ranking.scores.dtype == np.float32
    assert ranking.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert (np.abs(ranking.scores) <= 1.0 + 1e-5).all()  # cosine similarities
    p = np.sort(ranking.probs)[::-1]
    assert ranking.conf == pytest.approx(p[0]) and ranking.gap == pytest.approx(p[0] - p[1])
    assert ranking.top == int(np.argmax(ranking.scores))
    z = np.exp((ranking.scores - ranking.scores.max()) / 0.05)
    assert np.allclose(ranking.probs, z / z.sum(), atol=1e-6)
    assert ranking.query == "the red box" and ranking.temperature == 0.05
    assert ranking.proposals_digest == ws.proposals.digest and ranking.source == "clip_rank"
    sharper = rank(tool, ws, temperature=0.001)
    assert sharper.conf >= ranking.conf


def test_scores_match_one_prompt_at_a_time(tool):
    ws = workspace()
    b = tool.bundle()
    for mode in ("crop", "grey"):
        ranking = rank(tool, ws, mode=mode, query="a dog", prompt_template="{}")
        p = ws.proposals
        with torch.inference_mode():
            txt = b.model.encode_text(b.tokenizer(["a dog"]), normalize=True)[0]
            for i in range(len(p)):
                one = prompt_batch(
                    ws.image.pixels, p.masks[i : i + 1], p.boxes[i : i + 1], mode, b.image_size, b.mean, b.std
                )
                img = b.model.encode_image(one, normalize=True)[0]
                assert float(img @ txt) == pytest.approx(float(ranking.scores[i]), abs=1e-4)


def test_one_image_forward_per_image_proposals_and_mode():
    tool = ClipRank(tiny_clip_settings())
    ws = workspace()
    n = len(ws.proposals)
    rankings = [rank(tool, ws, query=q) for q in ("the red box", "blue thing", "a yellow square")]
    assert tool.image_forwards == 1 and tool.crops_encoded == n and tool.text_forwards == 3
    assert len({r.scores.tobytes() for r in rankings}) == 3  # the text side did change the scores
    rank(tool, ws, query="the red box")  # repeated query: both sides cached
    assert tool.image_forwards == 1 and tool.text_forwards == 3
    rank(tool, ws, query="the red box", prompt_template="{}")  # new template: new text only
    assert tool.image_forwards == 1 and tool.text_forwards == 4
    rank(tool, ws, query="the red box", mode="outline")  # new mode: new image side
    assert tool.image_forwards == 2 and tool.crops_encoded == 2 * n and tool.text_forwards == 4
    ws.proposals = Proposals.from_masks(ws.proposals.masks[:2])  # new proposals: new image side
    assert len(rank(tool, ws)) == 2
    assert tool.image_forwards == 3 and tool.crops_encoded == 2 * n + 2


def test_many_candidates_are_chunked_with_the_same_scores(monkeypatch):
    ws = workspace(empty=True)
    whole = rank(ClipRank(tiny_clip_settings()), ws)
    monkeypatch.setattr(clip_rank_module, "IMAGE_CHUNK", 3)
    chunked_tool = ClipRank(tiny_clip_settings())
    chunked = rank(chunked_tool, ws)
    assert chunked_tool.image_forwards == 2 and chunked_tool.crops_encoded == 4
    assert np.allclose(chunked.scores, whole.scores, atol=1e-5)


def test_default_query_is_the_workspace_query_and_part_of_the_key(tool):
    ws = workspace("the red box")
    params = ClipRankParams()
    first = rank(tool, ws)
    assert first.query == "the red box"
    k1 = key(tool, ws, params)
    assert k1 == key(tool, ws, ClipRankParams(query="the red box"))  # same text, same key
    ws.query = "the blue box"
    assert key(tool, ws, params) != k1
    second = rank(tool, ws)
    assert second.query == "the blue box" and not np.array_equal(first.scores, second.scores)
    assert key(tool, ws, ClipRankParams(mode="blur")) != key(tool, ws, params)
    other = workspace("the blue box")
    other.proposals = Proposals.from_masks(other.proposals.masks[:2])
    assert key(tool, other, params) != key(tool, ws, params)  # proposals digest is an input
    assert "query" not in tool.key_args(params)
    styled = ClipRank(tiny_clip_settings(options={"clip_rank": {"style": {"margin": 0.3}}}))
    assert styled.style.margin == 0.3
    assert "style" not in styled.key_args(params)  # the tool does not add its options...
    assert key(styled, ws, params) != key(tool, ws, params)  # ... the invoker does


def test_apply_records_the_ranking(tool):
    ws = workspace()
    ranking = rank(tool, ws)
    tool.apply(ws, ranking)
    assert ws.ranking is ranking and ws.best_ranking is ranking


def test_random_weights_are_seeded_and_fingerprinted():
    ws = workspace()
    a, b = ClipRank(tiny_clip_settings(seed=3)), ClipRank(tiny_clip_settings(seed=3))
    c = ClipRank(tiny_clip_settings(seed=4))
    assert np.array_equal(rank(a, ws).scores, rank(b, ws).scores)
    assert not np.array_equal(rank(a, ws).scores, rank(c, ws).scores)
    assert a.fingerprint() == f"random:{register_tiny_clip()}:seed3" != c.fingerprint()


def test_local_checkpoint_file_round_trip(tmp_path: Path):
    name = register_tiny_clip()
    path = tmp_path / "tiny.pt"
    torch.save(load_clip(name, weights="random", seed=7).model.state_dict(), path)
    from_file = ClipRank(tiny_clip_settings(weights="pretrained", clip_pretrained=str(path)))
    from_seed = ClipRank(tiny_clip_settings(seed=7))
    ws = workspace()
    assert np.allclose(rank(from_file, ws).scores, rank(from_seed, ws).scores, atol=1e-6)
    assert from_file.bundle().checkpoint_path == str(path)
    assert from_file.fingerprint() == f"{name}:sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    assert clip_fingerprint("ViT-B-16", "openai") == "ViT-B-16:openai"


def test_checkpoint_file_fingerprint_names_the_model(tmp_path: Path):
    # One file loads into ViT-B-16 (GELU) and ViT-B-16-quickgelu with different outputs:
    # the cache must not hand one's rankings to the other.
    path = tmp_path / "weights.pt"
    path.write_bytes(b"same bytes")
    assert clip_fingerprint("ViT-B-16", str(path)) != clip_fingerprint("ViT-B-16-quickgelu", str(path))


def test_checkpoint_of_another_model_or_corrupt_file_is_a_checkpoint_error(tmp_path: Path):
    name = register_tiny_clip()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="does not load"):
        load_clip(name, str(bad))
    wrong = tmp_path / "wrong.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, wrong)
    with pytest.raises(CheckpointError, match="does not load"):
        load_clip(name, str(wrong))
    with pytest.raises(CheckpointError, match="no such file"):
        load_clip(name, str(tmp_path / "missing.pt"))


def test_missing_tag_offline_fails_fast_with_what_to_do(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="refseg weights download clip --model ViT-B-16"):
        load_clip("ViT-B-16", "openai", cache_dir=str(tmp_path))
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        prepare_clip("ViT-B-16", "laion2b_s34b_b88k", cache_dir=str(tmp_path))
    tool = ClipRank(ToolSettings(clip_model="ViT-B-16", clip_pretrained="openai"))
    tool.cache_dir = str(tmp_path)
    with pytest.raises(CheckpointError, match="--weights random"):
        rank(tool, workspace())
    assert time.monotonic() - start < 3.0


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://127.0.0.1:9")  # closed port
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="unreachable"):
        prepare_clip("ViT-B-16", "openai", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 5.0


def test_cached_tag_resolves_without_network(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--timm--vit_base_patch16_clip_224.openai"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    weights = snapshot / "open_clip_model.safetensors"
    weights.write_bytes(b"stand-in")
    assert cached_checkpoint("ViT-B-16", "openai", cache_dir=str(tmp_path)) == str(weights)
    assert prepare_clip("ViT-B-16", "openai", cache_dir=str(tmp_path)) == str(weights)
    assert cached_checkpoint("ViT-B-16", "laion2b_s34b_b88k", cache_dir=str(tmp_path)) is None


def test_unknown_model_or_tag_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown open_clip model"):
        load_clip("ViT-Q-99", weights="random")
    with pytest.raises(ConfigError, match="known tags: openai"):
        load_clip("ViT-B-16", "no-such-tag")
    with pytest.raises(ConfigError, match="weights mode"):
        load_clip(register_tiny_clip(), weights="fake")


def test_tool_errors_for_missing_or_mismatched_inputs(tool):
    ws = workspace()
    ws.proposals = None
    with pytest.raises(ToolError, match="propose"):
        rank(tool, ws)
    z = np.zeros(0, np.float32)
    ws.proposals = Proposals(np.zeros((0, 96, 128), bool), np.zeros((0, 4), np.float32), z, z, z)
    with pytest.raises(ToolError, match="no candidate"):
        rank(tool, ws)
    ws.proposals = Proposals.from_masks(np.ones((2, 10, 10), bool))
    with pytest.raises(ToolError, match="propose again"):
        rank(tool, ws)
    ws = workspace()
    with pytest.raises(ToolError, match="query is empty"):
        rank(tool, ws, query="   ")


def test_params_schema_and_validation():
    schema = ClipRank.parameters_schema()
    assert set(schema["properties"]) == {"query", "mode", "temperature", "prompt_template"}
    assert schema["properties"]["mode"]["enum"] == ["crop", "blur", "grey", "outline"]
    for bad in ({"mode": "sketch"}, {"temperature": 0}, {"prompt_template": "no slot"}, {"k": 1}):
        with pytest.raises(ValidationError):
            ClipRankParams(**bad)
    with pytest.raises(ConfigError, match=r"option style\.thickness: Extra inputs"):
        ClipRank(tiny_clip_settings(options={"clip_rank": {"style": {"thickness": 3}}}))


def test_registry_builds_clip_rank_lazily():
    registry = ToolRegistry(tiny_clip_settings(), plugins=False)
    tool = registry.get("clip_rank")
    assert isinstance(tool, ClipRank) and tool.role == "rank" and tool.Output is Ranking
    assert tool._bundle is None  # nothing loaded until the first call
    image = Image.from_array(np.zeros((8, 8, 3), np.uint8))
    ws = Workspace(image=image, expression="x")
    assert tool.key_inputs(ws, ClipRankParams()) == {"image": image.digest, "query": "x"}


def test_template_is_not_applied_twice() -> None:
    from tools.clip_rank import apply_template

    assert apply_template("a photo of {}", "red car") == "a photo of red car"
    assert apply_template("a photo of {}", "A photo of a red car") == "A photo of a red car"
    assert apply_template("{}", "red car") == "red car"
