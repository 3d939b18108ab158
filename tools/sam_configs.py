"""SAM architectures as configs, and ``sam_propose``'s options that name them: no torch, no
segment-anything (the tool's declaration, :mod:`tools.sam_declaration`, checks its options with
them without importing model code); :mod:`tools.sam_loading` builds the models."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from tools.errors import ConfigError
from tools.params import StrictParams


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
