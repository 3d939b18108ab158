"""The PNG endpoints' work: find what a request names (by example id and numbers) and draw it.

Nothing here takes a path from a request. The files read by name are named by the runs' own
records: an image a VLM call recorded it was shown (only inside the ``vlm_images/`` folder
beside that trace), and the input image a ``refseg segment`` result names. Nothing here
allocates for a picture over :data:`bench.viewer.images.MAX_DRAWN_PIXELS` (a record may claim
any size): :class:`bench.viewer.images.PictureTooLarge` is raised first, and files served as
they are must be under :data:`MAX_IMAGE_FILE_BYTES`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image as PILImage

from agent.trace_images import VLM_IMAGE_DIR
from bench.records import SampleRecord
from bench.records.sample import as_rank_step
from bench.viewer.images import (
    GT_COLOUR,
    PRED_COLOUR,
    DatasetImages,
    candidate_png,
    canvas,
    check_drawable,
    layer_png,
    mask_of,
    png_bytes,
)
from bench.viewer.runs import RunFolder
from bench.viewer.segment_folder import SegmentResult
from bench.viewer.timeline import image_parts
from bench.viewer.trace_index import TraceIndex

LAYERS = ("image", "gt", "pred")
_VLM_FILE = re.compile(r"^vlm_images/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.(png|jpe?g|webp)$")
MAX_IMAGE_FILE_BYTES = 64 * 2**20  # an image file served as it is (a VLM's picture, an overlay)
_MEDIA = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


class Drawings:
    """Draws the pictures of the example page from the runs' records and data sets."""

    def __init__(self, images: DatasetImages):
        self.images = images

    def _frame(
        self, run: RunFolder, record: SampleRecord
    ) -> tuple[np.ndarray | None, tuple[int, int] | None]:
        """The image as the run saw it (or ``None``) and the frame size of its masks.

        Raises:
            PictureTooLarge: the frame is over :data:`bench.viewer.images.MAX_DRAWN_PIXELS`.
        """
        pixels, _ = self.images.pixels(run.data_spec(), record.example_id)
        if pixels is not None:
            frame = (int(pixels.shape[0]), int(pixels.shape[1]))
            check_drawable(frame)
            return pixels, frame
        size = record.mask.size if record.mask is not None else None
        if size is not None and len(size) == 2 and all(v > 0 for v in size):
            check_drawable((size[0], size[1]))
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
        return layer_png(mask_of(record.mask), size, PRED_COLOUR)

    def candidate(self, run: RunFolder, example_id: str, step: int, cand: int) -> bytes | None:
        """Candidate ``cand`` of ranking step ``step`` (the record's ``rank_steps``), over the image."""
        record = run.record(example_id)
        if record is None:
            return None
        pixels, size = self._frame(run, record)
        return candidate_picture(run.rank_steps(example_id), step, cand, pixels, size)

    def segment_candidate(self, result: SegmentResult, step: int, cand: int) -> bytes | None:
        """The same for a ``refseg segment`` result, over the image its ``result.json`` names."""
        pixels = self.images.file_pixels(result.result.get("image"))
        size = (int(pixels.shape[0]), int(pixels.shape[1])) if pixels is not None else None
        return candidate_picture(result.result.get("rank_steps"), step, cand, pixels, size)


def candidate_picture(
    steps: Any, step: int, cand: int, pixels: np.ndarray | None, size: tuple[int, int] | None
) -> bytes | None:
    """A thumbnail of candidate ``cand`` of ``steps[step]`` over ``pixels`` (grey without them);
    ``None`` when there is no such candidate."""
    if not isinstance(steps, list) or not 0 <= step < len(steps):
        return None
    picked = as_rank_step(steps[step])
    if picked is None or not 0 <= cand < len(picked.candidates):
        return None
    chosen = picked.candidates[cand]
    mask = mask_of(chosen.mask)
    if size is not None:
        check_drawable(size)
    if size is None and mask is not None:
        size = (int(mask.shape[0]), int(mask.shape[1]))
    if size is None:
        return None
    label = f"#{chosen.index} p={chosen.prob:.3f}"
    return candidate_png(pixels if pixels is not None else canvas(size), mask, label)


def vlm_image(trace: TraceIndex | None, sample_id: str, event: int, part: int) -> tuple[bytes, str] | None:
    """Image ``part`` of event ``event`` of the sample's last episode: ``(bytes, media type)``.

    Only a name :mod:`agent.trace_images` gives, inside ``vlm_images/`` beside the trace.
    """
    episodes = trace.episodes(sample_id) if trace is not None else []
    events = episodes[-1].events if episodes else []
    if trace is None or not 0 <= event < len(events) or events[event].get("event") != "vlm_call":
        return None
    parts = image_parts(events[event])
    if not 0 <= part < len(parts):
        return None
    name = parts[part].get("file")
    if not isinstance(name, str) or not _VLM_FILE.match(name):
        return None
    folder = (trace.path.parent / VLM_IMAGE_DIR).resolve()
    path = (trace.path.parent / name).resolve()
    if path.parent != folder or not path.is_file() or path.stat().st_size > MAX_IMAGE_FILE_BYTES:
        return None
    return path.read_bytes(), _MEDIA[path.suffix.lower().lstrip(".")]
