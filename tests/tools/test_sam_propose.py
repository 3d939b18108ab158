"""sam_propose and SAM loading, on a tiny SAM built from the real segment-anything classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import numpy as np
import pytest
import torch
from helpers_sam import OPEN, propose, scene, tiny_tool
from pydantic import ValidationError
from scipy import ndimage
from segment_anything.build_sam import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam
from torchvision.ops import box_iou

from tools.base import StrictParams, ToolSettings, Workspace
from tools.errors import CheckpointError, ConfigError, ToolError
from tools.registry import ToolRegistry
from tools.sam_loading import (
    TINY_SAM_CONFIG,
    SamConfig,
    build_sam_from_config,
    build_sam_random,
    load_sam,
)
from tools.sam_propose import SamPropose, SamProposeParams
from tools.types import boxes_from_masks


def save_tiny_checkpoint(path: Path, seed: int = 7, config: SamConfig = TINY_SAM_CONFIG) -> dict:
    """A randomly initialised tiny SAM saved exactly like the official files: a plain state dict."""
    torch.manual_seed(seed)
    state = build_sam_from_config(config).state_dict()
    torch.save(state, path)
    return state


# -- building and loading -------------------------------------------------------------------


def test_tiny_sam_is_built_from_the_real_classes() -> None:
    sam = build_sam_from_config(TINY_SAM_CONFIG)
    assert isinstance(sam, Sam)
    assert isinstance(sam.image_encoder, ImageEncoderViT)
    assert isinstance(sam.prompt_encoder, PromptEncoder)
    assert isinstance(sam.mask_decoder, MaskDecoder)
    assert sam.image_encoder.img_size == 128
    assert sum(p.numel() for p in sam.parameters()) < 200_000
    with torch.inference_mode():
        features = sam.image_encoder(sam.preprocess(torch.zeros(1, 3, 128, 128)))
    assert features.shape == (1, 32, 8, 8)


def test_random_weights_are_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_sam_random("vit_b", 3, TINY_SAM_CONFIG).state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    b = build_sam_random("vit_b", 3, TINY_SAM_CONFIG).state_dict()
    c = build_sam_random("vit_b", 4, TINY_SAM_CONFIG).state_dict()
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(a[key], b[key])
    assert not torch.equal(a[key], c[key])


def test_official_format_checkpoint_loads_through_the_registry_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the architecture size is swapped; reading and loading the file is the real path.
    monkeypatch.setitem(
        sam_model_registry, "vit_b", lambda checkpoint=None: build_sam_from_config(TINY_SAM_CONFIG)
    )
    state = save_tiny_checkpoint(tmp_path / "sam_vit_b_01ec64.pth")
    sam = load_sam(ToolSettings(weights="pretrained", checkpoint_dir=tmp_path))
    loaded = sam.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not sam.training


def test_explicit_checkpoint_path_with_a_config(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.pth"
    state = save_tiny_checkpoint(path, seed=11)
    settings = ToolSettings(weights="pretrained", sam_checkpoint=path, checkpoint_dir=tmp_path / "none")
    tool = SamPropose(settings, config=TINY_SAM_CONFIG)
    key = "image_encoder.patch_embed.proj.weight"
    assert torch.equal(tool.model.state_dict()[key], state[key])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert tool.fingerprint() == f"config-{TINY_SAM_CONFIG.digest()}:sha256:{digest}"
    result = propose(tool, scene(), **OPEN)
    assert len(result) > 0


def test_wrapped_state_dict_is_accepted(tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = build_sam_from_config(TINY_SAM_CONFIG).state_dict()
    torch.save({"model": state, "epoch": 3}, tmp_path / "ck.pth")
    sam = load_sam(ToolSettings(sam_checkpoint=tmp_path / "ck.pth"), TINY_SAM_CONFIG)
    assert torch.equal(
        sam.state_dict()["mask_decoder.iou_token.weight"], state["mask_decoder.iou_token.weight"]
    )


def test_missing_checkpoint_names_the_path_and_the_command(tmp_path: Path) -> None:
    settings = ToolSettings(weights="pretrained", checkpoint_dir=tmp_path)
    expected = str(tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.raises(CheckpointError) as err:
        load_sam(settings)
    assert expected in str(err.value)
    assert "refseg weights download sam --model vit_b" in str(err.value)
    # The tool fails the same way before any compute: its cache fingerprint needs the file.
    with pytest.raises(CheckpointError, match="refseg weights download sam --model vit_b"):
        SamPropose(settings).fingerprint()
    with pytest.raises(CheckpointError, match="--model vit_l"):
        load_sam(ToolSettings(checkpoint_dir=tmp_path, sam_model_type="vit_l"))


@pytest.mark.parametrize("content", [b"", b"this is not a checkpoint", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sam_vit_b_01ec64.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt or not a PyTorch state dict") as err:
        load_sam(ToolSettings(checkpoint_dir=tmp_path), TINY_SAM_CONFIG)
    assert "download it again" in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_checkpoint_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "sam_vit_b_01ec64.pth"
    save_tiny_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_sam(ToolSettings(checkpoint_dir=tmp_path), TINY_SAM_CONFIG)


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    other = SamConfig(**{**TINY_SAM_CONFIG.__dict__, "encoder_embed_dim": 48, "encoder_depth": 1})
    save_tiny_checkpoint(tmp_path / "sam_vit_b_01ec64.pth", config=other)
    with pytest.raises(CheckpointError, match="does not match the vit_b architecture") as err:
        load_sam(ToolSettings(checkpoint_dir=tmp_path), TINY_SAM_CONFIG)
    assert "missing keys" in str(err.value) and "wrong shape" in str(err.value)


def test_non_tensor_pickle_free_content_is_rejected(tmp_path: Path) -> None:
    torch.save({"weights": [1, 2, 3]}, tmp_path / "sam_vit_b_01ec64.pth")
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        load_sam(ToolSettings(checkpoint_dir=tmp_path), TINY_SAM_CONFIG)


def test_unknown_model_type_and_config() -> None:
    with pytest.raises(ConfigError, match="vit_b, vit_l, vit_h"):
        load_sam(ToolSettings(weights="random", sam_model_type="vit_q"))
    with pytest.raises(ConfigError, match="unknown SAM config"):
        SamPropose(ToolSettings(options={"sam_propose": {"config": "huge"}}))
    with pytest.raises(ConfigError, match="bad SAM config"):
        SamPropose(ToolSettings(options={"sam_propose": {"config": {"depth": 3}}}))


# -- the tool -------------------------------------------------------------------------------


def test_tool_protocol_and_schema() -> None:
    assert SamPropose.name == "sam_propose" and SamPropose.role == "propose"
    assert issubclass(SamPropose.Params, StrictParams)
    props = SamPropose.parameters_schema()["properties"]
    assert {"points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"} <= set(props)
    assert props["points_per_side"]["default"] == 16
    with pytest.raises(ValidationError):
        SamProposeParams(points_per_sid=8)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SamProposeParams(pred_iou_thresh=1.5)
    tool = tiny_tool()
    # Batch size changes speed only: it is not part of the cache key.
    assert "points_per_batch" not in tool.key_args(SamProposeParams())
    assert tool.fingerprint() == f"random:config-{TINY_SAM_CONFIG.digest()}:seed0"
    assert SamPropose(ToolSettings(weights="random", seed=5)).fingerprint() == "random:vit_b:seed5"


def test_registry_builds_the_tool_with_a_tiny_sam() -> None:
    registry = ToolRegistry(
        ToolSettings(weights="random", options={"sam_propose": {"config": "tiny"}}), plugins=False
    )
    tool = registry.get("sam_propose")
    assert isinstance(tool, SamPropose)
    assert tool.model.image_encoder.img_size == 128
    registry.close()
    assert tool._model is None


def test_outputs_have_the_documented_shapes_and_types() -> None:
    image = scene(h=72, w=100)
    tool = tiny_tool()
    result = propose(
        tool,
        image,
        points_per_side=6,
        max_proposals=20,
        **{k: v for k, v in OPEN.items() if k != "max_proposals"},
    )
    n = len(result)
    assert 0 < n <= 20
    assert result.masks.shape == (n, 72, 100) and result.masks.dtype == bool
    assert result.boxes.shape == (n, 4) and result.boxes.dtype == np.float32
    assert result.scores.dtype == np.float32 and result.stability.dtype == np.float32
    assert result.areas.dtype == np.int64
    np.testing.assert_array_equal(result.areas, result.masks.reshape(n, -1).sum(axis=1))
    np.testing.assert_array_equal(result.boxes, boxes_from_masks(result.masks))
    assert (result.areas > 0).all()
    assert np.all(np.diff(result.scores) <= 0), "best predicted IoU first"
    assert result.source == "sam_propose"
    restored = type(result).from_record(*result.to_record())
    np.testing.assert_array_equal(restored.masks, result.masks)


def test_embedding_is_computed_once_across_calls_with_different_knobs() -> None:
    image = scene()
    tool = tiny_tool()
    propose(tool, image, points_per_side=4, points_per_batch=5)  # 16 points -> 4 batches
    assert (tool.encodes, tool.decode_batches) == (1, 4)
    propose(tool, image, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    assert (tool.encodes, tool.decode_batches) == (1, 5)
    propose(tool, scene(seed=1), points_per_side=2)
    assert tool.encodes == 2


def test_concurrent_calls_on_one_image_encode_once() -> None:
    image, tool = scene(), tiny_tool()
    results: list[object] = []

    async def main() -> None:
        async def one(n: int) -> None:
            results.append(await tool(Workspace(image, "x"), SamProposeParams(points_per_side=n, **OPEN)))

        async with anyio.create_task_group() as tg:
            for n in (3, 4, 5):
                tg.start_soon(one, n)

    anyio.run(main)
    assert len(results) == 3 and tool.encodes == 1


def test_embedding_lru_evicts_old_images() -> None:
    tool = tiny_tool(embedding_cache=1)
    a, b = scene(seed=0), scene(seed=1)
    for image in (a, b, a):
        propose(tool, image, points_per_side=2)
    assert tool.encodes == 3


def test_thresholds_filter_candidates() -> None:
    image, tool = scene(), tiny_tool()
    base = propose(tool, image, points_per_side=6, stability_score_offset=0.01, **OPEN)
    assert len(base) > 10
    iou_cut = float(np.median(base.scores))
    by_iou = propose(
        tool, image, points_per_side=6, stability_score_offset=0.01, **{**OPEN, "pred_iou_thresh": iou_cut}
    )
    assert 0 < len(by_iou) < len(base)
    assert (by_iou.scores > iou_cut).all()
    assert len(by_iou) == int((base.scores > iou_cut).sum())

    stab_cut = float(np.median(base.stability))
    assert stab_cut > 0
    by_stab = propose(
        tool,
        image,
        points_per_side=6,
        stability_score_offset=0.01,
        **{**OPEN, "stability_score_thresh": stab_cut},
    )
    assert 0 < len(by_stab) < len(base) and (by_stab.stability >= stab_cut).all()

    area_cut = int(np.median(base.areas))
    by_area = propose(tool, image, points_per_side=6, stability_score_offset=0.01, min_area=area_cut, **OPEN)
    assert 0 < len(by_area) < len(base) and (by_area.areas >= area_cut).all()

    capped = propose(
        tool, image, points_per_side=6, stability_score_offset=0.01, **{**OPEN, "max_proposals": 5}
    )
    np.testing.assert_array_equal(capped.scores, base.scores[:5])
    assert tool.encodes == 1


def test_nms_removes_overlapping_boxes() -> None:
    image, tool = scene(), tiny_tool()
    loose = propose(tool, image, points_per_side=6, **OPEN)
    strict = propose(tool, image, points_per_side=6, **{**OPEN, "box_nms_thresh": 0.5})
    assert len(strict) < len(loose)
    iou = box_iou(torch.from_numpy(strict.boxes), torch.from_numpy(strict.boxes))
    iou.fill_diagonal_(0)
    assert float(iou.max()) <= 0.5 + 1e-6


def test_min_mask_region_area_removes_small_islands_and_holes() -> None:
    image, tool = scene(), tiny_tool()
    raw = propose(tool, image, points_per_side=4, **OPEN)
    eight = np.ones((3, 3), dtype=bool)
    assert any(ndimage.label(m, structure=eight)[1] > 1 for m in raw.masks), "random masks are speckled"
    cleaned = propose(tool, image, points_per_side=4, min_mask_region_area=40, **OPEN)
    assert len(cleaned) > 0
    for mask in cleaned.masks:
        labels, n = ndimage.label(mask, structure=eight)
        sizes = np.bincount(labels.ravel())[1:]
        assert n == 1 or sizes.min() >= 40


def test_nothing_passing_is_a_valid_empty_result() -> None:
    image, tool = scene(h=40, w=50), tiny_tool()
    empty = propose(tool, image, points_per_side=3, min_area=40 * 50 + 1, **OPEN)
    assert len(empty) == 0
    assert empty.masks.shape == (0, 40, 50) and empty.boxes.shape == (0, 4)
    assert empty.summary()["n_proposals"] == 0


def test_injected_model_and_bad_arguments() -> None:
    torch.manual_seed(2)
    model = build_sam_from_config(TINY_SAM_CONFIG)
    tool = SamPropose(ToolSettings(weights="pretrained"), model=model)
    assert tool.model is model
    fp = tool.fingerprint()
    assert fp.startswith("module:")
    assert SamPropose(model=model).fingerprint() == fp
    assert len(anyio.run(tool, Workspace(scene(), "x"), {"points_per_side": 3, **OPEN})) > 0
    with pytest.raises(ToolError, match="invalid arguments for sam_propose"):
        anyio.run(tool, Workspace(scene(), "x"), {"points_per_side": 0})
    tool.close()
    assert tool.model is model  # an injected model is not dropped
