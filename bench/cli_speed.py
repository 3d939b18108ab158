"""``refseg bench speed``: the command line of :mod:`bench.speed`.

:func:`add_speed_parser` declares the options; :func:`cmd_speed` turns them into one
:class:`bench.speed.SpeedOptions` and runs it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tools.errors import ConfigError
from tools.precision import PRECISIONS

EXAMPLES = """examples:
  refseg bench speed --weights random --points-per-side 16 --reference /work/photos/dog.jpg
  refseg bench speed --device cuda --precision bf16 --images 8 --encoder-batch 4 --json speed.json
  refseg bench speed --weights random --rank-floor --rank-candidates 16,64,256 photo.jpg
"""


def _counts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated counts like 16,64,256, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one count, e.g. 16,64,256")
    return values


def _names(text: str) -> tuple[str, ...]:
    # Checked by SpeedOptions.validate (the list of modes lives with the torch code).
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated names, e.g. crop,grey")
    return values


def _add_model_options(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("models")
    m.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    m.add_argument("--weights", choices=["pretrained", "random"], default="pretrained")
    m.add_argument("--checkpoint-dir", type=Path, default=None, help="SAM weight folder")
    m.add_argument("--sam-model", default="vit_b", help="vit_b, vit_l, vit_h (or tiny: test-sized)")
    m.add_argument("--sam-checkpoint", type=Path, default=None, help="explicit SAM checkpoint file")
    m.add_argument("--clip-model", default="ViT-B-16", help="open_clip model name (or tiny)")
    m.add_argument("--clip-pretrained", default="openai", help="open_clip tag or a local file")
    m.add_argument("--seed", type=int, default=0, help="seed of random weights")


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("speed")
    g.add_argument("--points-per-side", type=int, default=16, help="SAM point grid (default 16)")
    g.add_argument(
        "--points-per-batch",
        type=int,
        default=None,
        help="prompts per decoder batch (default: 256 CUDA, 64 CPU)",
    )
    g.add_argument(
        "--thresholds",
        choices=["default", "open"],
        default="default",
        help="SAM quality filters and NMS as shipped, or all off for the timed pass",
    )
    g.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="autocast precision of SAM and CLIP"
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the SAM and CLIP forwards")
    g.add_argument("--compile-backend", default="inductor", help="torch.compile backend (default inductor)")
    g.add_argument("--encoder-batch", type=int, default=1, help="images per SAM encoder forward (default 1)")
    g.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one untimed run first (default: on CUDA or with --compile)",
    )


def add_speed_parser(bench_subparsers: Any) -> None:
    """Add ``speed`` to the ``bench`` subparsers."""
    p = bench_subparsers.add_parser(
        "speed",
        help="time propose + rank per stage; optionally beside segment-anything's own generator",
        description="Time SAM proposals and CLIP ranking on photos or generated images, per stage.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="IMAGE", help="photos (default: generated scenes)")
    p.add_argument("--images", type=int, default=None, metavar="N", help="generated images if no photos (2)")
    p.add_argument("--max-side", type=int, default=2048, help="longest image side the models see")
    p.add_argument("--query", default="the dog", help="text the candidates are ranked against")
    p.add_argument("--clip-mode", default="crop", help="rank-stage visual prompt: crop, blur, grey, outline")
    _add_model_options(p)
    _add_speed_options(p)
    r = p.add_argument_group("comparisons")
    r.add_argument(
        "--reference", action="store_true", help="also run SamAutomaticMaskGenerator, side by side"
    )
    r.add_argument("--rank-floor", action="store_true", help="also time clip_rank against the compute floor")
    r.add_argument("--rank-candidates", type=_counts, default=(16, 64, 256), help="e.g. 16,64,256")
    r.add_argument("--rank-modes", type=_names, default=("crop",), help="e.g. crop,blur,grey,outline")
    r.add_argument("--rank-repeats", type=int, default=3, help="timed runs per rank-floor row (median)")
    r.add_argument("--no-rank-loop", action="store_true", help="skip the per-candidate loop (slow)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_speed)


def speed_options(args: argparse.Namespace) -> Any:
    """The parsed arguments as one :class:`bench.speed.SpeedOptions` (validated)."""
    from bench.speed import SpeedOptions

    if args.paths and args.images is not None:
        raise ConfigError("give photos or --images N (generated scenes), not both")
    defaults = SpeedOptions()
    return SpeedOptions(
        device=args.device,
        weights=args.weights,
        checkpoint_dir=args.checkpoint_dir,
        sam_model=args.sam_model,
        sam_checkpoint=args.sam_checkpoint,
        clip_model=args.clip_model,
        clip_pretrained=args.clip_pretrained,
        seed=args.seed,
        points_per_side=args.points_per_side,
        points_per_batch=args.points_per_batch,
        thresholds=args.thresholds,
        precision=args.precision,
        compile=args.compile,
        compile_backend=args.compile_backend,
        encoder_batch=args.encoder_batch,
        images=tuple(args.paths),
        generated_images=defaults.generated_images if args.images is None else args.images,
        max_side=args.max_side,
        query=args.query,
        clip_mode=args.clip_mode,
        reference=args.reference,
        rank_floor=args.rank_floor,
        rank_candidates=args.rank_candidates,
        rank_modes=args.rank_modes,
        rank_repeats=args.rank_repeats,
        rank_loop=not args.no_rank_loop,
        warmup=args.warmup,
        json_path=args.json,
    ).validate()


def cmd_speed(args: argparse.Namespace) -> int:
    from bench.speed import format_speed_table, run_speed

    options = speed_options(args)
    report = run_speed(options)
    print(format_speed_table(report))
    if options.json_path is not None:
        print(f"json: {options.json_path}")
    return 0
