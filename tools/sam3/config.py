"""SAM 3 architectures: the official one (``full``) and a tiny one of the same classes (``tiny``).

A SAM 3 checkpoint in ``transformers`` format (``facebook/sam3``'s ``model.safetensors``) is
the state dict of :class:`transformers.Sam3VideoModel`: ``detector_model.*`` (vision
backbone and neck, CLIP text encoder, DETR encoder and decoder, mask decoder),
``tracker_model.*`` (the SAM 2-style prompt encoder and mask decoder, plus the video memory)
and ``tracker_neck.*`` (the tracker's own neck on the shared backbone). The tools build that
model, so the official file loads key for key; the video memory is never run here.

``tiny`` (about 5 M parameters: backbone width 64, 2 layers, a 224-pixel input, feature maps
64/32/16, DETR and mask decoders of width 64, 20 queries) builds in a fraction of a second:
the tests and smoke runs use it with random weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal, get_args

from tools.errors import ConfigError

if TYPE_CHECKING:
    from transformers import Sam3VideoConfig

Size = Literal["full", "tiny"]
SIZES: tuple[str, ...] = get_args(Size)

_WIDTH = 64
_FEATURES = [[64, 64], [32, 32], [16, 16]]
_BACKBONE = {
    "model_type": "sam3_vit_model",
    "hidden_size": _WIDTH,
    "intermediate_size": 2 * _WIDTH,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 224,
    "patch_size": 14,
    "window_size": 8,
    "global_attn_indexes": [1],
    "pretrain_image_size": 224,
}
_VISION = {
    "model_type": "sam3_vision_model",
    "backbone_config": _BACKBONE,
    "fpn_hidden_size": _WIDTH,
    "backbone_feature_sizes": _FEATURES,
}
_SMALL = {"hidden_size": _WIDTH, "num_attention_heads": 2, "intermediate_size": 2 * _WIDTH}
TINY_CONFIG: dict[str, Any] = {
    "detector_config": {
        "vision_config": _VISION,
        "text_config": {
            "model_type": "clip_text_model",
            "vocab_size": 49408,
            "projection_dim": _WIDTH,
            "num_hidden_layers": 2,
            "max_position_embeddings": 32,
            **_SMALL,
        },
        "geometry_encoder_config": {"num_layers": 1, **_SMALL},
        "detr_encoder_config": {"num_layers": 1, **_SMALL},
        "detr_decoder_config": {"num_layers": 1, "num_queries": 20, **_SMALL},
        "mask_decoder_config": {"hidden_size": _WIDTH, "num_attention_heads": 2},
    },
    "tracker_config": {
        "image_size": 224,
        "vision_config": _VISION,
        "prompt_encoder_config": {"hidden_size": _WIDTH, "image_size": 224, "patch_size": 14,
                                  "mask_input_channels": 4},
        "mask_decoder_config": {"hidden_size": _WIDTH, "mlp_dim": 2 * _WIDTH, "num_attention_heads": 2,
                                "iou_head_hidden_dim": _WIDTH},
        "memory_attention_hidden_size": _WIDTH,
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 2 * _WIDTH,
        "memory_attention_rope_feat_sizes": _FEATURES[-1],
        "memory_encoder_hidden_size": _WIDTH,
        "memory_encoder_output_channels": 16,
        "mask_downsampler_embed_dim": _WIDTH,
        "memory_fuser_embed_dim": _WIDTH,
        "memory_fuser_intermediate_dim": 2 * _WIDTH,
    },
}  # fmt: skip
"""The tiny architecture as ``Sam3VideoConfig`` keyword arguments."""


def check_size(size: str) -> Size:
    """``size`` when it is ``full`` or ``tiny``.

    Raises:
        ConfigError: anything else.
    """
    if size not in SIZES:
        raise ConfigError(f"unknown SAM 3 size {size!r}; use one of {', '.join(SIZES)}")
    return size  # type: ignore[return-value]


def build_config(size: str = "full", overrides: dict[str, Any] | None = None) -> Sam3VideoConfig:
    """The ``Sam3VideoConfig`` of ``size``; ``overrides`` are keyword arguments merged into it
    (nested dicts merge key by key).

    Raises:
        ConfigError: an unknown size, or overrides ``transformers`` refuses.
    """
    from transformers import Sam3VideoConfig

    values = copy.deepcopy(TINY_CONFIG) if check_size(size) == "tiny" else {}
    _merge(values, overrides or {})
    try:
        return Sam3VideoConfig(**values)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"bad SAM 3 config overrides {overrides!r}: {exc}") from None


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def config_digest(config: Sam3VideoConfig) -> str:
    """A short stable id of the architecture (part of random-weight fingerprints)."""
    text = json.dumps(_without_version(config.to_dict()), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _without_version(value: Any) -> Any:
    """The config dict without ``transformers_version`` (it names the library, not the model)."""
    if isinstance(value, dict):
        return {k: _without_version(v) for k, v in value.items() if k != "transformers_version"}
    if isinstance(value, list):
        return [_without_version(v) for v in value]
    return value


def image_side(config: Sam3VideoConfig) -> int:
    """The side of SAM 3's square input (1008 for the official model): every image is
    resized to ``side x side`` (not letterboxed), so x and y scale by different factors."""
    detector: Any = config.detector_config
    return int(detector.vision_config.backbone_config.image_size)
