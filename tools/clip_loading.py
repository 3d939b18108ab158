"""Build open_clip models (model, preprocessing numbers, tokenizer) without surprise downloads.

``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b88k``, ...) or a path to a
local checkpoint file. A tag whose file is already in the Hugging Face cache loads with no
network access at all (the cached path is handed to open_clip as a file). A tag that is not
cached is fetched through open_clip only after a quick reachability probe, so a machine
without internet fails in a second with a :class:`CheckpointError` that says what to do,
instead of sitting through huggingface_hub's retries (about 45 s per missing file).

``weights="random"`` builds the same architecture with seeded random weights.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from checkpoints.registry import cached_sha256
from tools.errors import CheckpointError, ConfigError, DownloadError

TINY_CLIP_NAME = "refseg-tiny-clip"
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz", ".ckpt")
_PROBE_TIMEOUT_S = 3.0
_tiny_lock = threading.Lock()


@dataclass
class ClipBundle:
    """A ready open_clip model and what is needed to feed it.

    Attributes:
        model: the open_clip model in eval mode on its device.
        tokenizer: callable ``list[str] -> LongTensor (B, context_length)``.
        image_size: ``(H, W)`` the vision tower expects.
        mean: per-channel normalisation mean (0..1 scale).
        std: per-channel normalisation std.
        model_name: open_clip model name.
        pretrained: the tag or file the weights came from ("" for random weights).
        checkpoint_path: the local weight file that was loaded, if any.
    """

    model: Any  # open_clip CLIP / CustomTextCLIP (encode_image, encode_text)
    tokenizer: Callable[..., torch.Tensor]
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    model_name: str
    pretrained: str
    checkpoint_path: str | None = None


def register_tiny_clip() -> str:
    """Register a tiny CLIP config with open_clip (idempotent) and return its model name.

    The model is a real open_clip ``CLIP`` (2-layer ViT at 64 px, 1-layer text tower, 32-d
    embeddings): tests and smoke runs use it with ``weights="random"`` or a saved file.
    """
    import open_clip

    with _tiny_lock:
        if TINY_CLIP_NAME in open_clip.list_models():
            return TINY_CLIP_NAME
        folder = Path(tempfile.gettempdir()) / f"refseg-open-clip-configs-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{TINY_CLIP_NAME}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(TINY_CLIP_CONFIG))
        tmp.replace(path)  # atomic: a parallel test process never reads half a file
        open_clip.add_model_config(path)
    return TINY_CLIP_NAME


def _check_model_name(model: str) -> None:
    import open_clip

    if model.startswith(("hf-hub:", "local-dir:")):
        return
    if model == TINY_CLIP_NAME:  # known by name in any process (e.g. a Ray worker), not only
        register_tiny_clip()  # in the one that registered it
        return
    if model not in open_clip.list_models():
        raise ConfigError(
            f"unknown open_clip model {model!r}; pick one of open_clip.list_models(), "
            "e.g. ViT-B-16 or ViT-B-32"
        )


def looks_like_path(pretrained: str) -> bool:
    """True when ``pretrained`` names a file rather than an open_clip tag."""
    return (
        os.path.isfile(pretrained)
        or os.sep in pretrained
        or "/" in pretrained
        or pretrained.lower().endswith(_FILE_SUFFIXES)
    )


def _tag_cfg(model: str, tag: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ConfigError(
            f"{tag!r} is neither a file nor a pretrained tag of {model}; "
            f"known tags: {', '.join(tags) if tags else 'none (pass a checkpoint file)'}"
        )
    return dict(cfg)


def _hub_files(cfg: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(repo id, candidate file names) of a tag hosted on the HF hub, safetensors first."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    if not filename:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    names = [filename]
    if filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    return repo_id, names


def cached_checkpoint(model: str, tag: str, cache_dir: str | None = None) -> str | None:
    """Path of the tag's weight file if it is already cached locally (no network), else None."""
    cfg = _tag_cfg(model, tag)
    if "file" in cfg:
        return str(cfg["file"]) if os.path.isfile(cfg["file"]) else None
    hub = _hub_files(cfg)
    if hub is not None:
        from huggingface_hub import try_to_load_from_cache

        repo_id, names = hub
        for name in names:
            hit = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
        return None
    url = cfg.get("url", "")
    if url:  # open_clip's URL cache: ~/.cache/clip/<basename>
        target = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
        return str(target) if target.is_file() else None
    return None


def clip_weights(model: str, tag: str, cache_dir: str | None = None) -> tuple[str, str | None]:
    """Where open_clip fetches ``model``/``tag`` from (``hf-hub:REPO`` or a URL) and the local
    file when it is cached (``None``: not downloaded yet); no network.

    Raises:
        ConfigError: unknown model or tag.
    """
    _check_model_name(model)
    cfg = _tag_cfg(model, tag)
    hub = _hub_files(cfg)
    source = f"hf-hub:{hub[0]}" if hub is not None else str(cfg.get("url") or cfg.get("file") or "?")
    return source, cached_checkpoint(model, tag, cache_dir)


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return flag or bool(constants.HF_HUB_OFFLINE)


def _probe(cfg: dict[str, Any]) -> str | None:
    """None when the weights' host answers a TCP connect quickly, else why not."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy the host is not directly reachable; let the client try
    if cfg.get("hf_hub"):
        from huggingface_hub import constants

        url = constants.ENDPOINT
    else:
        url = cfg.get("url", "")
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc})"


def _what_to_do(model: str, tag: str) -> str:
    return (
        f"run `refseg weights download clip --model {model} --pretrained {tag}` on a machine "
        "with internet (then copy the Hugging Face cache), pass a local checkpoint file "
        "instead of the tag, or use --weights random"
    )


def prepare_clip(model: str, pretrained: str, cache_dir: str | None = None) -> str:
    """Make sure the weights of ``model``/``pretrained`` are on disk; return the local path.

    Downloads through open_clip into its usual cache (the Hugging Face hub cache, or
    ``~/.cache/clip`` for URL-hosted tags) unless the file is already there.

    Raises:
        ConfigError: unknown model or tag.
        CheckpointError: ``pretrained`` looks like a path but the file does not exist.
        DownloadError: the file is not cached and cannot be fetched (offline, unreachable).
    """
    _check_model_name(model)
    if looks_like_path(pretrained):
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"CLIP checkpoint {pretrained}: no such file")
        return pretrained
    cfg = _tag_cfg(model, pretrained)
    hit = cached_checkpoint(model, pretrained, cache_dir)
    if hit is not None:
        return hit
    if _offline():
        raise DownloadError(
            f"CLIP weights {model}:{pretrained} are not cached and HF_HUB_OFFLINE is set; "
            "unset it on a machine with internet and run the download again"
        )
    why = _probe(cfg)
    if why is not None:
        raise DownloadError(f"cannot download CLIP weights {model}:{pretrained}: {why}")
    import open_clip

    try:
        path = open_clip.download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as exc:
        raise DownloadError(
            f"downloading CLIP weights {model}:{pretrained} failed: {str(exc).splitlines()[0][:300]}"
        ) from exc
    if not path or not os.path.isfile(path):
        raise DownloadError(f"open_clip returned no file for {model}:{pretrained}")
    return str(path)


def resolve_checkpoint(model: str, pretrained: str, cache_dir: str | None = None) -> str:
    """Local weight file for ``pretrained`` (a file, or a cached or downloadable tag).

    Raises:
        CheckpointError: missing file, or a tag that is neither cached nor downloadable;
            the message says what to do.
    """
    try:
        return prepare_clip(model, pretrained, cache_dir)
    except DownloadError as exc:
        raise CheckpointError(f"{exc}; {_what_to_do(model, pretrained)}") from None


def _preprocess_numbers(model: torch.nn.Module) -> tuple[tuple[int, int], tuple, tuple]:
    from open_clip.model import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    mean = tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    return hw, mean, std


def load_clip(
    model: str = "ViT-B-16",
    pretrained: str = "openai",
    *,
    weights: str = "pretrained",
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | None = None,
) -> ClipBundle:
    """Build an open_clip model, its preprocessing numbers and tokenizer.

    Args:
        model: open_clip model name (``ViT-B-16``, ``ViT-B-32``, ...).
        pretrained: open_clip tag or path to a checkpoint file (ignored for random weights).
        weights: ``pretrained`` or ``random`` (same architecture, ``torch.manual_seed(seed)``).
        seed: seed of random weights.
        device: torch device string.
        cache_dir: download cache (default: open_clip's, i.e. the Hugging Face cache).

    A checkpoint *file* of OpenAI weights needs the ``-quickgelu`` model name
    (``ViT-B-16-quickgelu``); with a tag this is handled here.

    Raises:
        ConfigError: unknown model, tag or weights mode.
        CheckpointError: weights missing, not downloadable, corrupt or of another model.
    """
    import open_clip

    if weights not in ("pretrained", "random"):
        raise ConfigError(f"unknown weights mode {weights!r}; use pretrained or random")
    _check_model_name(model)
    kwargs: dict[str, Any] = {"device": device}
    checkpoint: str | None = None
    if weights == "random":
        with torch.random.fork_rng(devices=[]):  # seed the init without disturbing callers' RNG
            torch.manual_seed(seed)
            net = open_clip.create_model(model, pretrained=None, **kwargs)
        pretrained = ""
    else:
        checkpoint = resolve_checkpoint(model, pretrained, cache_dir)
        if not looks_like_path(pretrained):
            cfg = _tag_cfg(model, pretrained)
            # open_clip only warns on a QuickGELU mismatch (e.g. ViT-B-16 + openai); the
            # weights are only right with the activation they were trained with.
            kwargs["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
            pp = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
            kwargs["force_preprocess_cfg"] = pp
        try:
            net = open_clip.create_model(model, pretrained=checkpoint, **kwargs)
        except Exception as exc:
            first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise CheckpointError(
                f"CLIP checkpoint {checkpoint} does not load into {model}: {first}; "
                "check --clip-model matches the file, or re-download it"
            ) from exc
    net.eval()
    try:
        tokenizer = open_clip.get_tokenizer(model)
    except Exception as exc:
        raise CheckpointError(f"cannot build the tokenizer of {model}: {exc}") from exc
    size, mean, std = _preprocess_numbers(net)
    return ClipBundle(
        model=net,
        tokenizer=tokenizer,
        image_size=size,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        model_name=model,
        pretrained=pretrained,
        checkpoint_path=checkpoint,
    )


def clip_fingerprint(model: str, pretrained: str, weights: str = "pretrained", seed: int = 0) -> str:
    """Identity of CLIP weights for cache keys.

    ``random:{model}:seed{seed}`` for random weights, ``{model}:sha256:{hash}`` for a
    checkpoint file (the model name counts too: one file loads into ``ViT-B-16`` and
    ``ViT-B-16-quickgelu`` with different outputs), ``{model}:{tag}`` for a tag (tags name
    immutable published weights). File hashes are cached per process.
    """
    if weights == "random":
        return f"random:{model}:seed{seed}"
    if looks_like_path(pretrained):
        if not os.path.isfile(pretrained):
            raise CheckpointError(f"CLIP checkpoint {pretrained}: no such file")
        return f"{model}:sha256:{cached_sha256(pretrained)}"
    return f"{model}:{pretrained}"
