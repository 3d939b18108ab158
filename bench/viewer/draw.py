"""The PNG endpoints' work: find what a request names (by example id and numbers) and draw it.

Nothing here takes a path from a request. The one file read by name, an image a VLM call
recorded it was shown, is named by the run's own trace record, and only inside the
``vlm_images/`` folder beside that trace.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image as PILImage

from bench.viewer.images import (
    GT_COLOUR,
    PRED_COLOUR,
    DatasetImages,
    candidate_png,
    canvas,
    layer_png,
    mask_of,
    png_bytes,
)
from bench.viewer.runs import RunFolder
from bench.viewer.timeline import image_parts

LAYERS = ("image", "gt", "pred")
VLM_IMAGE_DIR = "vlm_images"
_VLM_FILE = re.compile(r"^vlm_images/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.(png|jpe?g|webp)$")
_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class Drawings:
    """Draws the pictures of the example page from the runs' records and data sets."""

    def __init__(self, images: DatasetImages):
        self.images = images

    def _frame(
        self, run: RunFolder, record: dict[str, Any]
    ) -> tuple[np.ndarray | None, tuple[int, int] | None]:
        """The image as the run saw it (or ``None``) and the frame size of its masks."""
        pixels, _ = self.images.pixels(run.data_spec(), record["example_id"])
        if pixels is not None:
            return pixels, (int(pixels.shape[0]), int(pixels.shape[1]))
        size = (record.get("mask") or {}).get("size") if isinstance(record.get("mask"), dict) else None
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            return None, (size[0], size[1])
        return None, None

    def layer(self, run: RunFolder, layer: str, example_id: str) -> bytes | None:
        """``image`` (grey when unavailable), ``gt`` or ``pred`` of an example, as PNG."""
        record = run.record(example_id)
        if layer not in LAYERS or record is None:
            return None
        pixels, size = self._frame(run, record)
        if size is None:
            return None
        if layer == "image":
            return png_bytes(PILImage.fromarray(pixels if pixels is not None else canvas(size)))
        if layer == "gt":
            gt, _ = self.images.ground_truth(run.data_spec(), example_id)
            return layer_png(gt, size, GT_COLOUR)
        return layer_png(mask_of(record.get("mask")), size, PRED_COLOUR)

    def candidate(self, run: RunFolder, example_id: str, step: int, cand: int) -> bytes | None:
        """Candidate ``cand`` of ranking step ``step`` (the record's ``rank_steps``), over the image."""
        record = run.record(example_id)
        steps = record.get("rank_steps") if record else None
        if record is None or not isinstance(steps, list) or not 0 <= step < len(steps):
            return None
        cands = steps[step].get("candidates") if isinstance(steps[step], dict) else None
        if not isinstance(cands, list) or not 0 <= cand < len(cands) or not isinstance(cands[cand], dict):
            return None
        mask = mask_of(cands[cand].get("mask"))
        pixels, size = self._frame(run, record)
        if size is None and mask is not None:
            size = (int(mask.shape[0]), int(mask.shape[1]))
        if size is None:
            return None
        prob = cands[cand].get("prob")
        label = f"#{cands[cand].get('index')}" + (f" p={prob:.3f}" if isinstance(prob, int | float) else "")
        return candidate_png(pixels if pixels is not None else canvas(size), mask, label)

    def vlm_image(self, run: RunFolder, example_id: str, event: int, part: int) -> tuple[bytes, str] | None:
        """Image ``part`` of event ``event`` of the example's last episode: ``(bytes, media type)``."""
        episodes = run.trace.episodes(example_id)
        events = episodes[-1].events if episodes else []
        if not 0 <= event < len(events) or events[event].get("event") != "vlm_call":
            return None
        parts = image_parts(events[event])
        if not 0 <= part < len(parts):
            return None
        name = parts[part].get("file")
        if not isinstance(name, str) or not _VLM_FILE.match(name):
            return None
        folder = (run.trace.path.parent / VLM_IMAGE_DIR).resolve()
        path = (run.trace.path.parent / name).resolve()
        if path.parent != folder or not path.is_file():
            return None
        return path.read_bytes(), _MEDIA[path.suffix.lower().lstrip(".")]
