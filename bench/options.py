"""Command-line options shared by ``refseg segment`` and ``refseg bench``: one meaning everywhere.

:func:`add_episode_options` declares them; :func:`build_runtime` turns parsed arguments
into the tool settings, episode configuration, registry, cache and VLM client.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.controllers import CONTROLLERS
from agent.episode import EpisodeConfig
from cache.store import ENV_VAR as CACHE_ENV_VAR
from cache.store import ToolCache, default_cache_dir
from tools.base import ToolSettings, default_checkpoint_dir
from tools.errors import ConfigError
from tools.registry import ToolRegistry

TOOLSETS = {
    # name: (proposer, ranker)
    "models": ("sam_propose", "clip_rank"),
    "offline": ("region_propose", "attribute_rank"),
}


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        return "cpu"


def add_episode_options(parser: argparse.ArgumentParser) -> None:
    """Model, controller, guard, VLM and cache options."""
    m = parser.add_argument_group("models")
    m.add_argument(
        "--weights",
        choices=["pretrained", "random"],
        default="pretrained",
        help="'random': same architectures, random weights (offline smoke runs and timing only)",
    )
    m.add_argument(
        "--toolset",
        choices=sorted(TOOLSETS),
        default="models",
        help="'models': SAM + CLIP; 'offline': classical regions + attribute ranker (no weights)",
    )
    m.add_argument("--proposer", help="propose tool name (overrides --toolset)")
    m.add_argument("--ranker", help="rank tool name (overrides --toolset)")
    m.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    m.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="weight files folder (default: $REFSEG_CHECKPOINT_DIR or ./checkpoints)",
    )
    m.add_argument("--sam-model", default="vit_b", help="SAM type: vit_b, vit_l or vit_h")
    m.add_argument("--sam-checkpoint", type=Path, default=None, help="explicit SAM checkpoint file")
    m.add_argument("--points-per-side", type=int, default=None, help="SAM point grid size")
    m.add_argument("--clip-model", default="ViT-B-16", help="open_clip model name")
    m.add_argument("--clip-pretrained", default="openai", help="open_clip pretrained tag or a local file")
    m.add_argument(
        "--clip-mode",
        choices=["crop", "blur", "grey", "outline"],
        default=None,
        help="visual prompt for CLIP (default: crop)",
    )
    m.add_argument("--max-side", type=int, default=2048, help="longest image side the models see")
    m.add_argument("--seed", type=int, default=0, help="seed of random weights")

    c = parser.add_argument_group("controller")
    c.add_argument("--controller", choices=CONTROLLERS, default="loop")
    c.add_argument(
        "--refiner",
        choices=["rules", "vlm"],
        default="rules",
        help="how the loop rewrites the query ('rules' needs no VLM)",
    )
    c.add_argument("--max-iter", type=int, default=3, help="most refine-and-rerank rounds")
    c.add_argument("--tau-conf", type=float, default=0.5, help="guard: top-1 probability needed to stop")
    c.add_argument("--tau-gap", type=float, default=0.2, help="guard: top-1 minus top-2 needed to stop")
    c.add_argument(
        "--pick",
        choices=["best", "last"],
        default="best",
        help="final ranking: most confident seen, or the last",
    )
    c.add_argument("--max-turns", type=int, default=8, help="agent: most VLM turns per episode")
    c.add_argument(
        "--agent-warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="agent: propose and rank before the first VLM turn (a sure ranking needs no VLM)",
    )
    c.add_argument("--budget-tokens", type=int, default=60_000, help="agent: tokens per episode")
    c.add_argument("--budget-usd", type=float, default=0.05, help="agent: USD per episode")

    v = parser.add_argument_group("VLM (OpenAI-compatible)")
    v.add_argument(
        "--vlm-base-url", default=None, help="endpoint (default: SiliconFlow); a local server needs no key"
    )
    v.add_argument("--vlm-model", default=None, help="default: Qwen/Qwen2.5-VL-72B-Instruct")
    v.add_argument("--vlm-timeout", type=float, default=None, help="seconds per VLM call")
    v.add_argument("--vlm-max-retries", type=int, default=None, help="retries on 429/5xx/timeouts")

    k = parser.add_argument_group("cache")
    k.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"tool-output cache (default: ${CACHE_ENV_VAR} or {default_cache_dir()})",
    )
    k.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")


@dataclass
class Runtime:
    settings: ToolSettings
    config: EpisodeConfig
    registry: ToolRegistry
    cache: ToolCache | None
    vlm: Any | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.registry.close()
        if self.cache is not None:
            self.cache.close()


def needs_vlm(args: argparse.Namespace) -> bool:
    return args.controller == "agent" or (args.controller == "loop" and args.refiner == "vlm")


def build_vlm(args: argparse.Namespace) -> Any:
    """The VLM client, or a one-line ConfigError saying what is needed."""
    from agent.tracing import log_vlm_call, register_secret
    from agent.vlm import VLMClient, VLMConfig

    overrides = {
        k: v
        for k, v in {"timeout_s": args.vlm_timeout, "max_retries": args.vlm_max_retries}.items()
        if v is not None
    }
    config = VLMConfig.from_env(base_url=args.vlm_base_url, model=args.vlm_model, **overrides)
    reason = config.vlm_unavailable_reason()
    if reason:
        raise ConfigError(f"--controller {args.controller} needs a VLM: {reason}")
    register_secret(config.api_key)
    return VLMClient(config, on_call=log_vlm_call)


def build_runtime(args: argparse.Namespace) -> Runtime:
    """Settings, episode config, registry, cache and VLM client from parsed options."""
    proposer, ranker = TOOLSETS[args.toolset]
    vlm = build_vlm(args) if needs_vlm(args) else None
    options: dict[str, dict[str, Any]] = {"refine_query": {"refiner": args.refiner}}
    settings = ToolSettings(
        weights=args.weights,
        device=args.device or _default_device(),
        checkpoint_dir=args.checkpoint_dir or default_checkpoint_dir(),
        sam_model_type=args.sam_model,
        sam_checkpoint=args.sam_checkpoint,
        clip_model=args.clip_model,
        clip_pretrained=args.clip_pretrained,
        seed=args.seed,
        max_side=args.max_side,
        vlm=vlm,
        options=options,
    )
    propose_args: dict[str, Any] = {}
    rank_args: dict[str, Any] = {}
    proposer = args.proposer or proposer
    ranker = args.ranker or ranker
    if args.points_per_side is not None:
        if proposer != "sam_propose":
            raise ConfigError("--points-per-side applies to sam_propose only")
        propose_args["points_per_side"] = args.points_per_side
    notes: list[str] = []
    if args.weights == "random" and proposer == "sam_propose":
        # Random weights predict meaningless IoU/stability and near-identical masks: SAM's
        # filters and NMS would leave one candidate or none. Keep up to max_proposals so a
        # smoke run ranks a realistic number of candidates.
        propose_args.setdefault("pred_iou_thresh", 0.0)
        propose_args.setdefault("stability_score_thresh", 0.0)
        propose_args.setdefault("box_nms_thresh", 1.0)
        notes.append("random weights: SAM quality thresholds and NMS disabled")
    if args.clip_mode is not None:
        if ranker != "clip_rank":
            raise ConfigError("--clip-mode applies to clip_rank only")
        rank_args["mode"] = args.clip_mode
    config = EpisodeConfig(
        controller=args.controller,
        proposer=proposer,
        ranker=ranker,
        max_iter=args.max_iter,
        tau_conf=args.tau_conf,
        tau_gap=args.tau_gap,
        pick=args.pick,
        propose_args=propose_args,
        rank_args=rank_args,
        max_turns=args.max_turns,
        agent_warm_start=args.agent_warm_start,
        budget_tokens=args.budget_tokens,
        budget_usd=args.budget_usd,
    )
    registry = ToolRegistry(settings)
    for name in (proposer, ranker, config.refiner):
        registry.spec(name)
    cache = None if args.no_cache else ToolCache(args.cache_dir or os.environ.get(CACHE_ENV_VAR) or None)
    return Runtime(settings, config, registry, cache, vlm, notes)


def public_url(url: str) -> str:
    """The URL without credentials or query (``https://user:key@host/v1?key=..`` -> ``https://host/v1``)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe_config(rt: Runtime) -> dict[str, Any]:
    """The run's configuration as JSON (no secrets: the VLM is described by URL and model)."""
    s = rt.settings
    vlm = None
    if rt.vlm is not None:
        base_url = public_url(str(getattr(rt.vlm, "base_url", "")))
        vlm = {"base_url": base_url, "model": getattr(rt.vlm, "model", "")}
    return {
        "settings": {
            "weights": s.weights,
            "device": s.device,
            "checkpoint_dir": str(s.checkpoint_dir),
            "sam_model_type": s.sam_model_type,
            "sam_checkpoint": str(s.sam_checkpoint) if s.sam_checkpoint else None,
            "clip_model": s.clip_model,
            "clip_pretrained": s.clip_pretrained,
            "seed": s.seed,
            "max_side": s.max_side,
            "options": s.options,
        },
        "episode": {k: v for k, v in rt.config.__dict__.items()},
        "vlm": vlm,
        "cache_dir": str(rt.cache.directory) if rt.cache is not None else None,
    }
