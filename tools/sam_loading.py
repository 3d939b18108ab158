"""Build segment-anything models: official checkpoints, seeded random weights, tiny configs.

- ``pretrained``: segment-anything's own ``sam_model_registry[model_type]`` builds the
  architecture; the official checkpoint (a plain state dict) is read with
  ``torch.load(weights_only=True)`` (a checkpoint file must not be able to run code) and
  loaded strictly, so a file of another model type fails with a clear message.
- ``random``: the same architecture, initialised under ``torch.manual_seed(seed)`` (smoke
  runs and timing; masks are meaningless).
- :func:`build_sam_from_config`: the real segment-anything classes at any size;
  :data:`TINY_SAM_CONFIG` is small enough for tests (a forward pass takes milliseconds).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from checkpoints.registry import SAM_MODEL_TYPES, sam_checkpoint_info
from tools.base import ToolSettings
from tools.errors import CheckpointError, ConfigError
from tools.sam_configs import (
    DEFAULT_EMBEDDING_CACHE,
    MAX_SAM_PARAMETERS,
    SAM_BOUNDS,
    SAM_CONFIGS,
    TINY_SAM_CONFIG,
    SamConfig,
    SamConfigOption,
    SamProposeOptions,
    coerce_config,
)

DOWNLOAD_COMMAND = "refseg weights download sam --model {model_type}"


def build_sam_from_config(cfg: SamConfig) -> Sam:
    """Build a SAM (eval mode, default init) from the real segment-anything classes.

    Mirrors ``segment_anything.build_sam._build_sam`` with every size exposed.
    """
    embedding_size = cfg.img_size // cfg.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg.encoder_depth,
            embed_dim=cfg.encoder_embed_dim,
            img_size=cfg.img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg.encoder_num_heads,
            patch_size=cfg.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=cfg.encoder_global_attn_indexes,
            window_size=cfg.window_size,
            out_chans=cfg.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_embed_dim,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(cfg.img_size, cfg.img_size),
            mask_in_chans=cfg.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=cfg.decoder_depth,
                embedding_dim=cfg.prompt_embed_dim,
                mlp_dim=cfg.decoder_mlp_dim,
                num_heads=cfg.decoder_num_heads,
            ),
            transformer_dim=cfg.prompt_embed_dim,
            iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim,
        ),
    )
    sam.eval()
    return sam


def _registry_build(model_type: str) -> Sam:
    # Looked up at call time, so tests can swap a builder for a smaller architecture.
    from segment_anything.build_sam import sam_model_registry

    if model_type not in sam_model_registry:
        raise ConfigError(
            f"unknown SAM model type {model_type!r}; choose one of {', '.join(SAM_MODEL_TYPES)}"
        )
    sam = sam_model_registry[model_type](checkpoint=None)
    sam.eval()
    return sam


def build_sam_random(model_type: str, seed: int, config: SamConfig | None = None) -> Sam:
    """The architecture with seeded random weights (the global RNG state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_sam_from_config(config) if config is not None else _registry_build(model_type)


def resolve_sam_checkpoint(settings: ToolSettings) -> Path:
    """``settings.sam_checkpoint``, else ``checkpoint_dir / <official file name>``."""
    if settings.sam_checkpoint is not None:
        return Path(settings.sam_checkpoint)
    return Path(settings.checkpoint_dir) / sam_checkpoint_info(settings.sam_model_type).filename


def missing_checkpoint_message(path: Path, model_type: str) -> str:
    command = DOWNLOAD_COMMAND.format(model_type=model_type if model_type in SAM_MODEL_TYPES else "vit_b")
    return (
        f"SAM {model_type} checkpoint not found: {path}; download it with `{command}` "
        "(or use random weights for a smoke run: --weights random)"
    )


def read_state_dict(path: Path, model_type: str) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a state dict of tensors.

    Raises:
        CheckpointError: missing, unreadable, corrupt, or not a state dict.
    """
    if not path.exists():
        raise CheckpointError(missing_checkpoint_message(path, model_type))
    if not path.is_file():
        raise CheckpointError(
            f"SAM checkpoint {path} is not a file; point the SAM checkpoint at the .pth file"
        )
    hint = f"delete it and download it again with `{DOWNLOAD_COMMAND.format(model_type=model_type)}`"
    try:
        with open(path, "rb") as handle:
            data = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types (pickle, zip, EOF, Runtime...)
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        size = path.stat().st_size
        raise CheckpointError(
            f"SAM checkpoint {path} ({size:,} bytes) is corrupt or not a PyTorch state dict "
            f"({type(exc).__name__}: {detail}); {hint}"
        ) from None
    # Official files are a plain state dict; training checkpoints often wrap it.
    if isinstance(data, dict):
        for wrapper in ("model", "state_dict"):
            inner = data.get(wrapper)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                data = inner
                break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(
            f"SAM checkpoint {path} holds {type(data).__name__}, not a state dict of tensors; {hint}"
        )
    return data


def load_state_dict_checked(sam: Sam, state: dict[str, torch.Tensor], path: Path, model_type: str) -> None:
    """Strictly load ``state`` into ``sam``; a mismatch says what differs.

    Raises:
        CheckpointError: missing or unexpected keys, or tensors of the wrong shape.
    """
    expected = sam.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:2])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:2])})")
        if wrong:
            parts.append(f"{len(wrong)} tensors of the wrong shape (e.g. {wrong[0]})")
        others = [t for t in SAM_MODEL_TYPES if t != model_type]
        raise CheckpointError(
            f"SAM checkpoint {path} does not match the {model_type} architecture: {'; '.join(parts)}. "
            f"Is it a checkpoint of another model type ({', '.join(others)})? "
            "Set the SAM model type to the checkpoint's type, or use the right checkpoint file"
        )
    sam.load_state_dict(state, strict=True)


def load_sam(settings: ToolSettings, config: SamConfig | None = None) -> Sam:
    """Build the SAM that ``settings`` asks for, on ``settings.device``, in eval mode.

    Args:
        settings: ``weights`` (``pretrained`` | ``random``), ``sam_model_type``,
            ``sam_checkpoint`` / ``checkpoint_dir``, ``seed``, ``device``.
        config: build this architecture instead of the registry's ``sam_model_type`` one
            (tiny models for tests); with ``pretrained`` the checkpoint must match it.

    Raises:
        CheckpointError: missing, corrupt or mismatching checkpoint.
        ConfigError: unknown model type.
    """
    model_type = settings.sam_model_type
    if config is None and model_type not in SAM_MODEL_TYPES and model_type != "default":
        raise ConfigError(
            f"unknown SAM model type {model_type!r}; choose one of {', '.join(SAM_MODEL_TYPES)}"
        )
    if settings.weights == "random":
        sam = build_sam_random(model_type, settings.seed, config)
    else:
        path = resolve_sam_checkpoint(settings)
        state = read_state_dict(path, model_type)
        sam = build_sam_from_config(config) if config is not None else _registry_build(model_type)
        load_state_dict_checked(sam, state, path, model_type)
        del state
    try:
        sam.to(settings.device)
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(f"cannot use device {settings.device!r} for SAM: {exc}") from None
    sam.eval()
    return sam


# Re-exported: the configs and sam_propose's options live in tools.sam_configs (no torch).
__all__ = [
    "DEFAULT_EMBEDDING_CACHE",
    "MAX_SAM_PARAMETERS",
    "SAM_BOUNDS",
    "SAM_CONFIGS",
    "TINY_SAM_CONFIG",
    "SamConfig",
    "SamConfigOption",
    "SamProposeOptions",
    "build_sam_from_config",
    "build_sam_random",
    "coerce_config",
    "load_sam",
    "missing_checkpoint_message",
    "read_state_dict",
    "resolve_sam_checkpoint",
]
