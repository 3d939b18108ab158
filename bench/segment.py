"""Segmenting images: one or more images and an expression to masks, overlays and traces.

One image writes ``OUT/mask.png``, ``OUT/overlay.png``, ``OUT/result.json`` and
``OUT/trace.jsonl``. Several images (or a folder) write one sub-folder per image; with
``compare`` (the default for several images) each image also runs one-shot, and
``side_by_side.png`` shows one-shot next to the chosen controller (the real-images
application of the original project).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from agent.episode import EpisodeResult, StopReason
from agent.session import Session
from agent.tracing import Tracer
from bench.evaluate import rank_steps_json
from bench.options import SegmentOptions
from bench.runtime import Runtime, build_runtime, describe_config
from tools.errors import InputError, VLMError
from tools.images import clean_expression, load_image
from tools.render import overlay, save_mask_png, side_by_side
from tools.types import Image

RANDOM_WEIGHTS_MARK = "RANDOM WEIGHTS (--weights random): this mask means nothing"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


@dataclass(frozen=True)
class SegmentedImage:
    """One episode's outcome: which image, which controller, the result and its folder."""

    path: Path
    result: EpisodeResult
    folder: Path


@dataclass
class SegmentReport:
    """Everything a ``segment`` invocation did."""

    done: list[SegmentedImage] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    random_weights: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def fell_back(self) -> list[SegmentedImage]:
        """Episodes that fell back to their best candidate because the VLM (or their deadline)
        failed them: their masks are not what the controller would have chosen."""
        return [s for s in self.done if s.result.stop_reason == StopReason.FALLBACK]

    @property
    def exit_code(self) -> int:
        """1 when an image could not be read or an episode failed; else 5 (as ``bench run``
        over ``--max-fallback-rate``) when an episode fell back; else 0."""
        if self.skipped or any(not s.result.ok for s in self.done):
            return 1
        return VLMError.exit_code if self.fell_back else 0


def collect_images(paths: Sequence[Path]) -> list[Path]:
    """Image files, folders expanded (sorted).

    Raises:
        InputError: a path does not exist, or a folder holds no image.
    """
    images: list[Path] = []
    for path in paths:
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


def candidate_labels(result: EpisodeResult) -> list[str]:
    """The overlay's label of each top candidate: ``#<proposal index> p=<probability>``, the
    number the console (``chosen #12 of 48``), result.json, the trace and the viewer use."""
    return [f"#{cand['index']} p={cand['prob']:.2f}" for cand in result.candidates]


def write_result(
    out: Path, image: Image, result: EpisodeResult, rt: Runtime, source: Path | None = None
) -> None:
    """mask.png, overlay.png and result.json for one episode (``source``: the image file,
    named in result.json so the viewer can draw the ranking steps' candidates over it)."""
    out.mkdir(parents=True, exist_ok=True)
    save_mask_png(result.mask, image.size, out / "mask.png")
    candidates = list(zip(result.candidate_masks, candidate_labels(result), strict=True))
    title = f"{result.controller}: {result.queries[-1] if result.queries else result.expression}"
    warning = RANDOM_WEIGHTS_MARK if rt.settings.weights == "random" else ""  # on every copy
    overlay(image.pixels, result.mask, candidates, title, warning).save(out / "overlay.png")
    payload = {
        **result.to_json(),
        "image": str(source.resolve()) if source is not None else None,
        "rank_steps": rank_steps_json(result.rank_steps),
        "config": describe_config(rt),
    }
    (out / "result.json").write_text(json.dumps(payload, indent=2))


Stage = Callable[[str, bool], None]  # (what runs now, keep a line saying how long it took)


def segment_images(
    options: SegmentOptions,
    *,
    on_result: Callable[[SegmentedImage], None] | None = None,
    on_stage: Stage | None = None,
) -> SegmentReport:
    """Segment every image with the configured controller (and one-shot beside it).

    The tools are built and their models loaded before the first image (the one-time
    start-up is not charged to the first episode).

    Args:
        options: images, expression, output folder, tools and controller.
        on_result: called after each episode (the CLI prints a line).
        on_stage: called when a stage starts: the start-up, then each episode (the CLI
            shows it on a terminal with its seconds so far).

    Raises:
        InputError: a bad path, an empty expression, or a single image that cannot be read.
    """
    images = collect_images(options.images)
    expression = clean_expression(options.expression)  # refuse an empty one before loading models
    compare = options.compare if options.compare is not None else len(images) > 1
    rt = build_runtime(options.episode)
    try:
        hooks = (on_result, on_stage or (lambda _text, _keep: None))
        work = functools.partial(_segment_all, options.out, rt, images, expression, compare, hooks)
        return anyio.run(rt.closing_vlm, work)
    finally:
        rt.close()


async def _segment_all(
    out: Path,
    rt: Runtime,
    images: list[Path],
    expression: str,
    compare: bool,
    hooks: tuple[Callable[[SegmentedImage], None] | None, Stage],
) -> SegmentReport:
    on_result, on_stage = hooks
    out.mkdir(parents=True, exist_ok=True)
    report = SegmentReport(
        random_weights=rt.settings.weights == "random",
        # Every note, the degraded modes of random weights included (thresholds set to 0,
        # NMS off); the CLI prints the general random-weights warning itself.
        notes=list(rt.notes),
    )
    with Tracer(out / "trace.jsonl", run_id=f"segment-{out.name}") as tracer:
        controllers = [rt.config.controller]
        if compare and rt.config.controller != "oneshot":
            controllers.insert(0, "oneshot")
        sessions = {
            name: Session(rt.registry, dataclasses.replace(rt.config, controller=name), rt.cache, tracer)
            for name in controllers
        }
        on_stage(f"building tools and loading models ({rt.config.proposer}, {rt.config.ranker})", True)
        for session in sessions.values():  # off the event loop, not in the first episode
            await session.setup()
        for path in images:
            try:
                image = load_image(path)
            except InputError as exc:
                if len(images) == 1:
                    raise
                report.skipped.append((path, str(exc)))
                continue
            panels = []
            for name, session in sessions.items():
                target = out if len(images) == 1 and len(sessions) == 1 else out / path.stem
                if len(sessions) > 1:
                    target = target / name
                on_stage(f"{path.name} [{name}]", False)
                result = await session.run(image, expression, f"{path.stem}:{name}")
                write_result(target, image, result, rt, path)
                panels.append(target / "overlay.png")
                done = SegmentedImage(path, result, target)
                report.done.append(done)
                if on_result is not None:
                    on_result(done)
            if len(panels) > 1:
                from PIL import Image as PILImage

                side_by_side([PILImage.open(p) for p in panels]).save(
                    panels[0].parent.parent / "side_by_side.png"
                )
        if tracer.error is not None:
            report.notes.append(tracer.error)
    return report
