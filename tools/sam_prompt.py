"""``sam_prompt``: SAM draws the mask of a box and/or points, on the embedding ``sam_propose`` made.

The prompt (in the picture the VLM was shown; see :mod:`tools.prompting`) is mapped to SAM's
input frame by :mod:`tools.coords`, encoded by SAM's prompt encoder and decoded on the image
embedding that ``sam_propose`` already computed for this image (its one public method
:meth:`tools.sam_propose.SamPropose.embedding`: no second encode, and the encode is counted
there). Points alone are ambiguous (a part or the whole?): SAM decodes three masks and the
one with the best predicted IoU is kept. A box (with or without points) decodes one mask.
The mask joins the candidates with origin ``sam_prompt:box`` / ``:points`` / ``:box+points``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tools.accel import autocast
from tools.base import Tool, ToolSettings, Workspace, run_on_device
from tools.coords import Frame, map_box, map_points
from tools.errors import ConfigError
from tools.prompting import Prompt, PromptTool
from tools.sam_declaration import SAM_PROMPT
from tools.sam_propose import SamPropose
from tools.types import Image


class SamPrompt(PromptTool):
    """A mask from a box and/or points with SAM, appended to the candidates.

    Args:
        settings: the run's tool settings (device; the weights are ``sam_propose``'s).
        proposer: the ``sam_propose`` instance whose model and embeddings to use; the
            registry hands it over (``needs``). Without one, the tool builds its own.

    Attributes:
        decodes: prompts decoded so far.
    """

    declaration = SAM_PROMPT

    def __init__(self, settings: ToolSettings | None = None, *, proposer: SamPropose | None = None):
        super().__init__(settings)
        self._proposer = proposer
        self.decodes = 0

    def use_tools(self, tools: dict[str, Tool]) -> None:
        proposer = tools["sam_propose"]
        if not isinstance(proposer, SamPropose):
            raise ConfigError(
                f"sam_prompt needs sam_propose's embeddings, but sam_propose is a {type(proposer).__name__}"
            )
        self._proposer = proposer

    @property
    def proposer(self) -> SamPropose:
        if self._proposer is None:
            self._proposer = SamPropose(self.settings)
        return self._proposer

    def fingerprint(self) -> str:
        """``sam_propose``'s: its weights and the precision both decode at."""
        return self.proposer.fingerprint()

    async def draw(self, ws: Workspace, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        return await run_on_device(self.settings.device, self.draw_sync, ws.image, prompt)

    def _sam_inputs(self, image: Image, prompt: Prompt, side: int) -> dict[str, Any]:
        """The prompt as tensors in SAM's input frame (batch of one)."""
        device = self.proposer.model.device
        working = Frame.from_hw(image.size, "working")
        sam = working.sam(side)
        points = boxes = None
        if prompt.points is not None and prompt.labels is not None:
            xy = map_points(prompt.points, working, sam)
            points = (
                torch.as_tensor(xy, dtype=torch.float, device=device)[None],
                torch.as_tensor(prompt.labels, dtype=torch.int, device=device)[None],
            )
        if prompt.box is not None:
            boxes = torch.as_tensor(map_box(prompt.box, working, sam), dtype=torch.float, device=device)[None]
        return {"points": points, "boxes": boxes, "masks": None}

    def draw_sync(self, image: Image, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
        """Blocking version of :meth:`draw`: ``(1, H, W)`` mask and ``(1,)`` predicted IoU.

        The decoder runs at ``sam_propose``'s precision (the embedding was made at it, and
        the fingerprint, hence the cache key, is ``sam_propose``'s); the mask is upscaled
        and thresholded in float32, as ``sam_propose`` does.
        """
        proposer = self.proposer
        model = proposer.model
        emb = proposer.embedding(image)
        with torch.inference_mode():
            inputs = self._sam_inputs(image, prompt, model.image_encoder.img_size)
            with autocast(model.device, proposer.settings.precision):
                sparse, dense = model.prompt_encoder(**inputs)
                decoder_dtype = next(model.mask_decoder.parameters()).dtype
                low_res, iou = model.mask_decoder(
                    image_embeddings=emb.features.to(decoder_dtype),
                    image_pe=model.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=prompt.box is None,  # points alone are ambiguous: pick the best
                )
            low_res, iou = low_res.float(), iou.float()
            best = int(torch.argmax(iou[0]))
            logits = model.postprocess_masks(low_res[:, best : best + 1], emb.input_size, emb.original_size)
            mask = (logits[0, 0] > model.mask_threshold).cpu().numpy()
        self.decodes += 1
        return mask[None], np.array([float(iou[0, best])], dtype=np.float32)
