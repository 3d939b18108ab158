"""SAM 3 weights: the official ``transformers`` file, a local safetensors file, or random.

- ``pretrained``: ``model.safetensors`` in ``transformers`` format (the state dict of
  ``Sam3VideoModel``, as ``facebook/sam3`` ships it; ``refseg weights download sam3``
  fetches it into ``CHECKPOINT_DIR/sam3/``), or any file given with ``--sam3-checkpoint``.
  The architecture is the ``config.json`` beside the file when there is one, else the
  ``--sam3-size`` one. The keys are checked before anything loads, so a file of another
  layout (the original ``sam3.pt`` keys, ``detector.*``) or size fails in one line.
- ``random``: the same architecture with seeded random weights (smoke runs and timing).

The fingerprint (part of every cache key) names the architecture and, for a file, its
sha256; the tools append the precision.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from checkpoints.registry import cached_sha256
from tools.base import ToolSettings
from tools.errors import CheckpointError, ConfigError
from tools.sam3.config import build_config, check_size, config_digest

if TYPE_CHECKING:
    from transformers import Sam3VideoConfig, Sam3VideoModel

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CHECKPOINT_FOLDER = "sam3"
DOWNLOAD_HINT = (
    "download it with `refseg weights download sam3` (facebook/sam3 is gated: accept its licence "
    "on https://huggingface.co/facebook/sam3 and pass --token or set HF_TOKEN), give a local file "
    "with --sam3-checkpoint PATH, or use --weights random for a smoke run"
)
ORIGINAL_PREFIXES = ("detector.", "tracker.")  # the keys of Meta's own sam3.pt


def require_transformers() -> None:
    """Raises ConfigError when the ``sam3`` extra is not installed."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the SAM 3 tools need transformers: pip install -e '.[sam3]' (or pip install 'transformers>=5')"
        ) from None


@dataclass(frozen=True)
class Sam3Source:
    """Where a SAM 3 comes from: random weights of an architecture, or a weights file.

    Attributes:
        weights: ``random`` or ``pretrained``.
        size: ``full`` or ``tiny`` (the architecture when no ``config.json`` says otherwise).
        overrides: ``Sam3VideoConfig`` keyword arguments merged into the size's config.
        path: the weights file (pretrained).
        seed: the seed of random weights.
    """

    weights: str
    size: str
    overrides: dict[str, Any] | None
    path: Path | None
    seed: int

    @classmethod
    def of(cls, settings: ToolSettings, size: str, checkpoint: str | None, overrides: Any) -> Sam3Source:
        check_size(size)
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(f"SAM 3 config overrides must be a dict, got {type(overrides).__name__}")
        if settings.weights == "random":
            return cls("random", size, overrides, None, settings.seed)
        if checkpoint is not None:
            path = Path(checkpoint)
        else:
            path = Path(settings.checkpoint_dir) / CHECKPOINT_FOLDER / WEIGHTS_FILE
        return cls("pretrained", size, overrides, path, settings.seed)

    def config(self) -> Sam3VideoConfig:
        """The architecture: ``config.json`` beside the weights file, else ``size`` + overrides.

        Raises:
            CheckpointError: a ``config.json`` that is not a SAM 3 (video) configuration.
        """
        side = self.path.parent / CONFIG_FILE if self.path is not None else None
        if side is None or not side.is_file() or self.overrides:
            return build_config(self.size, self.overrides)
        from transformers import Sam3VideoConfig

        try:
            data = json.loads(side.read_text())
            if data.get("model_type") != "sam3_video":
                raise ValueError(f"model_type {data.get('model_type')!r}, expected 'sam3_video'")
            return Sam3VideoConfig.from_dict(data)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(
                f"{side} is not a SAM 3 config ({exc}); remove it to use the --sam3-size architecture"
            ) from None

    def require_file(self) -> Path:
        """The weights file, checked to exist.

        Raises:
            CheckpointError: it is missing or not a file (the message says how to get it).
        """
        assert self.path is not None
        if not self.path.exists():
            raise CheckpointError(f"SAM 3 weights not found: {self.path}; {DOWNLOAD_HINT}")
        if not self.path.is_file():
            raise CheckpointError(
                f"SAM 3 weights {self.path} is not a file; point --sam3-checkpoint at the .safetensors file"
            )
        return self.path

    def fingerprint(self) -> str:
        """``random:sam3-<size>-<arch>:seed<n>`` or ``sam3-<arch>:sha256:<file hash>``."""
        digest = config_digest(self.config())
        if self.weights == "random":
            return f"random:sam3-{self.size}-{digest}:seed{self.seed}"
        return f"sam3-{digest}:sha256:{cached_sha256(self.require_file())}"


def build_random(config: Sam3VideoConfig, seed: int) -> Sam3VideoModel:
    """The architecture with seeded random weights (the global RNG state is left as it was)."""
    from transformers import Sam3VideoModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Sam3VideoModel(config)


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a safetensors file (read from its header only).

    Raises:
        CheckpointError: not a safetensors file.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(
            f"{path} ({path.stat().st_size:,} bytes) is not a readable safetensors file ({detail}); "
            + DOWNLOAD_HINT
        ) from None


def check_detector_shapes(path: Path, shapes: dict[str, tuple[int, ...]], config: Sam3VideoConfig) -> None:
    """The detector's tensors (named alike in every transformers layout) have the
    architecture's shapes: a file of another size fails here, before a model is built.

    Raises:
        CheckpointError: a shape differs.
    """
    from transformers import Sam3VideoModel

    with torch.device("meta"):  # shapes only, no memory
        expected = {k: tuple(v.shape) for k, v in Sam3VideoModel(config).state_dict().items()}
    wrong = [
        f"{k} {shape} vs {expected[k]}"
        for k, shape in shapes.items()
        if k.startswith("detector_model.") and k in expected and shape != expected[k]
    ]
    if wrong:
        raise CheckpointError(
            f"{path} does not match the SAM 3 architecture: {len(wrong)} tensors of another shape "
            f"(e.g. {wrong[0]}). Put the model's config.json beside it, or pass the --sam3-size it was "
            "made with"
        )


def check_layout(path: Path, keys: list[str]) -> None:
    """The file is not Meta's original layout (which ``transformers`` cannot load).

    Raises:
        CheckpointError: it is (the message says which file to use instead).
    """
    if keys and all(k.startswith(ORIGINAL_PREFIXES) for k in keys):
        raise CheckpointError(
            f"{path} has the keys of Meta's original sam3.pt (detector.*, tracker.*), not the "
            "transformers layout (detector_model.*, tracker_model.*); use facebook/sam3's "
            f"model.safetensors: {DOWNLOAD_HINT}"
        )


def _loading_problems(info: dict[str, Any]) -> list[str]:
    parts = []
    for what, key in (("missing", "missing_keys"), ("unexpected", "unexpected_keys")):
        names = sorted(info.get(key) or [])
        if names:
            parts.append(f"{len(names)} {what} tensors (e.g. {', '.join(names[:2])})")
    mismatched = list(info.get("mismatched_keys") or [])
    if mismatched:
        parts.append(f"{len(mismatched)} tensors of another shape (e.g. {mismatched[0]})")
    return parts


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_pretrained(path: Path, config: Sam3VideoConfig) -> Sam3VideoModel:
    """``Sam3VideoModel.from_pretrained`` on ``path`` (local files only, float32), every tensor
    accounted for: the loader ``transformers`` uses for ``facebook/sam3`` itself.

    Raises:
        CheckpointError: not safetensors, another layout, another size, or a partial file.
    """
    from transformers import Sam3VideoModel

    shapes = safetensors_shapes(path)
    check_layout(path, list(shapes))
    check_detector_shapes(path, shapes, config)
    with tempfile.TemporaryDirectory(prefix="refseg-sam3-") as scratch:
        folder = path.parent
        if path.name != WEIGHTS_FILE:  # from_pretrained reads a folder's model.safetensors
            folder = Path(scratch)
            (folder / WEIGHTS_FILE).symlink_to(path.resolve())
        try:
            with _quiet_transformers():  # its loading report would print every tensor; we say it in one line
                loaded: Any = Sam3VideoModel.from_pretrained(
                    str(folder),
                    config=config,
                    local_files_only=True,
                    output_loading_info=True,
                    ignore_mismatched_sizes=True,  # reported below, as an error
                    dtype=torch.float32,
                )
                model, info = loaded
        except Exception as exc:  # transformers raises many types on a bad file
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CheckpointError(f"{path} does not load as SAM 3 ({type(exc).__name__}: {detail})") from None
    problems = _loading_problems(info)
    if problems:
        raise CheckpointError(
            f"{path} does not match the SAM 3 architecture: {'; '.join(problems)}. Put the model's "
            "config.json beside it, or pass the --sam3-size it was made with"
        )
    return model


def load_sam3(source: Sam3Source, device: str) -> Sam3VideoModel:
    """Build the model ``source`` describes, on ``device``, in eval mode.

    Raises:
        CheckpointError: a missing, unreadable or mismatching weights file.
        ConfigError: a device torch cannot use.
    """
    require_transformers()
    config = source.config()
    if source.weights == "pretrained":
        model = load_pretrained(source.require_file(), config)
    else:
        model = build_random(config, source.seed)
    try:
        torch.nn.Module.to(model, torch.device(device))
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(f"cannot use device {device!r} for SAM 3: {exc}") from None
    return model.eval()
