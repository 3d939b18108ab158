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

import hashlib
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import AfterValidator, Field
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from checkpoints.registry import SAM_MODEL_TYPES, sam_checkpoint_info
from tools.base import StrictParams, ToolSettings
from tools.errors import CheckpointError, ConfigError

DOWNLOAD_COMMAND = "refseg weights download sam --model {model_type}"


@dataclass(frozen=True)
class SamConfig:
    """Architecture of a SAM model; field names follow ``segment_anything.build_sam``.

    The official models differ only in the encoder (``vit_b``: 768 wide, 12 deep, 12 heads;
    ``vit_l``: 1024/24/16; ``vit_h``: 1280/32/16) and share ``img_size=1024``,
    ``patch_size=16``, ``prompt_embed_dim=256``.
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamConfig:
        """Build from a plain dict (e.g. ``settings.options``), every size checked
        (:meth:`problems`); unknown keys are an error.

        Raises:
            ConfigError: one line naming each bad field.
        """
        try:
            values = dict(data)
            if "encoder_global_attn_indexes" in values:
                values["encoder_global_attn_indexes"] = tuple(values["encoder_global_attn_indexes"])
            config = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad SAM config: {exc}") from None
        problems = config.problems()
        if problems:
            raise ConfigError(f"bad SAM config: {'; '.join(problems)}")
        return config

    def problems(self) -> list[str]:
        """What would make this architecture fail to build, or build absurdly large: sizes
        that are not integers in :data:`SAM_BOUNDS`, heads that do not divide their widths,
        attention blocks past the depth, more than :data:`MAX_SAM_PARAMETERS` parameters."""
        out = [
            f"{name} must be an integer from {low} to {high}, got {getattr(self, name)!r}"
            for name, (low, high) in SAM_BOUNDS.items()
            if not _whole(getattr(self, name)) or not low <= getattr(self, name) <= high
        ]
        if out:
            return out
        if not all(_whole(i) and 0 <= i < self.encoder_depth for i in self.encoder_global_attn_indexes):
            out.append("encoder_global_attn_indexes must be block numbers below encoder_depth")
        if self.encoder_embed_dim % self.encoder_num_heads:
            out.append("encoder_num_heads must divide encoder_embed_dim")
        if self.prompt_embed_dim % (2 * self.decoder_num_heads):
            out.append("2 x decoder_num_heads must divide prompt_embed_dim")
        if self.img_size % self.patch_size:
            out.append("patch_size must divide img_size")
        if self.mask_in_chans % 4:
            out.append("mask_in_chans must be a multiple of 4")
        if self.parameters() > MAX_SAM_PARAMETERS:
            out.append(
                f"the model would have ~{self.parameters() / 1e9:.1f}e9 parameters, over "
                f"{MAX_SAM_PARAMETERS / 1e9:g}e9 (vit_h has 0.64e9)"
            )
        return out

    def parameters(self) -> int:
        """Roughly how many parameters the model has (the encoder's blocks dominate)."""
        d, grid, pe = self.encoder_embed_dim, self.img_size // self.patch_size, self.prompt_embed_dim
        encoder = self.encoder_depth * 12 * d * d + grid * grid * d + 3 * self.patch_size**2 * d
        decoder = self.decoder_depth * (12 * pe * pe + 2 * pe * self.decoder_mlp_dim)
        return encoder + decoder + d * pe + 9 * pe * pe

    def digest(self) -> str:
        """Short stable id of the architecture (part of cache fingerprints)."""
        text = repr(sorted(asdict(self).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# Bounds of each size of a SamConfig: generous around the official models (vit_h: 1280 wide,
# 32 deep, 16 heads, img_size 1024), tight enough that a typo cannot allocate gigabytes.
SAM_BOUNDS: dict[str, tuple[int, int]] = {
    "encoder_embed_dim": (2, 4096),
    "encoder_depth": (1, 64),
    "encoder_num_heads": (1, 64),
    "img_size": (16, 4096),
    "patch_size": (1, 64),
    "window_size": (1, 256),
    "prompt_embed_dim": (2, 2048),
    "mask_in_chans": (4, 1024),
    "decoder_depth": (1, 32),
    "decoder_mlp_dim": (1, 32768),
    "decoder_num_heads": (1, 64),
    "iou_head_depth": (1, 32),
    "iou_head_hidden_dim": (1, 8192),
}
MAX_SAM_PARAMETERS = 1_500_000_000


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


SAM_CONFIGS: dict[str, SamConfig] = {
    "vit_b": SamConfig(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamConfig(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamConfig(1280, 32, 16, (7, 15, 23, 31)),
}

TINY_SAM_CONFIG = SamConfig(
    encoder_embed_dim=32,
    encoder_depth=2,
    encoder_num_heads=2,
    encoder_global_attn_indexes=(1,),
    img_size=128,
    patch_size=16,
    window_size=4,
    prompt_embed_dim=32,
    mask_in_chans=4,
    decoder_depth=1,
    decoder_mlp_dim=64,
    decoder_num_heads=2,
    iou_head_depth=2,
    iou_head_hidden_dim=32,
)
"""A ~0.1M-parameter SAM from the real classes: 128 px input, 8x8 embedding, 32x32 masks."""


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


def coerce_config(value: Any) -> SamConfig | None:
    """``settings.options["sam_propose"]["config"]``: a SamConfig, a dict, ``"tiny"`` or a
    registry type name (``"vit_b"``), into a :class:`SamConfig` (None when unset)."""
    if value is None:
        return None
    if isinstance(value, SamConfig):
        return value
    if isinstance(value, str):
        if value == "tiny":
            return TINY_SAM_CONFIG
        if value in SAM_CONFIGS:
            return SAM_CONFIGS[value]
        raise ConfigError(f"unknown SAM config {value!r}; use 'tiny', {', '.join(SAM_CONFIGS)} or a dict")
    if isinstance(value, dict):
        return SamConfig.from_dict(value)
    raise ConfigError(f"SAM config must be a dict or a name, got {type(value).__name__}")


def _checked_option(value: Any) -> Any:
    """The ``config`` option as given, once it makes a valid :class:`SamConfig` (pydantic
    reports the ``ValueError`` in the option's one-line message)."""
    try:
        coerce_config(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


# sam_propose's ``config`` option: checked in full when the run is set up, before any build.
SamConfigOption = Annotated[Any, AfterValidator(_checked_option)]
DEFAULT_EMBEDDING_CACHE = 8


class SamProposeOptions(StrictParams):
    """Settings of ``sam_propose`` (``--tool-option sam_propose.KEY=VALUE``); they live here,
    with the SAM configs they check, and ``tools.sam_propose`` uses them."""

    config: SamConfigOption = Field(
        default=None,
        description='a SamConfig as a dict, or "tiny": build that architecture instead of sam_model_type',
    )
    embedding_cache: int = Field(default=DEFAULT_EMBEDDING_CACHE, ge=1, description="image embeddings kept")
