"""``refseg segment``: one or more images and an expression to masks, overlays and traces.

One image writes ``OUT/mask.png``, ``OUT/overlay.png``, ``OUT/result.json`` and
``OUT/trace.jsonl``. Several images (or a folder) write one sub-folder per image; with
``--compare`` (the default for several images) each image also runs one-shot, and
``side_by_side.png`` shows one-shot next to the chosen controller (the real-images
application of the original project).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from agent.episode import EpisodeResult
from agent.session import Session
from agent.tracing import Tracer
from bench.options import Runtime, add_episode_options, build_runtime, describe_config
from tools.errors import InputError
from tools.images import clean_expression, load_image
from tools.render import overlay, save_mask_png, side_by_side
from tools.types import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def add_segment_parser(sub: Any) -> None:
    p = sub.add_parser(
        "segment",
        help="segment the object an expression refers to, in one or more images",
        description="refseg segment IMAGE [IMAGE ...] EXPRESSION  (IMAGE may be a folder)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGE... EXPRESSION",
        help="image files or folders, then the referring expression",
    )
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    p.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run one-shot and write side-by-side overlays (default: on for several images)",
    )
    add_episode_options(p)
    p.set_defaults(func=cmd_segment)


def collect_images(paths: list[str]) -> list[Path]:
    images: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            images.extend(found)
        elif path.exists():
            images.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return images


def split_inputs(inputs: list[str]) -> tuple[list[Path], str]:
    if len(inputs) < 2:
        raise InputError('give an image and an expression: refseg segment IMAGE "the black dog"')
    *paths, expression = inputs
    if Path(expression).exists() and Path(expression).suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"the last argument ({expression}) is a file; put the expression last, in quotes")
    return collect_images(paths), expression


def write_result(out: Path, image: Image, result: EpisodeResult, rt: Runtime) -> None:
    """mask.png, overlay.png and result.json for one episode."""
    out.mkdir(parents=True, exist_ok=True)
    save_mask_png(result.mask, image.size, out / "mask.png")
    candidates = [
        (mask, f"#{rank + 1} p={cand['prob']:.2f}")
        for rank, (cand, mask) in enumerate(zip(result.candidates, result.candidate_masks, strict=True))
    ]
    title = f"{result.controller}: {result.queries[-1] if result.queries else result.expression}"
    overlay(image.pixels, result.mask, candidates, title).save(out / "overlay.png")
    payload = {**result.to_json(), "config": describe_config(rt)}
    (out / "result.json").write_text(json.dumps(payload, indent=2))


def cmd_segment(args: argparse.Namespace) -> int:
    images, expression = split_inputs(args.inputs)
    expression = clean_expression(expression)  # refuse an empty one before loading models
    compare = args.compare if args.compare is not None else len(images) > 1
    rt = build_runtime(args)
    try:
        return anyio.run(_segment_all, args, rt, images, expression, compare)
    finally:
        rt.close()


async def _segment_all(
    args: argparse.Namespace, rt: Runtime, images: list[Path], expression: str, compare: bool
) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with Tracer(out / "trace.jsonl", run_id=f"segment-{out.name}") as tracer:
        controllers = [rt.config.controller]
        if compare and rt.config.controller != "oneshot":
            controllers.insert(0, "oneshot")
        sessions = {
            name: Session(rt.registry, dataclasses.replace(rt.config, controller=name), rt.cache, tracer)
            for name in controllers
        }
        for path in images:
            try:
                image = load_image(path)
            except InputError as exc:
                if len(images) == 1:
                    raise
                print(f"refseg: skipped {path}: {exc}", file=sys.stderr)
                failures += 1
                continue
            panels = []
            for name, session in sessions.items():
                target = out if len(images) == 1 and len(sessions) == 1 else out / path.stem
                if len(sessions) > 1:
                    target = target / name
                result = await session.run(image, expression, f"{path.stem}:{name}")
                write_result(target, image, result, rt)
                panels.append(target / "overlay.png")
                failures += 0 if result.ok else 1
                _print_summary(path, result, target)
            if len(panels) > 1:
                from PIL import Image as PILImage

                side_by_side([PILImage.open(p) for p in panels]).save(
                    panels[0].parent.parent / "side_by_side.png"
                )
    if rt.settings.weights == "random":
        print(
            "note: random weights: masks are meaningless; use this for smoke runs and timing only",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _print_summary(path: Path, result: EpisodeResult, target: Path) -> None:
    cost = result.costs.as_dict()
    timing = ", ".join(
        f"{k} {v['seconds']:.2f}s{' (cached)' if v['cache_hits'] else ''}" for k, v in cost.items()
    )
    status = (
        f"error: {result.error}"
        if result.error
        else (f"candidate {result.chosen} conf={result.conf:.3f} gap={result.gap:.3f}")
    )
    print(
        f"{path.name} [{result.controller}] {status}; stop={result.stop_reason} "
        f"iterations={result.iterations}; {timing} -> {target}"
    )
