"""``sam3_prompt``: SAM 3's tracker draws the mask of a box and/or points.

The prompt (in the picture the VLM was shown; see :mod:`tools.prompting`) is mapped by
:mod:`tools.coords` to SAM 3's input frame, the ``side x side`` square every image is resized
to (so x scales by ``side / W`` and y by ``side / H``, as ``Sam3TrackerProcessor`` scales
them), and decoded by the tracker's prompt encoder and mask decoder on the image encoding
``sam3_propose`` already made (no second encode). Points alone decode three masks and keep
the best predicted IoU; a box decodes one. The mask joins the candidates with origin
``sam3_prompt:box`` / ``:points`` / ``:box+points``.
"""

from __future__ import annotations

import numpy as np

from tools.base import Workspace, run_on_device
from tools.coords import Frame, map_box, map_points
from tools.prompting import Prompt, PromptTool
from tools.sam3.declarations import SAM3_PROMPT
from tools.sam3.shared_model import UsesSam3Model
from tools.types import Image


def sam3_frame(side: int) -> Frame:
    """SAM 3's input frame: the image resized to a ``side x side`` square."""
    return Frame(side, side, "sam3")


class Sam3Prompt(UsesSam3Model, PromptTool):
    """A mask from a box and/or points with SAM 3's tracker, appended to the candidates.

    Args:
        settings: the run's tool settings (the model is ``sam3_propose``'s).
        proposer: the ``sam3_propose`` instance whose model and encodings to use.
    """

    declaration = SAM3_PROMPT

    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        return await run_on_device(self.settings.device, self.draw_sync, ws.image, prompt)

    def draw_sync(self, image: Image, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        """Blocking version of :meth:`draw`: ``(1, H, W)`` mask and ``(1,)`` predicted IoU."""
        engine = self.proposer.engine()
        working, square = Frame.from_hw(image.size, "working"), sam3_frame(engine.side)
        box = map_box(prompt.box, working, square) if prompt.box is not None else None
        points = map_points(prompt.points, working, square) if prompt.points is not None else None
        mask, iou, _ = engine.draw(image, box, points, prompt.labels)
        return mask[None], np.array([iou], dtype=np.float32)
