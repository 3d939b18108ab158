"""SAM 3's forwards on one model, with the encodings they share kept per image and per query.

One image encoding (the ViT backbone and the detector's neck: nearly all of the cost) serves
every query on that image: the detector's (text prompts) and the tracker's (box and point
prompts, through the tracker's own neck on the same backbone output, as ``Sam3VideoModel``
does). Encodings live in an LRU keyed by the image digest and are counted in ``encodes``;
text encodings are kept per query (``text_encodes``); detections per (image, query).

Conventions follow ``Sam3Processor`` and ``Sam3TrackerProcessor``: the image is resized to
the model's square input (``side x side``, 1008 for the official model; not letterboxed),
rescaled to [0, 1] and normalised with mean and std 0.5 (``Sam3ImageProcessor``); a prompt
is 32 tokens; an instance's score is ``sigmoid(logit) * sigmoid(presence logit)``; boxes
come out as normalised ``x0, y0, x1, y1``; instance masks are the sigmoid of the mask
logits resized to the image and thresholded (0.5); the tracker takes boxes and points in
pixels of the square input frame and its mask logits are thresholded at 0.

Every method is blocking (tools call them through ``run_on_device``) and guarded by one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cache.lru import LRU
from tools.accel import StageClock, autocast, compiled
from tools.errors import ToolError
from tools.sam3.config import image_side
from tools.sam3.tokenizer import CONTEXT_LENGTH, sam3_tokenizer
from tools.types import Image

DETECTIONS_KEPT = 8  # one full-size detection holds 200 masks of 288x288 floats (66 MB)
TEXTS_KEPT = 256
MASK_THRESHOLD = 0.5  # Sam3Processor.post_process_instance_segmentation's default
TRACKER_MASK_THRESHOLD = 0.0  # Sam3TrackerProcessor.post_process_masks' default (logits)


@dataclass
class Encoding:
    """One image's encoding: the detector's vision features and, once asked, the tracker's."""

    vision: Any  # Sam3VisionEncoderOutput
    tracker: list[torch.Tensor] | None = None


@dataclass(frozen=True)
class Detections:
    """SAM 3's answer to one query on one image, every query slot (``Q`` of them).

    Attributes:
        scores: ``(Q,) float32`` detection x presence.
        presence: the presence score (is the concept in the image at all).
        boxes: ``(Q, 4) float32`` normalised ``x0, y0, x1, y1``.
        mask_probs: ``(Q, h, w)`` sigmoid of the low-resolution mask logits (model device).
    """

    scores: np.ndarray
    presence: float
    boxes: np.ndarray
    mask_probs: torch.Tensor


@dataclass(frozen=True)
class Instances:
    """The instances kept for a query at the image's size, best score first.

    Attributes:
        masks: ``(N, H, W) bool``.
        scores: ``(N,) float32`` detection x presence.
        presence: the presence score of the query.
    """

    masks: np.ndarray
    scores: np.ndarray
    presence: float


@dataclass
class Counters:
    """What the engine computed (cache hits are not counted)."""

    encodes: int = 0
    text_encodes: int = 0
    detections: int = 0
    prompt_decodes: int = 0
    stages: StageClock = field(default_factory=StageClock)


class Sam3Engine:
    """The SAM 3 forwards a run needs, on one loaded ``Sam3VideoModel``.

    Args:
        model: the model (eval mode, on its device).
        precision: forwards run under autocast at it (masks and scores in float32).
        compile: ``torch.compile`` the vision and text encoders.
        compile_backend: the ``torch.compile`` backend.
        encodings_kept: image encodings kept (an LRU by image digest).
    """

    def __init__(
        self,
        model: Any,
        *,
        precision: str = "fp32",
        compile: bool = False,
        compile_backend: str = "inductor",
        encodings_kept: int = 8,
    ):
        from transformers import Sam3ImageProcessor

        self.model = model
        self.device = next(model.parameters()).device
        self.precision = precision
        self.side = image_side(model.config)
        self.processor = Sam3ImageProcessor(size={"height": self.side, "width": self.side})
        self.tokenizer = sam3_tokenizer()
        det = model.detector_model
        self._vision: Callable[..., Any] = compiled(det.vision_encoder, compile, compile_backend)
        self._text: Callable[..., Any] = compiled(det.get_text_features, compile, compile_backend)
        self._encodings: LRU[str, Encoding] = LRU(encodings_kept)
        self._texts: LRU[str, tuple[Any, torch.Tensor]] = LRU(TEXTS_KEPT)
        self._detections: LRU[tuple[str, str], Detections] = LRU(DETECTIONS_KEPT)
        self.lock = threading.RLock()
        self.counters = Counters(stages=StageClock(self.device))

    # -- encodings ----------------------------------------------------------------------

    def encoding(self, image: Image) -> Encoding:
        """The image's encoding, computed once while it stays in the LRU (counted in ``encodes``)."""
        with self.lock:
            cached = self._encodings.get(image.digest)
            if cached is not None:
                return cached
            with self.counters.stages.stage("vision_encode"), torch.inference_mode():
                # A copy: the image's pixels are read-only and torch wants a writable array.
                pixels = self.processor(images=image.pixels.copy(), return_tensors="pt")["pixel_values"]
                with autocast(self.device, self.precision):
                    vision = self._vision(pixels.to(self.device))
            self.counters.encodes += 1
            encoding = Encoding(vision)
            self._encodings.put(image.digest, encoding)
            return encoding

    def is_encoded(self, image: Image) -> bool:
        """Whether the image's encoding is held (a query on it will not encode it again)."""
        with self.lock:
            return image.digest in self._encodings

    def text(self, query: str) -> tuple[Any, torch.Tensor]:
        """The query's text features and attention mask (32 tokens), computed once per query."""
        with self.lock:
            cached = self._texts.get(query)
            if cached is not None:
                return cached
            with self.counters.stages.stage("text_encode"), torch.inference_mode():
                tokens = self.tokenizer(
                    query,
                    padding="max_length",
                    max_length=CONTEXT_LENGTH,
                    truncation=True,
                    return_tensors="pt",
                )
                ids = tokens["input_ids"].to(self.device)
                mask = tokens["attention_mask"].to(self.device)
                with autocast(self.device, self.precision):
                    features = self._text(input_ids=ids, attention_mask=mask, return_dict=True)
            self.counters.text_encodes += 1
            self._texts.put(query, (features, mask))
            return features, mask

    # -- text prompts -------------------------------------------------------------------

    def detect(self, image: Image, query: str) -> Detections:
        """Every query slot's score, box and mask for ``query`` on ``image`` (cached)."""
        if not query.strip():
            raise ToolError("the query is empty; give a short noun phrase such as 'red car'")
        with self.lock:
            key = (image.digest, query)
            cached = self._detections.get(key)
            if cached is not None:
                return cached
            encoding = self.encoding(image)
            features, mask = self.text(query)
            with self.counters.stages.stage("detect"), torch.inference_mode():
                with autocast(self.device, self.precision):
                    out = self.model.detector_model(
                        vision_embeds=encoding.vision, text_embeds=features, attention_mask=mask
                    )
                presence = torch.sigmoid(out.presence_logits.float())[0]
                scores = torch.sigmoid(out.pred_logits.float())[0] * presence
                found = Detections(
                    scores=scores.cpu().numpy().astype(np.float32),
                    presence=float(presence.reshape(-1)[0]),
                    boxes=out.pred_boxes.float()[0].cpu().numpy().astype(np.float32),
                    mask_probs=torch.sigmoid(out.pred_masks.float()[0]),
                )
            self.counters.detections += 1
            self._detections.put(key, found)
            return found

    def instances(
        self,
        image: Image,
        query: str,
        threshold: float,
        max_instances: int,
        mask_threshold: float = MASK_THRESHOLD,
    ) -> Instances:
        """The instances scoring above ``threshold`` (at most ``max_instances``, best first), with
        their masks at the image's size; instances whose mask is empty there are dropped."""
        found = self.detect(image, query)
        with self.lock, self.counters.stages.stage("postprocess"), torch.inference_mode():
            order = [int(i) for i in np.argsort(-found.scores, kind="stable") if found.scores[i] > threshold]
            order = order[:max_instances]
            masks = np.zeros((0, *image.size), dtype=bool)
            if order:
                probs = found.mask_probs[order][None]
                resized = F.interpolate(probs, size=image.size, mode="bilinear", align_corners=False)[0]
                masks = (resized > mask_threshold).cpu().numpy()
            keep = [i for i in range(len(order)) if masks[i].any()]
            return Instances(masks[keep], found.scores[[order[i] for i in keep]], found.presence)

    # -- box and point prompts ----------------------------------------------------------

    def tracker_embeddings(self, image: Image) -> list[torch.Tensor]:
        """The tracker's image embeddings (its neck on the shared backbone output), as
        ``Sam3TrackerModel`` feeds its mask decoder: no-memory embedding added, ``(1, C, h, w)``."""
        with self.lock:
            encoding = self.encoding(image)
            if encoding.tracker is None:
                tracker = self.model.tracker_model
                with self.counters.stages.stage("tracker_neck"), torch.inference_mode():
                    with autocast(self.device, self.precision):
                        maps, _ = self.model.get_vision_features_for_tracker(encoding.vision)
                    maps = list(maps)
                    maps[-1] = maps[-1] + tracker.no_memory_embedding
                    encoding.tracker = [
                        m.permute(1, 2, 0).reshape(1, -1, *size)
                        for m, size in zip(maps, tracker.backbone_feature_sizes, strict=True)
                    ]
            return encoding.tracker

    def draw(
        self,
        image: Image,
        box: np.ndarray | None,
        points: np.ndarray | None,
        labels: np.ndarray | None,
    ) -> tuple[np.ndarray, float, float]:
        """One mask from a box and/or points given in pixels of the square input frame.

        Points alone are ambiguous: three masks are decoded and the best predicted IoU kept.

        Returns:
            ``(mask (H, W) bool at the image's size, predicted IoU, object score)``. As in
            ``Sam3TrackerModel`` (single images), the object score is reported, not applied
            (the video tracker uses it to drop lost objects).
        """
        with self.lock:
            embeddings = self.tracker_embeddings(image)
            tracker = self.model.tracker_model
            inputs = self.prompt_tensors(box, points, labels)
            with self.counters.stages.stage("prompt_decode"), torch.inference_mode():
                with autocast(self.device, self.precision):
                    sparse, dense = tracker.prompt_encoder(input_masks=None, **inputs)
                    low_res, iou, _, objectness = tracker.mask_decoder(
                        image_embeddings=embeddings[-1],
                        image_positional_embeddings=tracker.get_image_wide_positional_embeddings(),
                        sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense,
                        multimask_output=box is None,
                        high_resolution_features=embeddings[:-1],
                    )
                iou = iou.float()[0, 0]
                best = int(torch.argmax(iou))
                logits = low_res.float()[0, 0, best][None, None]
                resized = F.interpolate(logits, size=image.size, mode="bilinear", align_corners=False)[0, 0]
                mask = (resized > TRACKER_MASK_THRESHOLD).cpu().numpy()
            self.counters.prompt_decodes += 1
            return mask, float(iou[best]), float(torch.sigmoid(objectness.float().reshape(-1)[0]))

    def prompt_tensors(
        self, box: np.ndarray | None, points: np.ndarray | None, labels: np.ndarray | None
    ) -> dict[str, torch.Tensor | None]:
        """The tracker's prompt inputs: boxes ``(1, 1, 4)``, points ``(1, 1, N, 2)``, labels ``(1, 1, N)``."""
        out: dict[str, torch.Tensor | None] = {
            "input_points": None,
            "input_labels": None,
            "input_boxes": None,
        }
        if box is not None:
            out["input_boxes"] = torch.as_tensor(box, dtype=torch.float32, device=self.device).reshape(
                1, 1, 4
            )
        if points is not None and labels is not None:
            out["input_points"] = torch.as_tensor(points, dtype=torch.float32, device=self.device).reshape(
                1, 1, -1, 2
            )
            out["input_labels"] = torch.as_tensor(labels, dtype=torch.int32, device=self.device).reshape(
                1, 1, -1
            )
        return out

    def clear(self) -> None:
        """Drop every kept encoding, text and detection."""
        with self.lock:
            self._encodings.clear()
            self._texts.clear()
            self._detections.clear()
